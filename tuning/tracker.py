"""What one (switch, priority) carries, tracked over the daemon's cycles.

- Profile evidence: each cycle adds the ports' mean log-probability per profile (the
  classifier's, floored at ``FLOOR`` so that no single port vetoes a profile) to a decaying
  sum (``PROFILE_MEMORY`` per cycle); the posterior is its softmax. One window of a few ports
  rarely separates websearch, hadoop and low-load incast in telemetry; a few windows do, and a
  real change of traffic, whose windows all point the same way, wins within one or two cycles.
- Traffic descriptors: per profile, an exponentially weighted mean (``DESCRIPTOR_MEMORY``) of
  the estimates of each window (``WaterlineOptimiser.estimate_descriptors``). One window's
  estimate is noisy and leans on the waterlines in place; the mean over cycles is what the
  optimiser plans with, so that its proposals do not chase the noise of the last window. A
  profile that lost the posterior's majority is forgotten.
- Sets that made things worse: the waterlines of a change the daemon's verification rolled
  back (drops, pause frames, utilisation) are not proposed again for ``AVOID_CYCLES`` cycles
  (``ProposalRequest.avoid``): the landscape was wrong there for this traffic, and without
  the list the next proposal after the hold-off would often be the same set again. With the
  set it was rolled back to, the direction is remembered too (the optimiser avoids ramps
  deeper still after a deepening that failed, shallower still after a shallowing).
- Each busy port's reading (``smooth_ports``): an exponentially weighted mean of its
  classifier probabilities (``PORT_MEMORY``), so that telling a switch's ports of other
  traffic apart (``tuning.mixed``) does not hang on one window -- an incast port next to
  allreduce ports reads incast anywhere from 8 % to 79 % from one window to the next.
- The set the tuner found here (``origin``, the first set it proposed from): a switch whose
  ports carry different traffic must not drift, one change at a time, far from what its other
  ports were fine with (``tuning.mixed``).
- The last identification probe (``WaterlineOptimiser``'s probe step) and the cycle it was
  proposed in: the next decision checks what the probe told, and a setting is not probed from
  twice in a row. A record that comes with a change still to be applied (a stored proposal)
  stands only once that change has reached the switch (``settle_probe``): a proposal that
  stays pending, is superseded or rejected, or whose change fails, leaves the record before
  it in place -- else the optimiser would wait, for ever, for the window of a step that was
  never taken (the deep-to-shallow diagnostic then never ran on that switch priority).

Pure state, JSON-able (:meth:`TrafficTracker.state`): the daemon stores it per (switch,
priority), so a restart resumes with the evidence it had. A probe's per-port windows (a
diagnostic records each port's features at every setting of its path: up to a switch's
ports x ~45 values) and the ports' readings are stored packed, as float32 bytes in base64
(``pack_rows``): as JSON numbers the windows alone were 3 s of a 1,000-switch cycle to
decode and encode again (measured 2026-12-07), and float32's seven digits are far finer
than the telemetry they come from.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeGuard

import numpy as np

from tuning.features import PROFILES

PROFILE_MEMORY = 0.4  # weight of the previous cycles' profile evidence (per cycle): below
# 0.5, one confident window of a new profile outweighs the floored evidence of the old one
DESCRIPTOR_MEMORY = 0.6  # weight of the previous cycles' descriptor estimates
FLOOR = 1e-2  # a port's probability is never taken as below this
FORGET_BELOW = 0.05  # descriptors of a profile less likely than this are dropped
AVOID_CYCLES = 20  # cycles a rolled-back set stays out of the proposals
AVOID_MEMORY = 8  # sets remembered at most
PORT_MEMORY = 0.5  # weight of a port's previous reading (per cycle)


class TrafficTracker:
    """Profile posterior and descriptor means of one (switch, priority) (module docstring)."""

    def __init__(self, scores: Any = None, descriptors: dict[str, Any] | None = None,
                 cycles: int = 0, probe: dict[str, Any] | None = None,
                 avoid: list[dict[str, Any]] | None = None,
                 origin: dict[str, Any] | None = None,
                 ports: dict[str, Any] | None = None,
                 pending: dict[str, Any] | None = None) -> None:
        self.scores = np.zeros(len(PROFILES)) if scores is None else np.asarray(
            scores, dtype=float).reshape(len(PROFILES))
        self.descriptors: dict[str, np.ndarray] = {
            p: np.asarray(v, dtype=float) for p, v in (descriptors or {}).items()}
        self.cycles = int(cycles)
        # the last identification probe the optimiser proposed here (``Proposal.probe``)
        # and the cycle it was proposed in
        self.probe: dict[str, Any] | None = dict(probe) if probe else None
        # rolled-back sets: {"x": waterline coordinates, "cycle": when, "from": the
        # coordinates of the set it was rolled back to (when known)}
        self.avoid: list[dict[str, Any]] = [dict(a) for a in (avoid or [])]
        # the waterline set (its fields) in place when the tuner first proposed here
        self.origin: dict[str, Any] | None = dict(origin) if origin else None
        # per busy port (the caller's key): its smoothed classifier reading (float arrays,
        # never written to: replaced whole)
        self.ports: dict[str, np.ndarray] = {
            k: np.asarray(v, dtype=float) for k, v in (ports or {}).items()}
        # the probe record above came with this stored proposal, not applied yet:
        # {"proposal_id": its id, "prior": the record it replaced} (``settle_probe``)
        self.pending: dict[str, Any] | None = dict(pending) if pending else None

    def smooth_ports(self, keys: list[str], probabilities: np.ndarray) -> np.ndarray:
        """Fold this cycle's readings of the busy ports (``keys``, one row each) into their
        smoothed readings and return those; ports not in ``keys`` (idle now, or gone) are
        forgotten."""
        p = np.atleast_2d(np.asarray(probabilities, dtype=float))
        out = p.copy()
        seen = [i for i, key in enumerate(keys)
                if (known := self.ports.get(key)) is not None and known.shape == (p.shape[1],)]
        if seen:
            old = np.array([self.ports[keys[i]] for i in seen], dtype=float)
            out[seen] = PORT_MEMORY * old + (1.0 - PORT_MEMORY) * p[seen]
        self.ports = dict(zip(keys, out, strict=True))
        return out

    def note_origin(self, waterlines: dict[str, Any]) -> dict[str, Any]:
        """The set the tuner found here: ``waterlines`` unless one was noted before."""
        if self.origin is None:
            self.origin = dict(waterlines)
        return dict(self.origin)

    def note_rolled_back(self, coords: Any, prior: Any = None) -> None:
        """Remember the waterline coordinates of a change that was rolled back (and of the
        set it was rolled back to, ``prior``: the direction that failed)."""
        entry: dict[str, Any] = {"x": [float(v) for v in coords], "cycle": self.cycles}
        if prior is not None:
            entry["from"] = [float(v) for v in prior]
        self.avoid.append(entry)
        del self.avoid[:-AVOID_MEMORY]

    def avoid_view(self) -> tuple[tuple[float, ...], ...]:
        """The rolled-back sets within ``AVOID_CYCLES``, for ``ProposalRequest.avoid``: their
        coordinates, followed by those of the set each was rolled back to where known."""
        return tuple(tuple(float(v) for v in [*a["x"], *a.get("from", [])])
                     for a in self.avoid
                     if self.cycles - int(a.get("cycle", self.cycles)) < AVOID_CYCLES)

    def note_probe(self, probe: dict[str, Any], *, proposal_id: int | None = None) -> None:
        """Remember an identification probe proposed this cycle (``Proposal.probe``), or the
        verdict on the last one. ``proposal_id``: the record comes with that stored proposal,
        whose change is still to be applied; the record it replaces is kept until
        :meth:`settle_probe` knows whether the change reached the switch."""
        if proposal_id is not None:
            self.pending = {"proposal_id": int(proposal_id), "prior": self.probe}
        self.probe = {**probe, "cycle": self.cycles}

    @property
    def pending_proposal(self) -> int | None:
        """The stored proposal the probe record awaits (None: the record stands)."""
        return None if self.pending is None else int(self.pending["proposal_id"])

    def settle_probe(self, applied: bool) -> None:
        """The fate of the proposal the probe record came with: ``applied`` (its change
        reached the switch), the record stands; else the record before it is restored."""
        if self.pending is None:
            return
        if not applied:
            prior = self.pending.get("prior")
            self.probe = dict(prior) if isinstance(prior, dict) else None
        self.pending = None

    def probe_view(self) -> dict[str, Any] | None:
        """The last probe with its age in cycles, for ``ProposalRequest.probe``."""
        if not self.probe:
            return None
        view = {k: v for k, v in self.probe.items() if k != "cycle"}
        view["age"] = self.cycles - int(self.probe.get("cycle", self.cycles))
        return view

    def update(self, probabilities: np.ndarray) -> np.ndarray:
        """Add one cycle's port probabilities (ports x PROFILES); the posterior."""
        p = np.atleast_2d(np.asarray(probabilities, dtype=float))
        ev = np.log(np.maximum(p, FLOOR)).mean(axis=0) if len(p) else np.zeros(len(PROFILES))
        self.scores = PROFILE_MEMORY * self.scores + ev
        self.cycles += 1
        post = self.posterior
        for name in list(self.descriptors):
            if post[PROFILES.index(name)] < FORGET_BELOW:
                del self.descriptors[name]
        return post

    def add_descriptors(self, estimates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fold one window's descriptor estimates (per profile) into the means; the means."""
        for name, value in estimates.items():
            v = np.asarray(value, dtype=float)
            old = self.descriptors.get(name)
            self.descriptors[name] = v if old is None or old.shape != v.shape else (
                DESCRIPTOR_MEMORY * old + (1.0 - DESCRIPTOR_MEMORY) * v)
        return dict(self.descriptors)

    @property
    def posterior(self) -> np.ndarray:
        post: np.ndarray = np.exp(self.scores - self.scores.max())
        out: np.ndarray = post / post.sum()
        return out

    @property
    def profile(self) -> str:
        return PROFILES[int(np.argmax(self.scores))]

    def state(self) -> dict[str, Any]:
        ports = pack_rows(list(self.ports), np.array(list(self.ports.values()))) \
            if self.ports else {}
        out = {"scores": [float(v) for v in self.scores],
               "descriptors": {p: [float(x) for x in v] for p, v in self.descriptors.items()},
               "cycles": self.cycles, "probe": _packed_probe(self.probe), "avoid": self.avoid,
               "origin": self.origin, "ports": ports}
        if self.pending is not None:
            out["pending"] = {"proposal_id": int(self.pending["proposal_id"]),
                              "prior": _packed_probe(self.pending.get("prior"))}
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> TrafficTracker:
        state = state or {}
        scores = state.get("scores")
        if not isinstance(scores, list) or len(scores) != len(PROFILES):
            scores = None
        desc = state.get("descriptors")
        probe = state.get("probe")
        cycles = state.get("cycles")
        avoid = state.get("avoid")
        origin = state.get("origin")
        ports = state.get("ports")
        ports_ok: dict[str, Any]
        if _is_packed(ports):  # as ``state`` writes them
            rows = unpack_rows(ports)
            ports_ok = {k: v for k, v in rows.items() if len(v) == len(PROFILES)} \
                if rows else {}
        else:  # one list per port, as before the readings were packed
            ports_ok = {str(k): v for k, v in ports.items()
                        if isinstance(v, list) and len(v) == len(PROFILES)
                        and all(isinstance(x, int | float) for x in v)
                        } if isinstance(ports, dict) else {}
        avoid_ok = [{k: v for k, v in a.items() if k != "from" or (
                        isinstance(v, list) and len(v) == 5)}
                    for a in avoid if isinstance(a, dict) and isinstance(a.get("x"), list)
                    and len(a["x"]) == 5] if isinstance(avoid, list) else []
        pending = state.get("pending")
        pending_ok = {"proposal_id": pending["proposal_id"],
                      "prior": _unpacked_probe(pending.get("prior"))} \
            if isinstance(pending, dict) and isinstance(pending.get("proposal_id"), int) \
            else None
        return cls(scores, desc if isinstance(desc, dict) else None,
                   cycles if isinstance(cycles, int) else 0,
                   _unpacked_probe(probe), avoid_ok,
                   origin if isinstance(origin, dict) else None, ports_ok, pending_ok)


def _packed_probe(probe: dict[str, Any] | None) -> dict[str, Any] | None:
    """A probe record as stored: its per-port windows packed (``pack_rows``)."""
    if probe is None:
        return None
    return {k: v if (rows := _rows_of(v)) is None else pack_rows(list(v), rows)
            for k, v in probe.items()}


def _unpacked_probe(probe: Any) -> dict[str, Any] | None:
    """A stored probe record, its packed rows unpacked (unreadable ones left out)."""
    if not isinstance(probe, dict):
        return None
    out = {k: unpack_rows(v) if _is_packed(v) else v for k, v in probe.items()}
    return {k: v for k, v in out.items() if v is not None}


PACKED = "float32-base64"  # the form of packed rows (``pack_rows``)


def _rows_of(value: Any) -> np.ndarray | None:
    """``value`` as an array (rows x width) when it is rows of floats by key (a probe's
    per-port windows: a non-empty dict of equally long non-empty float sequences); else
    None."""
    if not isinstance(value, dict) or not value:
        return None
    try:
        rows = np.array(list(value.values()))
    except (ValueError, TypeError):  # ragged
        return None
    if rows.ndim != 2 or not rows.shape[1] or rows.dtype.kind != "f":  # not ints: exact
        return None
    return rows


def pack_rows(keys: list[Any], rows: np.ndarray) -> dict[str, Any]:
    """Rows of numbers (one per key) as one JSON-able record: the keys, the width and the
    values as float32 bytes in base64 (``unpack_rows`` reverses it)."""
    data = np.asarray(rows, dtype="<f4").reshape(len(keys), -1)
    return {"packed": PACKED, "keys": [str(k) for k in keys], "width": int(data.shape[1]),
            "data": base64.b64encode(data.tobytes()).decode("ascii")}


def _is_packed(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and value.get("packed") == PACKED


def unpack_rows(record: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The rows ``pack_rows`` packed (float64 arrays of the float32 values); None when the
    record does not hold what it says."""
    keys, width, data = record.get("keys"), record.get("width"), record.get("data")
    if not isinstance(keys, list) or not isinstance(width, int) or width <= 0 or \
            not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    if len(raw) != 4 * width * len(keys):
        return None
    values = np.frombuffer(raw, dtype="<f4").astype(float).reshape(len(keys), width)
    return {str(k): row for k, row in zip(keys, values, strict=True)}
