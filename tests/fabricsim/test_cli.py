"""``waterline sim`` / ``python -m fabricsim``: run, fluid and sweep, JSON and tables."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from fabricsim.cli import app

runner = CliRunner()


def test_run_json_prints_the_kpis() -> None:
    res = runner.invoke(app, [
        "run", "--profile", "allreduce", "--speed-gbps", "100", "--flows", "4",
        "--kmin-bytes", "50000", "--kmax-bytes", "200000", "--pmax", "0.05",
        "--headroom-bytes", "177632", "--alpha", "0.125",
        "--duration-ms", "1", "--warmup-ms", "0.5", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    for key in ("mice_fct_slowdown_p50", "mice_fct_slowdown_p99", "utilisation",
                "pause_time_fraction", "queue_p99_bytes", "drops", "objective"):
        assert key in doc["kpis"]
    assert doc["thresholds"]["headroom_bytes"] == 177632
    assert doc["feasible"] is True


def test_run_table_and_bad_input() -> None:
    res = runner.invoke(app, [
        "run", "--profile", "incast", "--speed-gbps", "100", "--incast-degree", "8",
        "--kmin-bytes", "400000", "--kmax-bytes", "1600000", "--pmax", "0.2",
        "--duration-ms", "1", "--warmup-ms", "0"])
    assert res.exit_code == 0, res.output
    assert "objective" in res.output and "mice_fct_slowdown_p99" in res.output
    bad = runner.invoke(app, [
        "run", "--profile", "incast", "--speed-gbps", "100", "--kmin-bytes", "10",
        "--kmax-bytes", "5", "--pmax", "0.2", "--duration-ms", "1"])
    assert bad.exit_code != 0
    bad = runner.invoke(app, [
        "run", "--profile", "nope", "--speed-gbps", "100", "--kmin-bytes", "1",
        "--kmax-bytes", "5", "--pmax", "0.2"])
    assert bad.exit_code != 0


def test_fluid_json() -> None:
    res = runner.invoke(app, ["fluid", "--flows", "4", "--speed-gbps", "40",
                              "--feedback-delay-us", "4", "--kmin-bytes", "5000",
                              "--kmax-bytes", "200000", "--pmax", "0.01", "--rai-mbps", "40",
                              "--duration-ms", "20", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert {"queue_mean_bytes", "queue_std_bytes", "utilisation"} <= set(doc)
    assert doc["utilisation"] > 0.95


def test_sweep_json_sorted_by_objective() -> None:
    res = runner.invoke(app, [
        "sweep", "--profile", "allreduce", "--speed-gbps", "100", "--flows", "4",
        "--kmin-bytes", "5000,100000", "--kmin-bytes", "1000000", "--kmax-factor", "4",
        "--pmax", "0.05,0.5", "--duration-ms", "1", "--warmup-ms", "0.5", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 3 * 2 + 4  # grid + the four static baselines
    objs = [r["objective"] for r in rows]
    assert objs == sorted(objs)
    assert {r["label"] for r in rows} >= {"grid", "sonic_default", "hpcc", "vendor",
                                          "dcqcn_paper"}
    table = runner.invoke(app, [
        "sweep", "--profile", "allreduce", "--speed-gbps", "100", "--kmin-bytes", "50000",
        "--kmax-bytes", "100000,400000", "--pmax", "0.1", "--no-baselines",
        "--duration-ms", "1", "--warmup-ms", "0"])
    assert table.exit_code == 0, table.output
    assert len(table.output.strip().splitlines()) == 1 + 2


def test_python_dash_m() -> None:
    out = subprocess.run([sys.executable, "-m", "fabricsim", "fluid", "--flows", "2",
                          "--duration-ms", "5", "--json"], capture_output=True, text=True,
                         check=True)
    assert "queue_mean_bytes" in json.loads(out.stdout)
