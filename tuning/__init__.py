"""Waterline's tuning core: pure functions over numbers and dataclasses (no DB, no I/O, no app
imports), so it can be trained, evaluated and tested alone.

- ``tuning.headroom``: SONiC's PFC headroom formula.
- ``tuning.guard``: the rules every waterline must pass before it reaches a switch.
"""
