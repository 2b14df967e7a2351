"""Bulk ingest: idempotent writes, latest snapshot, rollups, retention, the outage buffer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.db.models import (
    TelemetryBlock,
    TelemetryLatest,
    TelemetryRollup1h,
    TelemetryRollup1m,
    TelemetrySample,
)
from app.telemetry import load_window_rows
from collectors.ingest import Ingestor, apply_retention, run_rollups
from tests.collectors.helpers import interface_ids, load_fabric
from tests.conftest import Database


def rows_for(switch_id: int, iface_id: int, ts_ms: int, n: int = 1, step_ms: int = 10_000,
             base: int = 0) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        out.append({
            "switch_id": switch_id, "interface_id": iface_id, "priority": 3,
            "ts_ms": ts_ms + k * step_ms, "interval_s": 10.0,
            "tx_bytes": base + k * 1000, "tx_packets": k, "ecn_marked_packets": 0,
            "rx_pause_frames": 0, "tx_pause_frames": 0, "drop_packets": 0,
            "occupancy_bytes": 100 * k, "watermark_bytes": 1000 + k,
            "tx_bytes_per_s": 100.0 * (k + 1), "tx_packets_per_s": 1.0,
            "ecn_marked_packets_per_s": 0.0, "rx_pause_frames_per_s": 0.0,
            "tx_pause_frames_per_s": 0.0, "drop_packets_per_s": 0.0, "utilisation": 0.5,
        })
    return out


def count(db: Database, model: Any) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_ingest_is_idempotent(db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1)
    sw = switches["tor-p1-1"]
    iface = interface_ids(db, "tor-p1-1")["Ethernet0"]
    ingestor = Ingestor(db.engine)
    batch = rows_for(sw.id, iface, 1_700_000_000_000, n=5)
    assert ingestor.write(batch).written == 5
    assert ingestor.write(batch).written == 5  # the same rows again: accepted, not duplicated
    assert ingestor.write(batch[2:] + rows_for(sw.id, iface, 1_700_000_050_000, n=1)).written == 4
    assert count(db, TelemetrySample) == 6
    with db.session() as s:
        latest = s.scalars(select(TelemetryLatest)).one()
    assert latest.ts_ms == 1_700_000_050_000


def test_latest_never_goes_back_in_time(db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1)
    sw = switches["tor-p1-1"]
    iface = interface_ids(db, "tor-p1-1")["Ethernet0"]
    ingestor = Ingestor(db.engine)
    ingestor.write(rows_for(sw.id, iface, 2_000_000, base=500))
    ingestor.write(rows_for(sw.id, iface, 1_000_000, base=1))  # a late, older sample
    with db.session() as s:
        latest = s.scalars(select(TelemetryLatest)).one()
    assert (latest.ts_ms, latest.tx_bytes) == (2_000_000, 500)


def test_database_outage_buffers_then_retries(db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1)
    sw = switches["tor-p1-1"]
    iface = interface_ids(db, "tor-p1-1")["Ethernet0"]
    from app.db.session import make_engine

    dead = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    ingestor = Ingestor(dead, buffer_limit=7)
    first = ingestor.write(rows_for(sw.id, iface, 0, n=5))
    assert first.written == 0 and first.buffered == 5 and first.error
    second = ingestor.write(rows_for(sw.id, iface, 100_000, n=5))
    assert second.buffered == 7 and second.dropped == 3 and ingestor.overflow_total == 3
    ingestor.engine = db.engine  # the database is back
    third = ingestor.flush()
    assert third.written == 7 and third.buffered == 0
    assert count(db, TelemetrySample) == 7
    with db.session() as s:  # the oldest were the ones dropped
        assert s.scalar(select(func.min(TelemetrySample.ts_ms))) == 30_000


def test_rollups_and_retention(db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1)
    sw = switches["tor-p1-1"]
    iface = interface_ids(db, "tor-p1-1")["Ethernet0"]
    hour = 3_600_000
    t0 = 1_000 * hour
    # two hours of 10 s samples; tx_bytes_per_s = 100 * (k+1)
    Ingestor(db.engine).write(rows_for(sw.id, iface, t0, n=720))
    done = run_rollups(db.engine, now_ms=t0 + 2 * hour + 60_000)
    assert done["rollup_1m"] == t0 + 2 * hour
    with db.session() as s:
        minutes = s.scalars(select(TelemetryRollup1m).order_by(TelemetryRollup1m.bucket_ms)).all()
        hours = s.scalars(select(TelemetryRollup1h).order_by(TelemetryRollup1h.bucket_ms)).all()
    assert len(minutes) == 120 and minutes[0].samples == 6
    assert minutes[0].tx_bytes_per_s == sum(100.0 * (k + 1) for k in range(6)) / 6
    assert minutes[1].watermark_bytes == 1000 + 11
    assert len(hours) == 2 and hours[0].samples == 360
    assert hours[0].tx_bytes_per_s == sum(100.0 * (k + 1) for k in range(360)) / 360
    # running again changes nothing
    run_rollups(db.engine, now_ms=t0 + 2 * hour + 60_000)
    assert count(db, TelemetryRollup1m) == 120
    # retention keeps raw samples the rollup has not covered and deletes older ones
    deleted = apply_retention(db.engine, raw_days=0, rollup_1m_days=365,
                              now_ms=t0 + 2 * hour + 60_000)
    assert deleted["raw"] == 720
    assert count(db, TelemetryRollup1m) == 120


def test_late_samples_are_rolled_up(db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1)
    sw = switches["tor-p1-1"]
    iface = interface_ids(db, "tor-p1-1")["Ethernet0"]
    hour = 3_600_000
    t0 = 2_000 * hour
    ingestor = Ingestor(db.engine)
    ingestor.write(rows_for(sw.id, iface, t0 + 30 * 60_000, n=6))  # minute 30
    run_rollups(db.engine, now_ms=t0 + 2 * hour)
    # a collector flushes its outage buffer: samples of minute 5, long rolled up
    ingestor.write(rows_for(sw.id, iface, t0 + 5 * 60_000, n=6))
    run_rollups(db.engine, now_ms=t0 + 2 * hour + 60_000)
    with db.session() as s:
        buckets = {r.bucket_ms: r.samples for r in s.scalars(select(TelemetryRollup1m))}
        hourly = s.scalars(select(TelemetryRollup1h)).all()
    assert buckets[t0 + 5 * 60_000] == 6 and buckets[t0 + 30 * 60_000] == 6
    assert [h.samples for h in hourly] == [12]


def test_a_row_the_database_refuses_does_not_block_the_rest(db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1)
    sw = switches["tor-p1-1"]
    iface = interface_ids(db, "tor-p1-1")["Ethernet0"]
    rows = rows_for(sw.id, iface, 1_000_000, n=10)
    rows[3]["interface_id"] = 999_999  # an interface deleted since the poll
    result = Ingestor(db.engine).write(rows)
    assert result.written == 9 and result.rejected == 1 and result.error is None
    assert count(db, TelemetrySample) == 9


def test_telemetry_blocks_are_kept_for_the_longest_window_or_the_raw_retention(
        db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1)
    sw = switches["tor-p1-1"]
    iface = interface_ids(db, "tor-p1-1")["Ethernet0"]
    day = 86_400_000
    t0 = 20_000 * day
    ingestor = Ingestor(db.engine, batch_rows=6)  # one block per minute of samples
    for d in (0, 1, 2):  # a minute of samples at the start of three days
        ingestor.write(rows_for(sw.id, iface, t0 + d * day, n=6))
    assert count(db, TelemetryBlock) == 3
    now = t0 + 2 * day + 60_000
    deleted = apply_retention(db.engine, raw_days=7, rollup_1m_days=365, now_ms=now)
    assert deleted["blocks"] == 2 and count(db, TelemetryBlock) == 1  # older than a day
    ingestor.write(rows_for(sw.id, iface, now - 3_600_000, n=6))  # a minute an hour ago
    # a raw retention of 30 minutes is shorter than a day: that block goes, the last stays
    deleted = apply_retention(db.engine, raw_days=1 / 48, rollup_1m_days=365, now_ms=now)
    assert deleted["blocks"] == 1 and count(db, TelemetryBlock) == 1
    with db.session() as s:
        got = load_window_rows(s, start_ms=now - day, end_ms=now, priorities=[3])
    assert got.counts.tolist() == [6]
    assert got.ts_ms[0].tolist() == [t0 + 2 * day + k * 10_000 for k in range(6)]
