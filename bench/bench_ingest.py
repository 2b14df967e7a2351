"""Ingest throughput: Waterline's idempotent ingest vs a raw bulk load of the same rows.

Prints samples/s into SQLite and PostgreSQL for
- `Ingestor.write` (idempotent: ON CONFLICT DO NOTHING, plus the latest-snapshot upsert;
  PostgreSQL goes through COPY into a temporary table), and
- a raw bulk load (SQLite: DB-API executemany of plain INSERTs; PostgreSQL: COPY straight into
  the table), which is the ceiling. Both commit once per batch of one poll of 100 switches.
Target: ingest at >= 50% of the raw bulk-load rate.

PostgreSQL: WATERLINE_BENCH_DATABASE_URL or WATERLINE_TEST_DATABASE_URL or the local `test`
database; the benchmark works in a schema of its own and drops it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pg_schema import Unavailable, bench_schema
from sqlalchemy import Engine, text

from app.db import migrate
from app.db.session import make_engine
from app.inventory import dump_yaml, import_inventory, parse_inventory
from collectors.ingest import Ingestor
from collectors.normalise import SAMPLE_COLUMNS, SampleBatch
from fabricsim.topology import FabricParams, generate_fabric

ROWS = int(os.environ.get("WATERLINE_BENCH_ROWS", "200000"))
BATCH = 12_800  # one poll of 100 switches x 64 ports x 2 priorities


def fabric(engine: Engine) -> list[tuple[int, int]]:
    from sqlalchemy.orm import Session

    from app.db.models import Interface

    inv = generate_fabric(FabricParams(pods=4, tors_per_pod=8, leaves_per_pod=4, spines=4,
                                       hosts_per_tor=32))
    with Session(engine) as session:
        import_inventory(session, parse_inventory(dump_yaml(inv)))
        session.commit()
        return [(i.switch_id, i.id) for i in session.query(Interface).all()]


def make_rows(series: list[tuple[int, int]], n: int, t0_ms: int) -> list[dict[str, Any]]:
    rows = []
    k = 0
    step = 0
    while len(rows) < n:
        for switch_id, iface_id in series:
            for prio in (3, 4):
                k += 1
                rows.append({
                    "switch_id": switch_id, "interface_id": iface_id, "priority": prio,
                    "ts_ms": t0_ms + step * 10_000, "interval_s": 10.0,
                    "tx_packets": k * 7, "tx_bytes": k * 7000, "ecn_marked_packets": k,
                    "rx_pause_frames": k // 3, "tx_pause_frames": k // 5, "drop_packets": 0,
                    "occupancy_bytes": k % 100_000, "watermark_bytes": k % 400_000,
                    "tx_bytes_per_s": 1.2e9, "tx_packets_per_s": 1.1e6,
                    "ecn_marked_packets_per_s": 300.0, "rx_pause_frames_per_s": 2.0,
                    "tx_pause_frames_per_s": 1.0, "drop_packets_per_s": 0.0, "utilisation": 0.1,
                })
                if len(rows) == n:
                    return rows
        step += 1
    return rows


def raw_load(engine: Engine, rows: list[dict[str, Any]]) -> float:
    """The ceiling: tuples prepared before timing, one transaction, no conflict handling."""
    tuples = [tuple(r[c] for c in SAMPLE_COLUMNS) for r in rows]
    started = time.perf_counter()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            raw = conn.connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                f"COPY telemetry_samples ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN"
            ) as copy:
                for t in tuples:
                    copy.write_row(t)
        else:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            cursor = raw.cursor()
            sql = (f"INSERT INTO telemetry_samples ({', '.join(SAMPLE_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(SAMPLE_COLUMNS))})")
            for i in range(0, len(tuples), BATCH):
                cursor.executemany(sql, tuples[i:i + BATCH])
            cursor.close()
    return time.perf_counter() - started


def ingest(engine: Engine, rows: list[dict[str, Any]]) -> float:
    """Batches as the normaliser hands them to the ingestor (columns), one per poll."""
    batches = [SampleBatch.from_rows(rows[i:i + BATCH]) for i in range(0, len(rows), BATCH)]
    ingestor = Ingestor(engine, batch_rows=BATCH)
    started = time.perf_counter()
    for batch in batches:
        result = ingestor.write(batch)
        assert result.error is None, result.error
    return time.perf_counter() - started


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM telemetry_samples"))
        conn.execute(text("DELETE FROM telemetry_latest"))


def run(label: str, engine: Engine) -> None:
    migrate.upgrade(engine)
    series = fabric(engine)
    rows = make_rows(series, ROWS, 1_700_000_000_000)
    raw_s = raw_load(engine, rows)
    clear(engine)
    ingest_s = ingest(engine, rows)
    again_s = ingest(engine, rows)  # the same rows again: all conflicts
    raw_rate, ingest_rate = len(rows) / raw_s, len(rows) / ingest_s
    print(f"{label:10s} rows={len(rows):,}  raw bulk load {raw_rate:12,.0f} samples/s  "
          f"ingest {ingest_rate:12,.0f} samples/s  ({100 * ingest_rate / raw_rate:5.1f}% of raw; "
          f"re-ingest of duplicates {len(rows) / again_s:,.0f}/s)")


def main() -> None:
    print(f"== ingest benchmark ({ROWS:,} samples, batches of {BATCH:,})")
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        run("SQLite", engine)
        engine.dispose()
    try:
        with bench_schema() as engine:
            run("PostgreSQL", engine)
    except Unavailable as exc:
        print(f"PostgreSQL  skipped: {exc}")


if __name__ == "__main__":
    main()
