"""The ByteTuning baseline: coordinate-perturbation hill-climbing on live probes.

ByteTuning (2021, open source) tuned the five H3C knobs of a lossless queue -- ECN low/high
limit and discard probability, the ingress buffer's dynamic alpha, the PFC headroom -- by
perturbing them by +-step (20 % to start), applying each perturbed configuration to the
switches, waiting for a telemetry window and keeping it when the score ``throughput /
(queue + 1)`` improved. Here, as a state machine (:meth:`HillClimb.next_probe` /
:meth:`HillClimb.report`), so that an evaluation can drive it against the virtual fabric:

- coordinates in turn: Kmin, Kmax, Pmax, alpha, headroom; for each, probe value x (1 + step);
  if the score does not improve, probe x (1 - step); alpha moves by a power of two (what the
  NOS accepts), the others multiplicatively;
- adaptive step (as asked of the baseline: grows on success, shrinks on failure): x1.5 after
  an accepted probe (at most 0.8), x0.5 after a coordinate whose two probes both failed, back
  to 20 % when it falls under 1 % (ByteTuning's reset);
- every probe is clipped into the guard (Kmin < Kmax within the buffer share, Pmax <= 1,
  headroom >= the formula), as ByteTuning clipped to its search space.

The score's units: throughput in Gb/s (mean egress rate of the probed ports), queue in KB
(their mean egress occupancy). Each probe is one configuration applied to the fabric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tuning.guard import Waterline
from tuning.space import PortContext, complete

COORDS: tuple[str, ...] = ("kmin_bytes", "kmax_bytes", "pmax", "alpha", "headroom_bytes")
STEP_START = 0.2
STEP_MAX = 0.8
STEP_MIN = 0.01
GROW = 1.5
SHRINK = 0.5


def score(throughput_gbps: float, queue_kb: float) -> float:
    """ByteTuning's score: throughput / (queue + 1)."""
    return float(throughput_gbps) / (max(0.0, float(queue_kb)) + 1.0)


@dataclass
class HillClimb:
    """ByteTuning-style hill-climbing state (module docstring)."""

    start: Waterline
    ctx: PortContext
    step: float = STEP_START
    best: Waterline = field(init=False)
    best_score: float = field(init=False, default=-math.inf)
    coord: int = field(init=False, default=0)
    sign: int = field(init=False, default=1)
    pending: Waterline | None = field(init=False, default=None)
    probes: int = field(init=False, default=0)
    history: list[tuple[Waterline, float]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.best = complete(self.start, self.ctx)

    def baseline(self, value: float) -> None:
        """The score of the start configuration (measured before any probe)."""
        self.best_score = float(value)

    def next_probe(self) -> Waterline:
        """The next configuration to apply (the same until :meth:`report` is called)."""
        if self.pending is None:
            for _ in range(2 * len(COORDS)):
                cand = self._perturb(self.best, self.coord, self.sign)
                if cand is not None:
                    self.pending = cand
                    break
                self._advance(failed=True)
            else:  # nothing can move (all clipped): perturb Kmin downwards anyway
                self.pending = self.best
        return self.pending

    def report(self, value: float) -> None:
        """The measured score of the pending probe."""
        if self.pending is None:
            raise RuntimeError("no probe pending")
        self.probes += 1
        self.history.append((self.pending, float(value)))
        if value > self.best_score:
            self.best = self.pending
            self.best_score = float(value)
            self.step = min(STEP_MAX, self.step * GROW)
            self.sign = 1
            self.coord = (self.coord + 1) % len(COORDS)
        else:
            self._advance(failed=True)
        self.pending = None

    def _advance(self, *, failed: bool) -> None:
        if self.sign == 1:
            self.sign = -1  # try the other direction of the same coordinate
            return
        self.sign = 1
        self.coord = (self.coord + 1) % len(COORDS)
        if failed:
            self.step *= SHRINK
            if self.step < STEP_MIN:
                self.step = STEP_START

    def _perturb(self, w: Waterline, coord: int, sign: int) -> Waterline | None:
        ctx = self.ctx
        kmin, kmax, pmax = w.kmin_bytes, w.kmax_bytes, w.pmax
        alpha = w.alpha or 0.125
        head = w.headroom_bytes or ctx.headroom().size_bytes
        f = 1.0 + sign * self.step
        if coord == 0:
            kmin = int(min(kmax - 1, max(1, round(kmin * f))))
        elif coord == 1:
            kmax = int(min(ctx.kmax_cap, max(kmin + 1, round(kmax * f))))
        elif coord == 2:
            pmax = float(min(1.0, max(1e-3, round(pmax * f, 4))))
        elif coord == 3:
            alpha = float(min(8.0, max(1 / 128, alpha * (2.0 if sign > 0 else 0.5))))
        else:
            head = int(min(ctx.headroom_cap, max(ctx.headroom().size_bytes, round(head * f))))
        cand = complete(Waterline(kmin_bytes=kmin, kmax_bytes=kmax, pmax=pmax, alpha=alpha),
                        ctx, headroom_bytes=head)
        if cand == w:
            return None
        return cand
