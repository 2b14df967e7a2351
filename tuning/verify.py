"""The tuner's verification rule (pure): did a change make a port's telemetry worse?

After a change has settled, the daemon compares the changed ports' telemetry over the
verification window with the window before the change, and rolls the change back on any of

- drops that were not there before (or 50 % more of them),
- PFC pause frames (either way) up by more than ``pause_increase`` and ``pause_floor_per_s``,
- utilisation down by more than ``utilisation_drop`` (relative, on a busy port).

The closed-loop evaluation (``tuning.evaluate``) applies the same rule to the same kind of
windows, so it scores the loop the daemon runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tuning.features import PortWindow, window_kpis


@dataclass
class Tolerance:
    """How much worse a KPI may get before a tuner change counts as a regression."""

    utilisation_drop: float = 0.10  # relative
    pause_increase: float = 0.25  # relative ...
    pause_floor_per_s: float = 5.0  # ... and absolute, pause frames/s
    drops_floor_per_s: float = 0.0  # any new drops


def mean_kpis(windows: Sequence[PortWindow]) -> dict[str, float]:
    """The ports' telemetry KPIs (``window_kpis``), averaged over the ports."""
    if not windows:
        return {}
    kpis = [window_kpis(w) for w in windows]
    return {k: float(np.mean([x[k] for x in kpis])) for k in kpis[0]}


def regression(before: dict[str, float], after: dict[str, float], tol: Tolerance) -> str:
    """Why the ``after`` window is a regression from ``before`` ("" when it is none)."""
    drops_before, drops_after = before.get("drops_per_s", 0.0), after.get("drops_per_s", 0.0)
    if drops_after > max(drops_before * 1.5, tol.drops_floor_per_s) and drops_after > 0:
        return f"drops rose from {drops_before:.1f}/s to {drops_after:.1f}/s"
    for key in ("rx_pause_per_s", "tx_pause_per_s"):
        b, a = before.get(key, 0.0), after.get(key, 0.0)
        if a > b * (1 + tol.pause_increase) and a - b > tol.pause_floor_per_s:
            return f"{key} rose from {b:.1f} to {a:.1f}"
    ub, ua = before.get("utilisation", 0.0), after.get("utilisation", 0.0)
    if ub > 0.05 and ua < ub * (1 - tol.utilisation_drop):
        return f"utilisation fell from {ub:.3f} to {ua:.3f}"
    return ""
