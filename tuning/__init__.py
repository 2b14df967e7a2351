"""Waterline's tuning core: pure functions over numbers and dataclasses (no DB, no network, no
app imports), so it can be trained, evaluated and tested alone.

- ``tuning.headroom``: SONiC's PFC headroom formula.
- ``tuning.guard``: the rules every waterline must pass before it reaches a switch.
- ``tuning.features``: window features (per port, or a vectorised batch for 1,000 switches).
- ``tuning.telemetry``: counter polls -> windows, as the collectors normalise them.
- ``tuning.space``: the search space (bandwidth-delay units), the bounded step, references.
- ``tuning.classifier``: ``ProfileClassifier`` (which traffic profile a port carries).
- ``tuning.optimiser``: ``WaterlineOptimiser``, ``Proposal`` (surrogate, policy, heuristic,
  online corrections).
- ``tuning.models``: ``TunerModels``, ``default_models``, ``train_models`` -- the shipped model
  files (the only module that reads or writes files).
- ``tuning.hillclimb``: the ByteTuning hill-climbing baseline.
- fabricsim adapters, used offline only: ``tuning.simulation`` (scenarios, the yardstick
  ``measure``, a polled virtual switch ``Rig``), ``tuning.training`` (data and fitting),
  ``tuning.evaluate`` (closed-loop evaluation vs statics, hill-climb and the oracle).
"""
