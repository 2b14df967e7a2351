"""Switches whose ports carry different traffic on one priority.

The NOS takes one set of waterlines per switch and priority, so a change proposed for the
traffic most of a switch's ports carry also lands on the ports that carry something else. On
the demo fabric (ports drawn from the built-in mix) a ToR's RDMA priority typically carries a
few allreduce ports next to an incast and a Poisson mix or two; tuned for the allreduce
majority, the incast ports' objective rose 21-28 % while allreduce's fell 35 % (measured
2026-12-06 with ``make run``).

So the daemon splits a switch's busy ports (``split``): the ones whose reading (classifier
probabilities, smoothed over cycles) makes the switch's dominant profile plausible form the
group the proposal is made for (and the tracker's evidence); ports that read as clearly
other traffic are *other* ports. A proposal is only taken when, for every profile an other
port plausibly carries, the landscape does not predict it slower than ``HARM_LOG_J``
(``harmful``): no port is traded for another.

Ports of identical traffic do not read identically (an uplink at 400G next to 100G host
ports reads another mix of the confusable profiles; allreduce host ports of few flows read
as hadoop on some windows), and the classifier confuses incast with the Poisson mixes (about
a third of held-out windows). So "other" is judged by family (``FAMILIES``): a port is other
when the dominant profile's family is implausible for it (less than ``IMPLAUSIBLE``) --
allreduce ports read allreduce at 0.24-0.98 on a window (one of 2 flows at 0.06 once), an
incast or Poisson-mix port among allreduce ports 0.01-0.13 (measured on the daemon's test
fabric and the demo fabric with the shipped classifier); within the incast / Poisson family
the switch's profile posterior and the deep-to-shallow diagnostic decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tuning.features import PROFILES

# Profiles whose ports the classifier cannot tell apart reliably: an N-to-1 incast and the
# Poisson mixes read alike under the SONiC default (held-out confusion about one third; the
# deep-to-shallow diagnostic exists for them), while allreduce stands apart. A port is another
# traffic only when the dominant profile's whole family is implausible for it.
FAMILIES: tuple[tuple[str, ...], ...] = (("allreduce",), ("incast", "websearch", "hadoop"))
IMPLAUSIBLE = 0.2  # a port reading the dominant family less likely than this is "other"
HARM_LOG_J = math.log(1.05)  # the largest predicted slowdown of other ports a change may cost
# the profiles another port is considered to carry: at least this likely. An incast port next
# to allreduce ports read incast 0.08-0.79 from one window to the next, the rest Poisson mixes
# (measured on the demo fabric); at 0.1 the window that read it 0.08 let a change through that
# made it 2.5 x slower.
PLAUSIBLE = 0.05
MAX_OTHER_PORTS = 8  # other ports predicted one by one; beyond, grouped by profile
_IDLE = PROFILES.index("idle")


def overlap(p: np.ndarray, q: np.ndarray) -> float:
    """The probability mass two readings share: sum of the element-wise minimum (1: the same
    reading, 0: disjoint)."""
    return float(np.minimum(np.asarray(p, dtype=float), np.asarray(q, dtype=float)).sum())


def dominant(proba: np.ndarray) -> int:
    """The busy profile with the most probability mass over the ports (rows)."""
    mass = np.round(np.asarray(proba, dtype=float).sum(axis=0), 9)  # ties: in PROFILES order
    mass[_IDLE] = -1.0
    return int(np.argmax(mass))


def family_of(profile: str) -> tuple[str, ...]:
    """The profiles of ``profile``'s family (``FAMILIES``; a profile of none is its own)."""
    return next((f for f in FAMILIES if profile in f), (profile,))


def family(k: int) -> np.ndarray:
    """The profiles (indices) of profile ``k``'s family (``FAMILIES``)."""
    return np.array([PROFILES.index(m) for m in family_of(PROFILES[k])])


def split(proba: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """For the busy ports' readings (classifier probabilities, rows), which ports the
    switch's proposal is made for (True) and which carry something else (False): a port is
    other when its reading puts less than ``IMPLAUSIBLE`` on the dominant profile's family.
    The dominant profile is the one the switch was tracked as (``prior``, its posterior
    before this window) while some port still reads it at least that likely -- allreduce
    ports of few flows that read as hadoop for a window do not turn the switch over -- else
    the one with the most probability mass now (when every port changed, the group follows
    at once). Never leaves the group empty."""
    rows = np.atleast_2d(np.asarray(proba, dtype=float))
    if len(rows) < 2:
        return np.ones(len(rows), dtype=bool)
    k = -1
    if prior is not None and len(np.asarray(prior).reshape(-1)) == rows.shape[1]:
        k = int(np.argmax(np.asarray(prior, dtype=float).reshape(-1)))
        if k == _IDLE or not np.any(rows[:, family(k)].sum(axis=1) >= IMPLAUSIBLE):
            k = -1
    if k < 0:
        k = dominant(rows)
    keep = rows[:, family(k)].sum(axis=1) >= IMPLAUSIBLE
    return keep if keep.any() else np.ones(len(rows), dtype=bool)


def summarise(features: np.ndarray, proba: np.ndarray, reading: np.ndarray,
              ports: int = MAX_OTHER_PORTS) -> list[tuple[np.ndarray, np.ndarray, list[int]]]:
    """The other ports as the optimiser sees them: each (features, probabilities, [index]) on
    its own -- a median of an incast port's window and a hadoop port's describes neither, and
    the landscape then misses what a change does to the incast (measured: a step the merged
    pair was predicted not to feel made the incast port 1.6 x slower) -- up to ``ports``
    of them, those that read least like the group (``reading``); the rest, if any, one entry
    per most likely profile: the median features, the element-wise *largest* probability (a
    profile plausible on any of them stays plausible) and their indices. A switch's other
    ports cost the optimiser at most ``ports`` + 4 predictions."""
    f = np.atleast_2d(np.asarray(features, dtype=float))
    p = np.atleast_2d(np.asarray(proba, dtype=float))
    order = sorted(range(len(p)), key=lambda i: overlap(p[i], reading))
    out = [(f[i], p[i], [i]) for i in order[:ports]]
    rest = np.array(order[ports:], dtype=int)
    labels = np.argmax(p[rest], axis=1) if len(rest) else np.zeros(0, dtype=int)
    for k in sorted(set(labels.tolist())):
        idx = rest[labels == k]
        top = p[idx].max(axis=0)
        out.append((np.median(f[idx], axis=0), top / top.sum(), idx.tolist()))
    return out


def harmful(changes: Mapping[str, tuple[float, np.ndarray, np.ndarray]], n: int
            ) -> np.ndarray:
    """Which of ``n`` candidate sets would slow a port down, for some profile it plausibly
    carries (weight at least ``PLAUSIBLE``): predicted more than ``HARM_LOG_J`` slower than
    at the current set, or than at the origin (the set the tuner found on the switch) unless
    the candidate also takes back at least ``HARM_LOG_J`` from the current set -- one change
    after another, each small, must not add up to a large one (nor pass as a "step back" on
    a predicted 1 %, which is noise), while a real step back is allowed.
    ``changes``: profile -> (weight, predicted change of log J per candidate from the current
    set, from the origin)."""
    out = np.zeros(n, dtype=bool)
    for weight, from_current, from_origin in changes.values():
        if weight < PLAUSIBLE:
            continue
        cur = np.asarray(from_current, dtype=float).reshape(-1)
        org = np.asarray(from_origin, dtype=float).reshape(-1)
        out |= _harms(cur, org)
    return out


def _harms(from_current: Any, from_origin: Any) -> Any:
    """``harmful``'s test of one profile's predicted changes (floats, or arrays of them)."""
    return (from_current > HARM_LOG_J) | ((from_origin > HARM_LOG_J)
                                          & (from_current > -HARM_LOG_J))


def harm(changes: Mapping[str, tuple[float, float, float]]) -> tuple[str, float] | None:
    """For one change (profile -> (weight, predicted change of log J from the current set,
    from the origin)): when it is ``harmful``, the plausible profile predicted to slow down
    most and its change from the origin; else None."""
    if not any(w >= PLAUSIBLE and _harms(float(c), float(o)) for w, c, o in changes.values()):
        return None
    return max(((p, max(c, o)) for p, (w, c, o) in changes.items() if w >= PLAUSIBLE),
               key=lambda pd: pd[1])
