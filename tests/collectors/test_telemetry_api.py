"""Telemetry API through HTTP, and /metrics checked by Prometheus' own promtool."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from sqlalchemy import select

from app.db.models import QosWaterline, Switch
from collectors.ingest import Ingestor, run_rollups
from tests.collectors.helpers import interface_ids, load_fabric
from tests.collectors.test_ingest import rows_for
from tests.conftest import Api

HOUR = 3_600_000


@pytest.fixture
def stored(api: Api) -> dict[str, int]:
    switches = load_fabric(api.db, pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1,
                           hosts_per_tor=2)
    now = int(time.time() * 1000)
    t0 = (now - 3 * HOUR) // HOUR * HOUR
    ids = interface_ids(api.db, "tor-p1-1")
    rows = rows_for(switches["tor-p1-1"].id, ids["Ethernet0"], t0, n=3 * 360)
    hot = rows_for(switches["tor-p1-2"].id, interface_ids(api.db, "tor-p1-2")["Ethernet4"],
                   now - 120_000, n=6)
    for r in hot:
        r["ecn_marked_packets_per_s"] = 5000.0
        r["tx_packets_per_s"] = 10000.0
    Ingestor(api.db.engine).write(rows + hot)
    run_rollups(api.db.engine, now_ms=now)
    return {"t0": t0, "now": now}


def test_series_raw_and_rollups(api: Api, stored: dict[str, int]) -> None:
    t0 = stored["t0"]
    params = {"switch": "tor-p1-1", "interface": "Ethernet0", "priority": 3,
              "metric": "tx_bytes_per_s", "start": t0 / 1000, "end": (t0 + 600_000) / 1000}
    raw = api.get("/api/v1/telemetry/series", params={**params, "step": 10}).json()
    assert raw["source"] == "raw" and len(raw["points"]) == 60
    assert raw["points"][0] == [t0 / 1000, 100.0] and raw["points"][5][1] == 600.0
    minute = api.get("/api/v1/telemetry/series", params={**params, "step": 60}).json()
    assert minute["source"] == "1m" and len(minute["points"]) == 10
    assert minute["points"][0][1] == pytest.approx(sum(100.0 * (k + 1) for k in range(6)) / 6)
    hourly = api.get("/api/v1/telemetry/series", params={
        **params, "end": (t0 + 3 * HOUR) / 1000, "step": 3600}).json()
    assert hourly["source"] == "1h" and len(hourly["points"]) == 3
    assert hourly["points"][0][1] == pytest.approx(sum(100.0 * (k + 1) for k in range(360)) / 360)
    iso = api.get("/api/v1/telemetry/series", params={
        **params, "start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"}).json()
    assert iso["points"] == []


@pytest.mark.parametrize("params,reason", [
    ({"metric": "bogus"}, "metric"),
    ({"priority": 9}, "priority"),
    ({"start": "yesterday"}, "start: expected unix seconds or ISO 8601"),
    ({"start": "2026-01-01T00:00:00"}, "start: ISO 8601 time needs a timezone"),
    ({"start": "200", "end": "100"}, "start: must be before end"),
    ({"start": "0", "end": "1000000", "step": "1"}, "step:"),
    ({"step": "-5"}, "step"),
])
def test_series_bad_parameters_422(api: Api, stored: dict[str, int], params: dict[str, str],
                                   reason: str) -> None:
    base = {"switch": "tor-p1-1", "interface": "Ethernet0", "metric": "utilisation"}
    r = api.get("/api/v1/telemetry/series", params={**base, **params})
    assert r.status_code == 422, r.text
    assert reason in r.text


def test_series_unknown_switch_or_interface_404(api: Api, stored: dict[str, int]) -> None:
    base = {"interface": "Ethernet0", "metric": "utilisation"}
    r = api.get("/api/v1/telemetry/series", params={**base, "switch": "nope"})
    assert r.status_code == 404 and "nope" in r.text
    r = api.get("/api/v1/telemetry/series",
                params={**base, "switch": "tor-p1-1", "interface": "Ethernet404"})
    assert r.status_code == 404 and "Ethernet404" in r.text


def test_hotspots(api: Api, stored: dict[str, int]) -> None:
    top = api.get("/api/v1/telemetry/hotspots",
                  params={"metric": "ecn_mark_ratio", "window": 600, "limit": 3}).json()
    assert top[0]["switch"] == "tor-p1-2" and top[0]["interface"] == "Ethernet4"
    assert top[0]["value"] == pytest.approx(0.5)
    assert api.get("/api/v1/telemetry/hotspots", params={"limit": 0}).status_code == 422
    assert api.get("/api/v1/telemetry/hotspots", params={"role": "leaf"}).json() == []


def test_health_endpoints(api: Api, stored: dict[str, int]) -> None:
    body = api.get("/api/v1/telemetry/health").json()
    assert body["counts"] == {"unknown": 4}
    assert api.get("/api/v1/telemetry/health/tor-p1-1").json()["health"] == "unknown"
    assert api.get("/api/v1/telemetry/health/nope").status_code == 404


def promtool() -> str | None:
    path = shutil.which("promtool")
    if path is None and os.environ.get("WATERLINE_REQUIRE_POSTGRES") == "1":
        pytest.fail("promtool is required in CI (Debian package prometheus)")
    return path


def test_metrics_exports_fabric_snapshot_and_passes_promtool(api: Api,
                                                             stored: dict[str, int]) -> None:
    with api.db.session() as s:
        tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
        s.add(QosWaterline(switch_id=tor.id, priority=3, kind="observed", kmin_bytes=100_000,
                           kmax_bytes=400_000, pmax=0.2, headroom_bytes=180_000, alpha=0.125))
        s.commit()
    text = api.client.get("/metrics").text  # type: ignore[attr-defined]
    assert ('roce_tx_bytes_total{interface="Ethernet0",priority="3",switch="tor-p1-1"}'
            in text)
    assert 'roce_pfc_pause_frames_total{direction="rx",interface="Ethernet0"' in text
    assert 'roce_ecn_kmin_bytes{kind="observed",priority="3",switch="tor-p1-1"} 100000.0' in text
    assert 'roce_switch_up{pod="1",role="tor",switch="tor-p1-1"} 0.0' in text
    assert "waterline_samples_ingested_total" in text
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not installed")
    check = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_fabric_kpis_from_stored_telemetry(api: Api, stored: dict[str, int]) -> None:
    """/fabric/kpis averages the stored window of the busy lossless ports, overall and per
    classified profile; idle ports (the others here) are left out."""
    from app.db.models import Interface, PortProfile

    now = int(time.time() * 1000)
    ids = interface_ids(api.db, "tor-p1-1")
    with api.db.session() as s:
        tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
        speed_gbps = s.get(Interface, ids["Ethernet4"]).speed_gbps  # type: ignore[union-attr]
    rows = rows_for(tor.id, ids["Ethernet4"], now - 60_000, n=6)
    for r in rows:
        r.update(tx_bytes_per_s=0.4 * speed_gbps * 1e9 / 8, tx_packets_per_s=1e6,
                 ecn_marked_packets_per_s=1e4, tx_pause_frames_per_s=7.0)
    assert Ingestor(api.db.engine).write(rows).error is None
    with api.db.session() as s:
        s.add(PortProfile(switch_id=tor.id, interface_id=ids["Ethernet4"], priority=3,
                          profile="incast", probability=0.8, since_ms=now, updated_ms=now))
        s.commit()
    body = api.get("/api/v1/fabric/kpis?window=300").json()
    assert body["ports"] == 1
    assert body["telemetry"]["utilisation"] == pytest.approx(0.4)
    assert body["telemetry"]["ecn_mark_ratio"] == pytest.approx(0.01)
    assert body["telemetry"]["tx_pause_per_s"] == pytest.approx(7.0)
    assert [(p["profile"], p["ports"]) for p in body["by_profile"]] == [("incast", 1)]
