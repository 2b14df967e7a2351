"""Poll cycles over real SSH: 100 virtual switches (half Comware, half SONiC) polled by the
collector's Poller through the netmiko drivers, into a temporary SQLite database.

Prints the wall time of the first cycle (SSH connect + login + session preparation + sudo
on SONiC + poll) and of a second one (persistent sessions: poll only), with samples per
cycle and errors. The virtual switches run live (simulated time follows the wall clock);
their traffic classes are simulated before the clock starts (printed separately).

Environment:
- WATERLINE_BENCH_SWITCHES (default 100), split evenly between the NOSes;
- WATERLINE_BENCH_NOS: mixed (default), sonic or comware;
- WATERLINE_BENCH_HOSTS_PER_TOR (default 8): TOR size (a TOR has hosts + 2 uplinks);
- WATERLINE_BENCH_CONCURRENCY (default 32): Poller threads;
- WATERLINE_BENCH_LAB: process (default: the switches run in a child process, so that the
  SSH servers and the poller do not share one interpreter lock) or inline.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import migrate
from app.db.session import make_engine
from app.inventory import dump_yaml, import_inventory, parse_inventory
from collectors.poller import CycleReport, Poller
from fabricsim.ssh import lab_inventory, merge_inventories, start_lab

N = int(os.environ.get("WATERLINE_BENCH_SWITCHES", "100"))
NOS = os.environ.get("WATERLINE_BENCH_NOS", "mixed")
HOSTS = int(os.environ.get("WATERLINE_BENCH_HOSTS_PER_TOR", "8"))
CONCURRENCY = int(os.environ.get("WATERLINE_BENCH_CONCURRENCY", "32"))
LAB_MODE = os.environ.get("WATERLINE_BENCH_LAB", "process")
PASSWORD = "bench-password"


def inventory() -> dict[str, Any]:
    if NOS == "mixed":
        half = N // 2
        return merge_inventories(
            lab_inventory(half, "comware", prefix="cw-", hosts_per_tor=HOSTS),
            lab_inventory(N - half, "sonic", prefix="sn-", hosts_per_tor=HOSTS))
    return lab_inventory(N, NOS, hosts_per_tor=HOSTS)


def run_lab(conn: Any) -> None:
    """Child process: start the lab, send its inventory, wait for the word to stop."""
    started = time.monotonic()
    lab = start_lab(inventory(), password=PASSWORD, live=True, workers=2)
    conn.send((lab.inventory, time.monotonic() - started))
    conn.recv()
    lab.stop()


def show(label: str, report: CycleReport, switches: int) -> None:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(report.errors.items())) or "none"
    print(f"{label}: {report.wall_s:6.2f} s wall   {report.ok}/{switches} switches ok   "
          f"{report.samples} samples   {report.rows_written} rows written   errors: {errors}")


def main() -> None:
    child: Any = None
    parent_conn: Any = None
    lab: Any = None
    if LAB_MODE == "process":
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        parent_conn, child_conn = ctx.Pipe()
        # not a daemon: the lab's fabric simulates its traffic classes in worker processes
        child = ctx.Process(target=run_lab, args=(child_conn,))
        child.start()
        while not parent_conn.poll(1.0):
            if not child.is_alive():
                raise SystemExit("the lab process died")
        inv, prep_s = parent_conn.recv()
    else:
        started = time.monotonic()
        lab = start_lab(inventory(), password=PASSWORD, live=True, workers=2)
        inv, prep_s = lab.inventory, time.monotonic() - started
    switches = len(inv["switches"])
    ports = sum(len(s["interfaces"]) for s in inv["switches"])
    kinds = sorted({s["driver"] for s in inv["switches"]})
    print(f"{switches} virtual switches ({', '.join(kinds)}), {ports} ports; lab up in "
          f"{prep_s:.1f} s (traffic classes simulated up front), lab {LAB_MODE}")
    os.environ["SWITCH_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(engine)
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            import_inventory(session, parse_inventory(dump_yaml(inv)))
            session.commit()
        poller = Poller(engine, concurrency=CONCURRENCY, timeout_s=20.0)
        poller.load_targets()
        first = poller.poll_cycle()
        show("cycle 1 (connect + poll)", first, switches)
        time.sleep(1.0)
        second = poller.poll_cycle()
        show("cycle 2 (persistent)    ", second, switches)
        poller.close()
        engine.dispose()
    if child is not None:
        parent_conn.send("stop")
        child.join(timeout=30)
    if lab is not None:
        lab.stop()


if __name__ == "__main__":
    main()
