"""Identification probes: when plausible profiles want opposite moves, the optimiser tries a
step towards a reference setting for one cycle, and the verdict (back, or confirmed) rules
profiles out for a while. Pure functions, synthetic landscapes' outputs."""

from __future__ import annotations

import numpy as np

from tuning.features import PROFILES
from tuning.optimiser import (
    MIN_GAIN,
    PROBE_COOLDOWN,
    PROBE_WINDOW,
    _may_probe,
    _probe_outcome,
    _probe_pick,
    _Traffic,
    ruled_out,
)
from tuning.tracker import TrafficTracker

X0 = np.array([3.0, 1.0, -4.3, -3.0, 1.0])  # the current set (coordinates)
X1 = np.array([-1.0, 3.0, -2.3, -3.0, 1.0])  # a step towards a reference
X2 = np.array([2.0, 1.0, -4.3, -3.0, 1.0])  # a grid neighbour, not a reference


def traffic(weights: dict[str, float]) -> _Traffic:
    one = np.zeros((1, 1))
    return _Traffic([(p, w, one, np.ones(1)) for p, w in weights.items()], {})


def parts(deltas: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """log J of the candidates [X0, X1, X2] per profile (two identical members)."""
    return {p: np.tile(np.array([0.0, *d]), (2, 1)) for p, d in deltas.items()}


def test_a_probe_is_picked_only_where_the_likely_profiles_disagree() -> None:
    cands = np.stack([X0, X1, X2])
    towards = X1[None, :]
    t = traffic({"websearch": 0.55, "incast": 0.45})
    # websearch gains 40 % at X1, incast loses 60 %: ambiguity blocks the move -> probe X1
    pick = _probe_pick(parts({"websearch": [np.log(0.6), 0.0], "incast": [np.log(1.6), 0.0]}),
                       t, cands, towards)
    assert pick is not None
    i, helps, hurts, gain = pick
    assert i == 1 and helps == ["websearch"] and hurts == ["incast"]
    assert np.isclose(gain, 0.55 * np.log(0.6)) and gain <= -np.log1p(MIN_GAIN)
    # everyone gains (no ambiguity: the ordinary rule decides) -> no probe
    assert _probe_pick(parts({"websearch": [np.log(0.6), 0.0], "incast": [np.log(0.9), 0.0]}),
                       t, cands, towards) is None
    # the gain for the helped profiles is too small to be worth a probe
    assert _probe_pick(parts({"websearch": [np.log(0.95), 0.0], "incast": [np.log(1.6), 0.0]}),
                       t, cands, towards) is None
    # a grid point that is no reference is never a probe
    assert _probe_pick(parts({"websearch": [0.0, np.log(0.5)], "incast": [0.0, np.log(1.6)]}),
                       t, cands, towards) is None


def test_the_verdict_goes_back_confirms_or_waits() -> None:
    probe = {"from": X0.tolist(), "to": X1.tolist(), "for": ["websearch"],
             "against": ["incast"], "age": 1}
    # at the probed set the telemetry now says incast: back, websearch ruled out
    back, rec = _probe_outcome(probe, X1, traffic({"incast": 0.9, "websearch": 0.1}))
    assert back is not None and np.allclose(back, X0) and rec["ruled_out"] == ["websearch"]
    # it says websearch: confirmed, incast ruled out, no move back
    back, rec = _probe_outcome(probe, X1, traffic({"websearch": 0.75, "incast": 0.25}))
    assert back is None and rec["ruled_out"] == ["incast"]
    # the helped profile likelier, but the one it would hurt still plausible: no verdict yet
    # (measured: a 6-sender incast at load 0.2 read 55 % websearch / hadoop, 45 % incast at
    # the probed set; confirming ruled incast out and the next move made it 2.6x worse)
    assert _probe_outcome(probe, X1, traffic({"websearch": 0.55, "incast": 0.45})) is None
    # undecided: one more window, then back without a verdict
    assert _probe_outcome(probe, X1, traffic({"websearch": 0.4, "incast": 0.6})) is None
    late = {**probe, "age": PROBE_WINDOW}
    back, rec = _probe_outcome(late, X1, traffic({"websearch": 0.4, "incast": 0.6}))
    assert back is not None and rec["ruled_out"] == []
    # not at the probed set (rolled back by the daemon, say): nothing to judge
    assert _probe_outcome(probe, X0, traffic({"incast": 1.0})) is None


def test_no_probe_twice_and_verdicts_expire() -> None:
    pending = {"from": X0.tolist(), "to": X1.tolist(), "for": ["websearch"], "age": 1}
    assert not _may_probe(pending, X2)  # awaiting its verdict
    judged = {**pending, "ruled_out": ["websearch"], "age": 2}
    assert not _may_probe(judged, X0)  # not again from where it started ...
    assert _may_probe(judged, X2)  # ... elsewhere it may
    assert _may_probe({**judged, "age": PROBE_COOLDOWN}, X0)
    assert ruled_out(judged) == ["websearch"]
    assert ruled_out({**judged, "age": PROBE_COOLDOWN}) == []
    assert _may_probe(None, X0) and ruled_out(None) == []


def test_the_tracker_keeps_the_probe_across_a_restart() -> None:
    tr = TrafficTracker()
    tr.update(np.tile(np.eye(len(PROFILES))[1], (4, 1)))
    tr.note_probe({"from": X0.tolist(), "to": X1.tolist(), "for": ["websearch"]})
    again = TrafficTracker.from_state(tr.state())
    again.update(np.tile(np.eye(len(PROFILES))[1], (4, 1)))
    view = again.probe_view()
    assert view is not None and view["age"] == 1 and view["for"] == ["websearch"]
    assert "cycle" not in view


def test_a_probe_record_stands_only_once_its_change_is_applied() -> None:
    """A record that comes with a stored proposal awaits it: applied, the record stands;
    never applied (superseded, rejected, failed), the record before it is back, with its own
    age -- across a restart too, its per-port windows packed."""
    one = np.tile(np.eye(len(PROFILES))[1], (4, 1))
    earlier = {"from": X2.tolist(), "to": X0.tolist(), "for": ["hadoop"],
               "ruled_out": ["hadoop"], "diagnostic": True,
               "port_features": {"Ethernet0": [0.5, 1.5], "Ethernet4": [2.5, 3.5]}}
    step = {"from": X0.tolist(), "to": X1.tolist(), "for": ["websearch"], "diagnostic": True}
    for applied in (True, False):
        tr = TrafficTracker()
        tr.update(one)
        tr.note_probe(earlier)  # needed no change: stands at once
        assert tr.pending_proposal is None
        tr.update(one)
        tr.note_probe(step, proposal_id=17)
        assert tr.pending_proposal == 17 and tr.probe is not None and tr.probe["to"] == step["to"]
        again = TrafficTracker.from_state(tr.state())  # a restart in between
        again.update(one)
        assert again.pending_proposal == 17
        again.settle_probe(applied)
        assert again.pending_proposal is None and "pending" not in again.state()
        view = again.probe_view()
        assert view is not None
        if applied:
            assert view["to"] == step["to"] and view["age"] == 1
        else:
            assert view["to"] == earlier["to"] and view["age"] == 2
            assert view["port_features"]["Ethernet4"].tolist() == [2.5, 3.5]
    fresh = TrafficTracker()
    fresh.note_probe(step, proposal_id=3)
    fresh.settle_probe(False)
    assert fresh.probe is None and fresh.probe_view() is None
    fresh.settle_probe(True)  # nothing awaited: no change
    assert fresh.probe is None


def test_a_diagnostics_port_windows_are_stored_packed() -> None:
    """A diagnostic's per-port windows go into the stored state as float32 bytes (a
    fraction of their size as JSON numbers) and come back as the same rows to float32
    precision; the rest of the record as it was; a packed record that does not hold what
    it says is left out (the diagnostic then judges the group's median window alone)."""
    import json

    from tuning.tracker import PACKED

    rng = np.random.default_rng(3)
    ports = {f"Ethernet{4 * i}": rng.normal(size=45).tolist() for i in range(64)}
    ports["Ethernet0"][3] = float("nan")
    tr = TrafficTracker()
    tr.note_probe({"from": X0.tolist(), "to": X1.tolist(), "for": ["websearch"],
                   "diagnostic": True, "features": ports["Ethernet4"],
                   "port_features": ports, "predicted": {"step": {"median": -0.1}},
                   "labels": {"a": ["x", "y"], "b": ["z", "w"]}, "flags": {"a": [True]},
                   "ragged": {"a": [1.0], "b": [1.0, 2.0]}, "counts": {"a": [2**30 + 1]}})
    state = tr.state()
    packed = state["probe"]["port_features"]
    assert packed["packed"] == PACKED and packed["keys"] == list(ports)
    assert state["probe"]["features"] == ports["Ethernet4"]  # one row: as it was
    plain = json.dumps({**state, "probe": {**state["probe"], "port_features": ports}})
    assert len(json.dumps(state)) < 0.4 * len(plain)
    view = TrafficTracker.from_state(json.loads(json.dumps(state))).probe_view()
    assert view is not None and view["predicted"] == {"step": {"median": -0.1}}
    for other in ("labels", "flags", "ragged", "counts"):  # not rows of floats: as they were
        assert view[other] == tr.probe[other]
    got = view["port_features"]
    assert list(got) == list(ports)
    for key, row in ports.items():
        assert np.allclose(got[key], row, rtol=1e-6, atol=1e-30, equal_nan=True)
    assert np.isnan(got["Ethernet0"][3])
    # stored again as it came back: the same bytes
    assert TrafficTracker.from_state(state).state() == state
    for bad in ({**packed, "data": "not base64!"}, {**packed, "width": 44},
                {**packed, "keys": "Ethernet0"}):
        broken = {**state, "probe": {**state["probe"], "port_features": bad}}
        probe = TrafficTracker.from_state(broken).probe
        assert probe is not None and "port_features" not in probe
        assert probe["for"] == ["websearch"]


def test_a_pfc_change_must_pay_for_itself() -> None:
    """Candidates that move alpha or headroom cost the needed gain in the choice of the best;
    ECN-only moves (and device rounding of the PFC coordinates) cost nothing."""
    from tuning.optimiser import _pfc_cost

    cur = [-1.0, 2.0, -3.0, -3.0, 1.0]
    cands = np.array([cur,
                      [-3.0, 4.0, -2.0, -3.0, 1.0],  # ECN only
                      [-3.0, 4.0, -2.0, -2.0, 1.0],  # alpha x2
                      [-1.0, 2.0, -3.0, -3.0, 1.25],  # headroom
                      [-1.0, 2.0, -3.0, -3.0 + 0.01, 1.0]])  # rounding
    np.testing.assert_allclose(_pfc_cost(cands, 0.113), [0.0, 0.0, 0.113, 0.113, 0.0])


def test_a_hold_next_to_a_reference_settles_on_it() -> None:
    """Held at a set that is no reference, with a reference within one step predicted no
    worse (spread and loss aversion included), the optimiser moves to the reference; not
    when it is predicted worse, when a plausible profile would lose, or from a reference."""
    from tuning.optimiser import _scores, _settle_pick

    cands = np.stack([X2, X1, X0])
    statics = X1[None, :]  # X1 is the reference here
    one = traffic({"websearch": 1.0})
    p = parts({"websearch": [np.log(0.97), np.log(0.9)]})
    assert _settle_pick(_scores(p, one), p, one, cands, statics) == 1
    p = parts({"websearch": [np.log(1.03), np.log(0.9)]})  # predicted 3 % worse
    assert _settle_pick(_scores(p, one), p, one, cands, statics) is None
    two = traffic({"websearch": 0.7, "incast": 0.3})
    p = parts({"websearch": [np.log(0.8), 0.0], "incast": [np.log(1.05), 0.0]})
    assert _settle_pick(_scores(p, two), p, two, cands, statics) is None
    # already at a reference: no hopping between references the model cannot tell apart
    p = parts({"websearch": [np.log(0.97), 0.0]})
    assert _settle_pick(_scores(p, one), p, one, cands, np.stack([X2, X1])) is None


def test_a_rolled_back_set_is_avoided_for_a_while() -> None:
    """The tracker remembers the sets of rolled-back changes, restart-safe, for AVOID_CYCLES
    cycles; the optimiser excludes candidates within AVOID_RADIUS of them, never the current
    set."""
    from tuning.optimiser import AVOID_RADIUS, _avoid_cost
    from tuning.tracker import AVOID_CYCLES

    tr = TrafficTracker()
    tr.update(np.full((2, len(PROFILES)), 1.0 / len(PROFILES)))
    tr.note_rolled_back(X1)
    again = TrafficTracker.from_state(tr.state())
    assert again.avoid_view() == (tuple(X1),)
    for _ in range(AVOID_CYCLES - 1):
        again.update(np.full((2, len(PROFILES)), 1.0 / len(PROFILES)))
    assert again.avoid_view() == (tuple(X1),)
    again.update(np.full((2, len(PROFILES)), 1.0 / len(PROFILES)))
    assert again.avoid_view() == ()
    near = X1 + np.array([AVOID_RADIUS / 2, -AVOID_RADIUS / 2, 0.0, 1.0, 0.0])
    far = X1 + np.array([0.0, 0.0, 2 * AVOID_RADIUS, 0.0, 0.0])
    cost = _avoid_cost(np.stack([X1, X1, near, far, X2]), [tuple(X1)])
    assert cost.tolist() == [0.0, np.inf, np.inf, 0.0, 0.0]


def test_a_failed_direction_is_avoided_beyond_the_rolled_back_set() -> None:
    """With the set a change was rolled back to, the direction is remembered (restart-safe):
    after a deepening that failed (its queue ran into PFC, or bought nothing), ramps deeper
    still are avoided, shallower ones are not; after a shallowing that failed, the mirror."""
    from tuning.optimiser import AVOID_RADIUS, _avoid_cost

    start = X0
    deep = X0 + np.array([1.0, 0.4, 1.0, 0.0, 0.0])  # depth (Kmin + Kmax / 2) up 1.2 octaves
    tr = TrafficTracker()
    tr.note_rolled_back(deep, start)
    again = TrafficTracker.from_state(tr.state())
    assert again.avoid_view() == (tuple(deep) + tuple(start),)
    deeper_still = deep + np.array([0.0, 2.0, 3.0, 0.0, 0.0])  # far from it, but deeper
    a_bit_less = deep - np.array([0.6, 0.3, 0.0, 0.0, 0.0])  # deeper than the start
    kmax_only = X0 + np.array([0.0, 2.0, 0.0, 0.0, 0.0])  # depth +1.0: within the radius
    shallower = X1
    cands = np.stack([start, deeper_still, a_bit_less, kmax_only, shallower])
    assert _avoid_cost(cands, again.avoid_view()).tolist() == [0.0, np.inf, 0.0, np.inf, 0.0]
    # the mirror: a shallowing that failed rules out shallower ramps
    cost = _avoid_cost(np.stack([deep, start, X1 - 1.0, X0 - AVOID_RADIUS / 4]),
                       [tuple(X1) + tuple(deep)])
    assert cost.tolist() == [0.0, 0.0, np.inf, 0.0]
    # a change that did not move the ramp (Pmax only) is avoided only around itself
    pmax_only = X0 + np.array([0.0, 0.0, 1.5, 0.0, 0.0])
    cost = _avoid_cost(np.stack([start, pmax_only, deeper_still, X1]),
                       [tuple(pmax_only) + tuple(start)])
    assert cost.tolist() == [0.0, np.inf, 0.0, 0.0]
    # an entry of the old shape (no set before it) still works
    assert TrafficTracker.from_state({"avoid": [{"x": list(deep), "cycle": 0,
                                                 "from": [1.0]}]}).avoid_view() == (
        tuple(deep),)


def test_a_failed_raise_of_kmax_is_bisected_whatever_the_kmin() -> None:
    """Measured on allreduce at 200G with 20-43 elephants: Kmin 1 -> 3.2 MB, Kmax 2 -> 8 MB
    paused and was rolled back; the next model move kept Kmax at 8 MB under Kmin 1.6 MB (ramp
    depth exactly AVOID_RADIUS less, so not avoided by depth) and paused again, and so did
    Kmax 4 MB (the midpoint) -- with many flows the queue stands near Kmax. A failed change
    that raised Kmax rules out every Kmax from the midpoint (in octaves) of the raise up,
    whatever the Kmin; a failed change that did not raise Kmax does not."""
    from tuning.optimiser import AVOID_RADIUS, _avoid_cost

    start = X0
    deep = X0 + np.array([1.7, 0.3, 2.0, 0.0, 0.0])  # Kmin +1.7, Kmax +2.0 octaves
    same_top = deep + np.array([-1.0, 1.0, 0.0, 0.0, 0.0])  # Kmin -1, Kmax unchanged
    midpoint = deep + np.array([-1.0, 0.0, 0.0, 0.0, 0.0])  # Kmax +1.0: the midpoint
    below = deep + np.array([-1.0, -0.1, 0.0, 0.0, 0.0])  # Kmax +0.9
    cands = np.stack([start, same_top, midpoint, below])
    assert _avoid_cost(cands, [tuple(deep) + tuple(start)]).tolist() == [0.0, np.inf, np.inf,
                                                                          0.0]
    # a deepening by Kmin alone (Kmax where it was) leaves Kmax free
    kmin_up = X0 + np.array([0.8, -0.8, 0.0, 0.0, 0.0])
    top_as_before = X0 + np.array([-0.5, 0.5 + AVOID_RADIUS / 4, 0.0, 0.0, 0.0])
    assert _avoid_cost(np.stack([start, top_as_before]),
                       [tuple(kmin_up) + tuple(start)]).tolist() == [0.0, 0.0]


def test_references_are_told_by_their_ecn_part() -> None:
    """Leaving a static reference for a set that is none needs LEAVE_REFERENCE x the needed
    gain; what counts as a reference is its ECN part (Kmin, Kmax, Pmax), whatever the PFC
    knobs."""
    from tuning.optimiser import LEAVE_REFERENCE, _is_reference

    assert LEAVE_REFERENCE > 1.0
    statics = np.stack([X1, X0])
    assert _is_reference(X1 + np.array([0.0, 0.0, 0.0, 1.0, 0.25]), statics)
    assert not _is_reference(X2, statics)
    assert not _is_reference(X1, np.zeros((0, 5)))


def test_near_equal_moves_are_told_apart_by_the_heading() -> None:
    """Between one-step moves the landscape cannot tell apart (within the needed gain), the
    one towards the best set of the whole box wins; a clearly better move, a move already
    heading that way, a heading within reach, or a static reference keeps its pick."""
    from tuning.optimiser import _heading_rivals, _prefer_heading, _prefer_static

    def pick(score: np.ndarray, cands: np.ndarray, statics: np.ndarray,
             heading: np.ndarray | None, tol: float) -> int:  # as the optimiser does
        best = _prefer_static(score, cands, statics)
        rivals = _heading_rivals(score, cands, statics, best, tol)
        if heading is None or not rivals.any():
            return best
        return _prefer_heading(score, cands, best, rivals, heading)

    deep = np.array([4.0, 1.4, -2.3, -3.0, 1.0])  # deeper than X0: Kmin and Kmax up
    shallow = np.array([-1.0, 3.0, -2.3, -3.0, 1.0])  # four octaves shallower
    cands = np.stack([X0, deep, shallow])
    heading = np.array([-3.0, 3.0, -3.0, -3.0, 1.0])  # a delay-sized ramp, out of reach
    none = np.zeros((0, 5))
    score = np.array([0.0, -0.38, -0.29])
    assert pick(score, cands, none, None, 0.2) == 1  # no heading: the best
    assert pick(score, cands, none, heading, 0.2) == 2  # near-equal, on the way
    assert pick(score, cands, none, heading, 0.05) == 1  # the best is clearly best
    assert pick(np.array([0.0, -0.38, 0.01]), cands, none, heading, 0.5) == 1
    assert pick(score, cands, none, deep, 0.2) == 1  # the best heads there itself
    assert pick(score, cands, none, X0 + 0.5, 0.2) == 1  # heading within reach
    # a static reference the model cannot tell from the best is kept (_prefer_static)
    assert pick(score, cands, np.stack([deep]), heading, 0.2) == 1
