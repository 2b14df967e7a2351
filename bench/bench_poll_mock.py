"""One poll cycle of 1,000 mock switches x 64 ports x 2 lossless priorities (128,000 series).

The cycle is what the collector does every interval: read every switch through the mock
driver (the in-process virtual fabric), normalise counters to rates, and ingest the rows into
the database (SQLite file here). The virtual fabric's one-off class simulation is done before
timing (it is start-up cost, reported separately). Target: <= 5 s per cycle.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.orm import Session

from app.db import migrate
from app.db.session import make_engine
from app.drivers import mock
from app.inventory import dump_yaml, import_inventory, parse_inventory
from collectors.poller import Poller

SWITCHES = int(os.environ.get("WATERLINE_BENCH_SWITCHES", "1000"))
PORTS = 64


def inventory() -> dict[str, Any]:
    """1,000 TOR-like switches of 64 ports: 56 host ports at 100G and 8 uplinks at 400G."""
    switches = []
    for n in range(SWITCHES):
        interfaces = [{"name": f"Ethernet{4 * i}", "speed_gbps": 100 if i < 56 else 400,
                       "peer": f"host-{n}-{i}" if i < 56 else f"leaf-{i}",
                       "cable_m": 3.0 if i < 56 else 40.0} for i in range(PORTS)]
        switches.append({"name": f"tor-{n:04d}", "role": "tor", "pod": n // 50,
                         "mgmt_host": "127.0.0.1", "driver": "mock", "model": "Mellanox SN3700",
                         "buffer_bytes": 42 * 1024 * 1024, "interfaces": interfaces})
    return {"fabric": {"name": "bench", "lossless_priorities": [3, 4], "cnp_priority": 6},
            "switches": switches, "links": []}


def main() -> None:
    inv = inventory()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(engine)
        started = time.perf_counter()
        with Session(engine) as session:
            import_inventory(session, parse_inventory(dump_yaml(inv)))
            session.commit()
        import_s = time.perf_counter() - started
        started = time.perf_counter()
        state = mock.install(inv, seed=1, live=False)
        classes = state.fabric.prepare()
        prepare_s = time.perf_counter() - started
        poller = Poller(engine, concurrency=32, qos_refresh_s=1e9)
        poller.load_targets()
        print(f"== poll cycle: {SWITCHES:,} mock switches x {PORTS} ports x 2 priorities "
              f"({SWITCHES * PORTS * 2:,} series); inventory import {import_s:.1f} s, "
              f"virtual fabric {classes} classes simulated in {prepare_s:.1f} s (one-off)")
        for cycle in range(3):
            state.fabric.advance(10.0)
            report = poller.poll_cycle(timeout_s=120)
            print(f"cycle {cycle + 1}: {report.wall_s:.2f} s wall, {report.ok} switches ok, "
                  f"{report.failed} failed, {report.samples:,} samples read, "
                  f"{report.rows_written:,} rows written")
        poller.close()
        engine.dispose()


if __name__ == "__main__":
    main()
