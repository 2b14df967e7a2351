"""Counter normalisation: wraps, resets, gaps, never negative or giant (hypothesis)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.drivers.models import QueueSample
from collectors.normalise import (
    WRAP_32,
    WRAP_64,
    InterfaceInfo,
    Normaliser,
    NormaliseStats,
    counter_delta,
    max_plausible_delta,
    vector_delta,
)

IFACES = {"Ethernet0": InterfaceInfo(interface_id=7, speed_gbps=100)}


def proc(n: Normaliser, *args: Any) -> list[dict[str, Any]]:
    return n.process(*args).rows()
MAX_10S_BYTES = max_plausible_delta("tx_bytes", 100, 10.0)


def sample(tx_bytes: int | None, **kw: int | None) -> QueueSample:
    return QueueSample(interface="Ethernet0", priority=3, tx_bytes=tx_bytes, **kw)  # type: ignore[arg-type]


def test_plain_increase() -> None:
    assert counter_delta(1000, 5000, 10_000) == 4000
    assert counter_delta(5, 5, 10) == 0


def test_32bit_wrap() -> None:
    assert counter_delta(WRAP_32 - 100, 50, 10_000) == 150


def test_32bit_wrap_not_believed_where_ambiguous() -> None:
    """At 100G x 10 s a 32-bit byte counter would wrap 36 times: a drop below 2**32 is a
    reset of a 64-bit counter, not a wrap (no phantom burst)."""
    assert counter_delta(1_000_000_000, 1_000, MAX_10S_BYTES) is None


def test_64bit_wrap() -> None:
    assert counter_delta(WRAP_64 - 10, 5, 100) == 15


def test_reset_is_none_not_negative() -> None:
    # A 64-bit counter at 10^12 dropping to 3,000: a reboot, not a wrap.
    assert counter_delta(10**12, 3000, MAX_10S_BYTES) is None
    # 32-bit-sized values but an implausible wrapped delta: a reset.
    assert counter_delta(2_000_000_000, 10, 1_000) is None


def test_implausible_jump_refused() -> None:
    assert counter_delta(0, MAX_10S_BYTES + 1, MAX_10S_BYTES) is None


PACKETS_10S_10G = max_plausible_delta("tx_packets", 10, 10.0)  # below 2**32: unambiguous


@given(
    start=st.integers(0, WRAP_64 - 1),
    increments=st.lists(st.integers(0, MAX_10S_BYTES), min_size=1, max_size=20),
    width=st.sampled_from([WRAP_32, WRAP_64]),
)
def test_wrapping_counter_recovers_every_increment(start: int, increments: list[int],
                                                   width: int) -> None:
    """Any increment that fits the interval is recovered exactly, across wraps (32-bit wraps
    where the rate makes them unambiguous, 64-bit wraps always)."""
    limit = PACKETS_10S_10G if width == WRAP_32 else MAX_10S_BYTES
    value = start % width
    for inc in (i % (limit + 1) for i in increments):
        new = (value + inc) % width
        assert counter_delta(value, new, limit) == inc
        value = new


@given(previous=st.integers(-(2**70), 2**70), current=st.integers(-(2**70), 2**70),
       max_delta=st.integers(0, 2**40))
def test_any_pair_gives_none_or_a_bounded_non_negative_delta(previous: int, current: int,
                                                             max_delta: int) -> None:
    delta = counter_delta(previous, current, max_delta)
    assert delta is None or 0 <= delta <= max_delta


def test_rates_from_consecutive_polls() -> None:
    n = Normaliser()
    first = proc(n, 1, 1_000_000, [sample(1_000, tx_packets=10, ecn_marked_packets=0,
                                            rx_pause_frames=0)], IFACES, 10.0)
    assert first[0]["tx_bytes_per_s"] is None  # a new series has no rate yet (a gap)
    second = proc(n, 1, 1_010_000, [sample(1_000 + 12_500_000_000, tx_packets=10 + 1_000_000,
                                             ecn_marked_packets=5_000, rx_pause_frames=20)],
                       IFACES, 10.0)
    row = second[0]
    assert row["interval_s"] == 10.0
    assert row["tx_bytes_per_s"] == 1_250_000_000.0
    assert row["utilisation"] == 0.1  # 10 Gbit/s on a 100G port
    assert row["tx_packets_per_s"] == 100_000.0
    assert row["ecn_marked_packets_per_s"] == 500.0
    assert row["rx_pause_frames_per_s"] == 2.0
    assert row["interface_id"] == 7 and row["priority"] == 3


def test_missed_polls_are_a_gap_not_zero() -> None:
    n = Normaliser()
    stats = NormaliseStats()
    proc(n, 1, 0, [sample(0)], IFACES, 10.0, stats)
    late = proc(n, 1, 60_000, [sample(10_000)], IFACES, 10.0, stats)
    assert late[0]["tx_bytes_per_s"] is None and late[0]["interval_s"] is None
    assert late[0]["tx_bytes"] == 10_000  # the raw counter is still stored
    after = proc(n, 1, 70_000, [sample(20_000)], IFACES, 10.0, stats)
    assert after[0]["tx_bytes_per_s"] == 1_000.0
    assert stats.gaps == 2


def test_reset_then_new_baseline() -> None:
    n = Normaliser()
    stats = NormaliseStats()
    proc(n, 1, 0, [sample(10**12)], IFACES, 10.0, stats)
    reset = proc(n, 1, 10_000, [sample(5_000)], IFACES, 10.0, stats)
    assert reset[0]["tx_bytes_per_s"] is None and stats.resets == 1
    after = proc(n, 1, 20_000, [sample(15_000)], IFACES, 10.0, stats)
    assert after[0]["tx_bytes_per_s"] == 1_000.0


def test_unknown_interface_skipped_and_counted() -> None:
    stats = NormaliseStats()
    rows = proc(Normaliser(), 1, 0, [QueueSample("Ethernet99", 3, tx_bytes=1)], IFACES, 10.0,
                                stats)
    assert rows == [] and stats.unknown_interfaces == 1


def test_missing_counter_has_no_rate() -> None:
    n = Normaliser()
    proc(n, 1, 0, [sample(0, rx_pause_frames=None)], IFACES, 10.0)
    row = proc(n, 1, 10_000, [sample(100, rx_pause_frames=None)], IFACES, 10.0)[0]
    assert row["rx_pause_frames_per_s"] is None and row["tx_bytes_per_s"] == 10.0


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(1, 40_000), st.one_of(st.none(), st.integers(0, 2**64 - 1))),
                min_size=1, max_size=30))
def test_random_polls_never_negative_or_above_line_rate(polls: list[tuple[int, int | None]]) -> None:
    n = Normaliser()
    ts = 0
    for step_ms, value in polls:
        ts += step_ms
        for row in proc(n, 1, ts, [sample(value, tx_packets=value)], IFACES, 10.0):
            rate = row["tx_bytes_per_s"]
            if rate is not None:
                assert 0 <= rate <= 100e9 / 8 * 1.25 + 10_000 / row["interval_s"]
                assert 0 <= row["utilisation"] <= 1.0


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                          st.integers(0, 2**40)), min_size=1, max_size=50))
def test_vector_delta_matches_the_scalar_reference(cases: list[tuple[int, int, int]]) -> None:
    """Includes values near 2**32 and 2**64 wraps."""
    prev = np.array([c[0] for c in cases], dtype=np.uint64)
    cur = np.array([c[1] for c in cases], dtype=np.uint64)
    limit = np.array([float(c[2]) for c in cases])
    delta, valid = vector_delta(prev, cur, limit)
    for i, (p, c, m) in enumerate(cases):
        expected = counter_delta(p, c, m)
        if expected is None:
            assert not valid[i], (p, c, m, delta[i])
        else:
            assert valid[i] and delta[i] == float(expected), (p, c, m, delta[i], expected)


@given(st.lists(st.tuples(st.sampled_from([2**32 - 5, 2**64 - 5, 0, 10**12]),
                          st.integers(-3, 3)), min_size=1, max_size=10))
def test_vector_delta_near_wraps(cases: list[tuple[int, int]]) -> None:
    prev = np.array([c[0] for c in cases], dtype=np.uint64)
    cur = np.array([(c[0] + c[1] + 10) % (2**32 if c[0] < 2**32 else 2**64) for c in cases],
                   dtype=np.uint64)
    delta, valid = vector_delta(prev, cur, np.full(len(cases), 1e6))
    for i, c in enumerate(cases):
        expected = counter_delta(int(prev[i]), int(cur[i]), 10**6)
        assert (expected is None and not valid[i]) or delta[i] == expected, c
