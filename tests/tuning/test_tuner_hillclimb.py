"""ByteTuning's hill-climb as a state machine: +-step coordinate probes, the adaptive step, every
probe inside the guard."""

from __future__ import annotations

import pytest

from tuning.guard import Waterline, check_waterlines
from tuning.hillclimb import STEP_START, HillClimb, score
from tuning.space import PortContext

CTX = PortContext(100, 32 << 20, 3.0)
START = Waterline(1 << 20, 2 << 20, 0.05)


def test_score_is_throughput_over_queue_plus_one() -> None:
    assert score(100.0, 0.0) == 100.0
    assert score(90.0, 9.0) == 9.0


def test_probes_walk_the_coordinates_with_an_adaptive_step() -> None:
    hc = HillClimb(START, CTX)
    hc.baseline(1.0)
    first = hc.next_probe()
    assert first.kmin_bytes == round((1 << 20) * (1 + STEP_START))  # Kmin up 20 %
    hc.report(0.5)  # worse: the other direction of the same coordinate
    second = hc.next_probe()
    assert second.kmin_bytes == round((1 << 20) * (1 - STEP_START))
    hc.report(2.0)  # better: accepted, the step grows, next coordinate (Kmax)
    assert hc.best == second and hc.step == pytest.approx(STEP_START * 1.5)
    third = hc.next_probe()
    assert third.kmin_bytes == second.kmin_bytes and third.kmax_bytes > second.kmax_bytes
    hc.report(1.0)
    hc.next_probe()
    hc.report(1.0)  # both directions of Kmax failed: the step shrinks
    assert hc.step == pytest.approx(STEP_START * 1.5 * 0.5)
    assert hc.probes == 4


def test_every_probe_is_guard_clean() -> None:
    hc = HillClimb(Waterline(2000, 3000, 0.9), CTX)
    hc.baseline(0.0)
    for i in range(60):
        w = hc.next_probe()
        assert check_waterlines(w, speed_gbps=100, buffer_bytes=32 << 20, cable_m=3.0) == []
        hc.report(float(i % 3))
    assert hc.probes == 60 and len(hc.history) == 60
