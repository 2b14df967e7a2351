"""The tuner's verification rule (pure): did a change make a port's telemetry worse?

After a change has settled, the daemon compares the changed ports' telemetry over the
verification window with the window before the change, and rolls the change back on any of

- drops that were not there before (or 50 % more of them),
- PFC pause frames (either way) up by more than ``pause_increase`` and ``pause_floor_per_s``,
  unless the pauses bought throughput: the changed ports' utilisation rose by
  ``pause_utilisation_gain`` (relative, the 10 % a loss must exceed to count) or more, and
  they pause no more than ``bought_pause_links`` peer links held paused without a break
  would (``paused_link_frames_per_s``). A lossless fabric pauses instead of dropping;
  pauses that buy throughput are a trade the objective prices, a storm is not. Measured on
  the closed loop (12-poll windows): allreduce of 28-43 elephants at 200G taken to 3.2 MB /
  8.4 MB gained 14-20 % (0.80-0.82 -> 0.93-0.97) at 1,335-3,894 pause frames/s (0.11-0.33
  of a paused link; 1-4 % of the time paused, the simulator's objective 2.7-3.1 ->
  1.06-1.16, the oracle pauses as much), which the pause rule alone had rolled back every
  time; a dynamic threshold of 1/64 under a 4 MB / 8 MB ramp gained 5 % at 40,000-81,000
  frames/s (4-14 paused links; 87 % of the time paused at 100G, the objective 1.40 ->
  9.24). With 20 elephants the same deep ramp gained 8-9 % and the vendor guide's shallow
  ramp, reached after the rollback, does better without a pause (0.97 against 1.28 at
  200G): a gain under 10 % is not worth the pauses,
- utilisation down by more than ``utilisation_drop`` (relative, on a busy port): over the
  changed ports on average, and on any one of them by more than ``port_utilisation_floor``
  of line rate too (``port_regression``: one set serves every port of a switch priority,
  often carrying different traffic, and an average over ports that gained can hide one
  that lost),
- for a change that took the ECN ramp deeper than every static reference
  (``space.deeper_than_references``): the mean queue up by more than ``deep_queue_growth``
  (relative) and ``deep_queue_floor_bytes`` with utilisation up by less than
  ``deep_utilisation_gain`` (relative). Beyond the operators' known settings a longer
  standing queue must buy throughput; one that does not is latency for nothing, which the
  other rules cannot see (no drops, no pauses, no utilisation lost: the mice pay). Measured
  on the evaluation's trajectories: the tuner's deep moves on allreduce raised utilisation
  by 7-20 % (0.80-0.88 -> 0.90-0.96), its one deep move on a Poisson mix (websearch 400G at
  load 0.9, read as allreduce) by 0 % with a queue 11 x as long -- 1.13 x worse than its
  start by the simulator's objective.

The closed-loop evaluation (``tuning.evaluate``) applies the same rule (``verdict``) to the
same kind of windows, so it scores the loop the daemon runs (the per-port rule changed none
of the default evaluation's 24 rows: byte-identical).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuning.features import PortWindow, stack_windows, window_kpis_batch

# A peer link held paused gets an XOFF refresh every half of the longest pause a frame can
# ask for (65,535 quanta of 512 bit times), the refresh fabricsim models too
PAUSE_REFRESH_BITS = 0xFFFF * 512 / 2


def paused_link_frames_per_s(speed_gbps: float) -> float:
    """The pause frames per second a link of ``speed_gbps`` held paused without a break
    receives (59.6 per Gbps)."""
    return speed_gbps * 1e9 / PAUSE_REFRESH_BITS


@dataclass
class Tolerance:
    """How much worse a KPI may get before a tuner change counts as a regression."""

    utilisation_drop: float = 0.10  # relative
    pause_increase: float = 0.25  # relative ...
    pause_floor_per_s: float = 5.0  # ... and absolute, pause frames/s
    # ... unless utilisation rose by at least this (relative: the loss ``utilisation_drop``
    # counts as a regression, gained) ...
    pause_utilisation_gain: float = 0.10
    # ... at no more pause frames than this many peer links held paused would send
    bought_pause_links: float = 1.0
    drops_floor_per_s: float = 0.0  # any new drops
    deep_queue_growth: float = 1.0  # relative: the mean queue more than doubled ...
    deep_queue_floor_bytes: float = 65536.0  # ... by more than this ...
    deep_utilisation_gain: float = 0.02  # ... and utilisation rose less than this (relative)
    # one port's utilisation drop must also exceed this, in fraction of line rate (the
    # window-to-window noise of one port's utilisation on the virtual fabric: <= 3.6 %
    # relative, 1-2 % of line rate)
    port_utilisation_floor: float = 0.02


def kpis_of(windows: Sequence[PortWindow], names: Sequence[str]) -> dict[str, Any]:
    """What a verdict compares: the ports' KPIs (``window_kpis``) averaged over the ports,
    their mean line rate (``speed_gbps``) and each port's own utilisation by name
    (``ports_utilisation``)."""
    if not windows:
        return {}
    per_port = window_kpis_batch(stack_windows(list(windows)))
    out: dict[str, Any] = {k: float(np.mean(v)) for k, v in per_port.items()}
    out["speed_gbps"] = float(np.mean([w.speed_gbps for w in windows]))
    out["ports_utilisation"] = dict(zip(names, per_port["utilisation"].tolist(), strict=True))
    return out


def verdict(before: Mapping[str, Any], after: Mapping[str, Any], tol: Tolerance, *,
            deeper: bool = False) -> str:
    """Why ``after`` is a regression from ``before`` (``kpis_of`` each; "" when it is none):
    the ports' mean first (``regression``), then each port (``port_regression``)."""
    return regression(before, after, tol, deeper=deeper) or port_regression(
        before.get("ports_utilisation") or {}, after.get("ports_utilisation") or {}, tol)


def regression(before: Mapping[str, Any], after: Mapping[str, Any], tol: Tolerance, *,
               deeper: bool = False) -> str:
    """Why the ``after`` window is a regression from ``before`` ("" when it is none);
    ``deeper``: the change took the ECN ramp deeper than every static reference."""
    drops_before, drops_after = before.get("drops_per_s", 0.0), after.get("drops_per_s", 0.0)
    if drops_after > max(drops_before * 1.5, tol.drops_floor_per_s) and drops_after > 0:
        return f"drops rose from {drops_before:.1f}/s to {drops_after:.1f}/s"
    ub, ua = before.get("utilisation", 0.0), after.get("utilisation", 0.0)
    gained = ub > 0.05 and ua >= ub * (1 + tol.pause_utilisation_gain)
    # no line rate known (a window without it): no pause is excused
    bound = tol.bought_pause_links * paused_link_frames_per_s(float(after.get("speed_gbps", 0)))
    for key in ("rx_pause_per_s", "tx_pause_per_s"):
        b, a = before.get(key, 0.0), after.get(key, 0.0)
        if a > b * (1 + tol.pause_increase) and a - b > tol.pause_floor_per_s and \
                not (gained and a <= bound):
            return f"{key} rose from {b:.1f} to {a:.1f}"
    if ub > 0.05 and ua < ub * (1 - tol.utilisation_drop):
        return f"utilisation fell from {ub:.3f} to {ua:.3f}"
    qb, qa = before.get("queue_mean_bytes", 0.0), after.get("queue_mean_bytes", 0.0)
    if deeper and qa > qb * (1 + tol.deep_queue_growth) and \
            qa - qb > tol.deep_queue_floor_bytes and ua < ub * (1 + tol.deep_utilisation_gain):
        return (f"thresholds deeper than every static reference: the mean queue rose from "
                f"{qb / 1e3:.0f} KB to {qa / 1e3:.0f} KB with utilisation "
                f"{ub:.3f} -> {ua:.3f} (needs +{100 * tol.deep_utilisation_gain:.0f} %)")
    return ""


def port_regression(before: Mapping[str, float], after: Mapping[str, float],
                    tol: Tolerance) -> str:
    """The first port (``before`` / ``after``: utilisation per port name) whose utilisation
    fell by more than ``utilisation_drop`` relative and ``port_utilisation_floor`` absolute
    ("" when none did); a port missing from either window is not judged."""
    for port in sorted(before):
        ub, ua = float(before[port]), after.get(port)
        if ua is None or not (ub > 0.05) or not np.isfinite(ua):
            continue
        if ua < ub * (1 - tol.utilisation_drop) and ub - ua > tol.port_utilisation_floor:
            return f"utilisation of {port} fell from {ub:.3f} to {float(ua):.3f}"
    return ""
