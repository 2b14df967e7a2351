"""Switches whose ports carry different traffic (tuning.mixed): which ports a proposal is
made for, and which changes would slow the others down. Pure functions; the classifier
readings are ones measured on the daemon's test fabric with the shipped classifier."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tuning import mixed
from tuning.features import PROFILES
from tuning.tracker import TrafficTracker

# columns: allreduce, incast, websearch, hadoop, idle
ALLREDUCE_PORTS = [[0.42, 0.0, 0.02, 0.56, 0.0], [0.37, 0.0, 0.02, 0.61, 0.0],
                   [0.31, 0.0, 0.01, 0.67, 0.0], [0.76, 0.01, 0.01, 0.23, 0.0],
                   [0.95, 0.02, 0.02, 0.01, 0.0]]  # one allreduce on all ports, one window
INCAST_PORT = [0.09, 0.37, 0.12, 0.42, 0.0]  # an incast port among allreduce ports
HADOOP_PORT = [0.02, 0.12, 0.01, 0.85, 0.0]
INCAST_EVERYWHERE = [[0.01, 0.19, 0.49, 0.32, 0.0], [0.01, 0.19, 0.36, 0.44, 0.0],
                     [0.04, 0.22, 0.6, 0.14, 0.0], [0.01, 0.53, 0.06, 0.41, 0.0]]


def prior(profile: str) -> np.ndarray:
    out = np.full(len(PROFILES), 0.02)
    out[PROFILES.index(profile)] = 0.92
    return out


def test_ports_of_one_traffic_stay_together_even_when_they_read_differently() -> None:
    # allreduce host ports read as hadoop on this window, the uplink as allreduce
    assert mixed.split(np.array(ALLREDUCE_PORTS)).all()
    # an incast on every port: host ports read as Poisson mixes, the uplink as incast
    assert mixed.split(np.array(INCAST_EVERYWHERE)).all()


def test_ports_of_other_traffic_are_set_aside() -> None:
    rows = np.array([[0.95, 0.01, 0.01, 0.03, 0.0], INCAST_PORT, HADOOP_PORT,
                     [0.72, 0.07, 0.09, 0.11, 0.01]])
    assert mixed.split(rows).tolist() == [True, False, False, True]
    assert INCAST_PORT[PROFILES.index("allreduce")] < mixed.IMPLAUSIBLE


def test_the_tracked_profile_holds_while_some_port_still_reads_it() -> None:
    # allreduce ports of few flows read as hadoop on this window (one still 24 % allreduce,
    # one 6 %), two read allreduce, two ports of Poisson mixes: the switch stays an
    # allreduce switch, and the port that reads 24 % allreduce stays with it
    rows = np.array([[0.24, 0.01, 0.01, 0.74, 0.0], [0.06, 0.01, 0.01, 0.93, 0.0],
                     [0.93, 0.01, 0.01, 0.05, 0.0], [0.95, 0.01, 0.01, 0.04, 0.0],
                     [0.01, 0.01, 0.01, 0.97, 0.0], [0.0, 0.44, 0.17, 0.39, 0.0]])
    by_mass = mixed.split(rows)
    assert by_mass.tolist() == [True, True, False, False, True, True]  # hadoop by mass
    tracked = mixed.split(rows, prior("allreduce"))
    assert tracked.tolist() == [True, False, True, True, False, False]
    # when no port reads the tracked profile plausibly any more, the traffic changed: by
    # mass again
    changed = rows[[1, 4, 5]]
    assert mixed.split(changed, prior("allreduce")).tolist() == mixed.split(changed).tolist()
    assert mixed.split(changed).all()


def test_a_single_port_and_an_idle_prior_keep_the_group() -> None:
    assert mixed.split(np.array([INCAST_PORT])).tolist() == [True]
    rows = np.array([[0.95, 0.01, 0.01, 0.03, 0.0], INCAST_PORT])
    assert mixed.split(rows, prior("idle")).tolist() == mixed.split(rows).tolist()


readings = arrays(np.float64, st.tuples(st.integers(1, 8), st.just(len(PROFILES))),
                  elements=st.floats(0.0, 1.0)).map(
    lambda a: (a + 1e-6) / (a + 1e-6).sum(axis=1, keepdims=True))


@given(readings, st.randoms(use_true_random=False))
def test_split_never_empties_the_group_and_ignores_port_order(rows: np.ndarray,
                                                              rnd: object) -> None:
    keep = mixed.split(rows)
    assert keep.shape == (len(rows),) and keep.any()
    order = np.arange(len(rows))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    assert mixed.split(rows[order]).tolist() == keep[order].tolist()
    # ports that read alike stay together: identical readings are all kept
    assert mixed.split(np.repeat(rows[:1], 3, axis=0)).all()


HARM = mixed.HARM_LOG_J


def verdict(weight: float, from_current: float, from_origin: float) -> bool:
    return bool(mixed.harmful({"incast": (weight, np.array([from_current]),
                                          np.array([from_origin]))}, 1)[0])


def test_harm_from_the_current_set_or_accumulated_from_the_origin() -> None:
    assert verdict(0.3, 2 * HARM, 2 * HARM)  # one large step
    assert not verdict(0.3, 0.5 * HARM, 0.5 * HARM)  # a small one
    assert verdict(0.3, 0.5 * HARM, 3 * HARM)  # small, but the last of several
    assert not verdict(0.3, -2 * HARM, 3 * HARM)  # a step back towards the origin
    assert verdict(0.3, -0.2 * HARM, 3 * HARM)  # "back" by a predicted 1 %: noise
    assert not verdict(0.5 * mixed.PLAUSIBLE, 5 * HARM, 5 * HARM)  # an implausible profile
    worst = mixed.harm({"incast": (0.3, 0.5 * HARM, 3 * HARM),
                        "hadoop": (0.6, -0.2, -0.3)})
    assert worst == ("incast", 3 * HARM)
    assert mixed.harm({"hadoop": (0.6, -0.2, -0.3)}) is None
    assert math.isclose(HARM, math.log(1.05))


@given(st.floats(0.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(0.0, 0.5))
def test_harm_is_monotone_in_the_predicted_slowdown(weight: float, cur: float, org: float,
                                                    more: float) -> None:
    if verdict(weight, cur, org):
        assert verdict(weight, cur + more, org + more)
    assert verdict(weight, cur, org) == (weight >= mixed.PLAUSIBLE and (
        cur > HARM or (org > HARM and cur > -HARM)))


def test_the_tracker_notes_the_origin_once_and_keeps_it_across_a_restart() -> None:
    tr = TrafficTracker()
    first = {"kmin_bytes": 1 << 20, "kmax_bytes": 2 << 20, "pmax": 0.05}
    assert tr.note_origin(first) == first
    assert tr.note_origin({"kmin_bytes": 6250, "kmax_bytes": 400_000, "pmax": 0.2}) == first
    again = TrafficTracker.from_state(tr.state())
    assert again.origin == first
    assert TrafficTracker.from_state({"origin": "garbage"}).origin is None


def test_other_ports_are_predicted_one_by_one_then_grouped_by_profile() -> None:
    reading = np.array([0.9, 0.02, 0.02, 0.06, 0.0])  # the group's: allreduce
    proba = np.array([HADOOP_PORT, INCAST_PORT, [0.3, 0.1, 0.1, 0.5, 0.0]])
    features = np.arange(3 * 4, dtype=float).reshape(3, 4)
    one_by_one = mixed.summarise(features, proba, reading)
    # the least like the group first; each its own features and reading
    assert [idx for _f, _q, idx in one_by_one] == [[0], [1], [2]]
    assert np.array_equal(one_by_one[1][0], features[1])
    assert np.array_equal(one_by_one[1][1], proba[1])
    capped = mixed.summarise(features, proba, reading, ports=1)
    assert [idx for _f, _q, idx in capped] == [[0], [1, 2]]  # the rest: both read hadoop
    _f, q, _idx = capped[1]
    # the largest probability of each profile over the group, normalised: incast stays
    # as plausible as on the incast port
    top = np.maximum(proba[1], proba[2])
    assert np.allclose(q, top / top.sum())
    assert q[PROFILES.index("incast")] >= mixed.PLAUSIBLE
    assert np.allclose(capped[1][0], np.median(features[1:], axis=0))


def test_port_readings_are_smoothed_over_cycles_and_kept_across_a_restart() -> None:
    tr = TrafficTracker()
    first = tr.smooth_ports(["7", "9"], np.array([INCAST_PORT, HADOOP_PORT]))
    assert np.allclose(first, [INCAST_PORT, HADOOP_PORT])  # nothing to smooth with yet
    quiet = [0.01, 0.08, 0.21, 0.70, 0.0]  # the incast port on a window that hides it
    again = TrafficTracker.from_state(tr.state())
    second = again.smooth_ports(["7"], np.array([quiet]))
    # half the last reading, half this one: incast stays plausible
    assert np.allclose(second[0], 0.5 * np.array(INCAST_PORT) + 0.5 * np.array(quiet))
    assert second[0][PROFILES.index("incast")] > 0.2
    assert set(again.ports) == {"7"}  # a port that went idle is forgotten
    assert TrafficTracker.from_state({"ports": {"1": [0.5, 0.5]}}).ports == {}
    assert TrafficTracker.from_state({"ports": {"1": ["x"] * len(PROFILES)}}).ports == {}
    # stored packed (float32); a state written before the readings were packed still reads
    stored = again.state()["ports"]
    assert stored["keys"] == ["7"] and isinstance(stored["data"], str)
    assert np.allclose(TrafficTracker.from_state(again.state()).ports["7"], second[0],
                       rtol=1e-6)
    old = TrafficTracker.from_state({"ports": {"7": list(INCAST_PORT)}})
    assert list(old.ports) == ["7"] and old.ports["7"].tolist() == list(INCAST_PORT)
    assert TrafficTracker.from_state({"ports": {**stored, "data": "??"}}).ports == {}
    narrow = {**stored, "width": 1, "keys": ["7"] * len(PROFILES)}  # one value per port
    assert TrafficTracker.from_state({"ports": narrow}).ports == {}
