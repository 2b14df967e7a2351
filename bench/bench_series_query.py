"""Series query latency with >= 10 million samples stored in PostgreSQL.

Loads the samples server-side (generate_series: 100 switches x 64 ports x 2 priorities, a
sample every 10 s for ~2.2 h = 10.2 M rows), runs the rollups, then times the API's series
query (app.telemetry.series, the function behind GET /api/v1/telemetry/series) for random
port x priority x 1 h windows at a raw step (10 s) and a rollup step (60 s). Prints p50/p99.
Target: p99 <= 100 ms.

Set WATERLINE_BENCH_SAMPLES to change the size; the benchmark uses its own schema and drops it.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pg_schema import Unavailable, bench_schema
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app import telemetry
from app.db import migrate
from app.inventory import dump_yaml, import_inventory, parse_inventory
from collectors.ingest import analyse, run_rollups
from fabricsim.topology import FabricParams, generate_fabric

TARGET_SAMPLES = int(os.environ.get("WATERLINE_BENCH_SAMPLES", "10000000"))
QUERIES = 300
T0_MS = 1_800_000_000_000 // 3_600_000 * 3_600_000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    try:
        with bench_schema() as engine:
            run(engine)
    except Unavailable as exc:
        print(f"series query benchmark skipped: PostgreSQL unavailable ({exc})")


def run(engine: Engine) -> None:
    migrate.upgrade(engine)
    # 100 switches with 64 ports each (a 64-port TOR layout: 62 hosts + 2 uplinks).
    inv = generate_fabric(FabricParams(pods=1, tors_per_pod=98, leaves_per_pod=2, spines=1,
                                       hosts_per_tor=62))
    with Session(engine) as session:
        import_inventory(session, parse_inventory(dump_yaml(inv)))
        session.commit()
        ports = session.execute(text(
            "SELECT s.name, i.name, i.id, s.id FROM interfaces i JOIN switches s "
            "ON s.id = i.switch_id")).all()
    series_count = len(ports) * 2
    steps = max(1, TARGET_SAMPLES // series_count + 1)
    print(f"== series query benchmark: loading {series_count * steps:,} samples "
          f"({series_count:,} series x {steps} polls)")
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO telemetry_samples (switch_id, interface_id, priority, ts_ms,
                interval_s, tx_bytes, tx_packets, ecn_marked_packets, rx_pause_frames,
                tx_pause_frames, drop_packets, occupancy_bytes, watermark_bytes,
                tx_bytes_per_s, tx_packets_per_s, ecn_marked_packets_per_s,
                rx_pause_frames_per_s, tx_pause_frames_per_s, drop_packets_per_s,
                utilisation)
            SELECT i.switch_id, i.id, p, :t0 + k * 10000, 10.0,
                k * 1000000, k * 1000, k * 10, k, k, 0, (k * 7919) % 500000,
                (k * 104729) % 2000000,
                1e8 + (i.id * 31 + k * 17) % 1000 * 1e6, 1e5, (k % 97) * 10.0, 1.0, 1.0,
                0.0, ((i.id + k) % 100) / 100.0
            FROM interfaces i, generate_series(0, :steps - 1) AS k, (VALUES (3), (4)) AS v(p)
            """), {"t0": T0_MS, "steps": steps})
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    run_rollups(engine, now_ms=T0_MS + steps * 10_000 + 3_600_000)
    analyse(engine)
    rollup_s = time.perf_counter() - started
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM telemetry_samples")).scalar_one()
    print(f"loaded {total:,} samples in {load_s:.0f} s; rollups + ANALYZE {rollup_s:.0f} s")

    rng = random.Random(7)
    span_ms = steps * 10_000
    for step_s, label in ((10.0, "raw, 10 s step"), (60.0, "1 min rollup, 60 s step")):
        timings: list[float] = []
        points = 0
        with Session(engine) as session:
            for _ in range(QUERIES):
                sw, iface, _iid, _sid = rng.choice(ports)
                start = T0_MS + rng.randrange(0, max(1, span_ms - 3_600_000), 10_000)
                t = time.perf_counter()
                result = telemetry.series(session, switch=sw, interface=iface,
                                          priority=rng.choice((3, 4)),
                                          metric="tx_bytes_per_s", start_ms=start,
                                          end_ms=start + 3_600_000, step_s=step_s)
                timings.append((time.perf_counter() - t) * 1000)
                points += len(result.points)
        print(f"series query ({label}, 1 h window, {points / QUERIES:.0f} points): "
              f"p50 {statistics.median(timings):.1f} ms  p99 {pct(timings, 0.99):.1f} ms  "
              f"(n={QUERIES}, {total:,} samples stored)")


if __name__ == "__main__":
    main()
