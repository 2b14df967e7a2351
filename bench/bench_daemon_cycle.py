"""The daemon's whole proposal cycle for a large fabric, database included.

    .venv/bin/python bench/bench_daemon_cycle.py [--switches 1000] [--ports 64] [--pg]

``bench_tuner.py`` times the tuning itself on arrays in memory; this times what
``waterline daemon`` does per cycle in ``propose`` mode on a stored fabric: read the last
window of samples of every (switch, interface, lossless priority) from the database, compute
the features, classify every port, record each port's profile (``port_profiles``) and the
Prometheus gauges, track every switch priority (``profile_tracks``), run the optimiser and
store one proposal per switch priority with a change to propose.

Set-up (not timed): ``--switches`` ToRs of ``--ports`` 100G ports each, all at the SONiC
default waterlines on priorities 3 and 4, and 12 polls of samples per port and priority
(1,000 x 64 x 2 x 12 = 1.5 M rows, written through the ingest as the poller writes them),
tiled from virtual-fabric windows of all five profiles as in ``bench_tuner.py``. SQLite in
a temporary file by default; ``--pg`` uses PostgreSQL (WATERLINE_BENCH_DATABASE_URL or
WATERLINE_TEST_DATABASE_URL or the local ``test`` database, in a schema of its own that is
dropped afterwards).

Prints the wall seconds of the first cycle (every port profile and track new) and of the
second (the same rows updated, proposals already pending), each split into its steps, and
the process' resident memory before the cycle and at its peak during it.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tuner import sample_windows
from pg_schema import Unavailable, bench_schema
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.changes.service import ChangeService
from app.daemon import DaemonOptions, TunerDaemon
from app.db import migrate
from app.db.models import Interface, Proposal, Switch
from app.db.session import make_engine
from app.drivers.models import QosConfig, Waterlines
from app.inventory import import_inventory, parse_inventory
from collectors.ingest import Ingestor
from collectors.normalise import SAMPLE_COLUMNS, SampleBatch
from tuning.features import WINDOW_FIELDS

POLL_S = 10
POLLS = 12
PRIORITIES = (3, 4)
T0_MS = 1_800_000_000_000
SONIC = Waterlines(kmin_bytes=1 << 20, kmax_bytes=2 << 20, pmax=0.05, xoff_bytes=81920,
                   xon_bytes=18432, headroom_bytes=100352, alpha=0.125)


def inventory(n_switches: int, ports: int) -> dict[str, Any]:
    return {
        "fabric": {"name": "bench", "lossless_priorities": list(PRIORITIES), "cnp_priority": 6},
        "switches": [{
            "name": f"tor-{s:04d}", "role": "tor", "pod": 1 + s // 32,
            "mgmt_host": "127.0.0.1", "mgmt_port": 22, "driver": "mock",
            "model": "Mellanox SN3700", "asic": "Spectrum-2", "buffer_bytes": 32 << 20,
            "credentials_ref": "", "enabled": True,
            "interfaces": [{"name": f"Ethernet{4 * i}", "speed_gbps": 100,
                            "peer": f"gpu-{s}-{i}", "cable_m": 3} for i in range(ports)],
        } for s in range(n_switches)],
        "links": [],
    }


def populate(engine: Engine, n_switches: int, ports: int) -> float:
    """The fabric, its observed QoS state and one window of samples; returns seconds."""
    t = time.perf_counter()
    with Session(engine) as session:
        import_inventory(session, parse_inventory(yaml.safe_dump(inventory(n_switches, ports))))
        qos = QosConfig(pfc_priorities=PRIORITIES, ecn_queues=PRIORITIES,
                        waterlines={p: SONIC for p in PRIORITIES}).model_dump(mode="json")
        for sw in session.scalars(select(Switch)):
            sw.observed_qos = qos
        session.commit()
        series = [(i.switch_id, i.id) for i in session.scalars(
            select(Interface).order_by(Interface.switch_id, Interface.id))]
    fields, _ = sample_windows()
    n_tpl = len(fields["tx_bytes_per_s"])
    rng = np.random.default_rng(0)
    pick = rng.integers(0, n_tpl, len(series) * len(PRIORITIES))
    jitter = rng.uniform(0.9, 1.1, len(pick))
    columns: dict[str, list[Any]] = {c: [] for c in SAMPLE_COLUMNS}
    k = 0
    for switch_id, iface_id in series:
        for prio in PRIORITIES:
            tpl, jit = pick[k], jitter[k]
            k += 1
            for poll in range(POLLS):
                values: dict[str, Any] = {
                    f: float(fields[f][tpl][poll]) * (jit if f != "occupancy_bytes" else 1.0)
                    for f in WINDOW_FIELDS}
                for f in ("occupancy_bytes", "watermark_bytes"):  # counters of bytes
                    values[f] = round(values[f])
                values.update(switch_id=switch_id, interface_id=iface_id, priority=prio,
                              ts_ms=T0_MS + poll * POLL_S * 1000, interval_s=float(POLL_S),
                              utilisation=values["tx_bytes_per_s"] * 8 / 100e9)
                for c in SAMPLE_COLUMNS:
                    columns[c].append(values.get(c))
    # through the ingest, as the poller stores them (chunks of 50,000 samples, each one
    # telemetry block)
    result = Ingestor(engine, buffer_limit=2 * k * POLLS).write(SampleBatch(columns))
    assert result.error is None and result.written == k * POLLS, result
    return time.perf_counter() - t


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """The largest resident set size while the block runs (sampled every 20 ms), in bytes."""

    def __enter__(self) -> PeakRss:
        self.before = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def timed(daemon: TunerDaemon, spent: dict[str, float]) -> None:
    """Wrap the daemon's steps to add their wall seconds to ``spent``."""
    for name in ("_judge_trials", "_load_ports", "_classify", "_track"):
        method: Callable[..., Any] = getattr(daemon, name)

        @functools.wraps(method)
        def wrapper(*args: Any, _m: Callable[..., Any] = method, _n: str = name,
                    **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return _m(*args, **kwargs)
            finally:
                spent[_n] += time.perf_counter() - t

        setattr(daemon, name, wrapper)


def run(label: str, engine: Engine, n_switches: int, ports: int) -> None:
    migrate.upgrade(engine)
    setup_s = populate(engine, n_switches, ports)
    factory = sessionmaker(engine, expire_on_commit=False)
    now_s = (T0_MS + POLLS * POLL_S * 1000) / 1000
    from tuning.models import default_models

    models = default_models()
    print(f"{label}: {n_switches} switches x {ports} ports x {len(PRIORITIES)} priorities, "
          f"{n_switches * ports * len(PRIORITIES) * POLLS:,} samples (set-up {setup_s:.0f} s)")
    for which in ("first", "second"):  # a new daemon each time, as after a restart
        daemon = TunerDaemon(factory, ChangeService(factory), models_loader=lambda: models,
                             clock=lambda: now_s,
                             options=DaemonOptions(window_s=POLLS * POLL_S,
                                                   initial_mode="propose"))
        _ = daemon.models  # loaded and recorded before the timing
        spent: dict[str, float] = defaultdict(float)
        timed(daemon, spent)
        with PeakRss() as rss:
            t = time.perf_counter()
            report = daemon.cycle()
            total = time.perf_counter() - t
        assert not report.errors, report.errors
        with Session(engine) as session:
            proposals = session.scalar(select(func.count()).select_from(Proposal))
        load = spent["_load_ports"]
        print(f"  {which} cycle {total:.2f} s: read windows + features {load:.2f} s, "
              f"classify + record profiles {spent['_classify'] - spent['_track'] - load:.2f} s, "
              f"track {spent['_track']:.2f} s, propose + store "
              f"{total - spent['_classify'] - spent['_judge_trials']:.2f} s; "
              f"{report.classified:,} ports, {proposals:,} proposals stored; resident memory "
              f"{rss.before / 2**20:,.0f} MiB before, peak {rss.peak / 2**20:,.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--switches", type=int, default=1000)
    ap.add_argument("--ports", type=int, default=64)
    ap.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    args = ap.parse_args()
    if args.pg:
        try:
            with bench_schema() as engine:
                run("PostgreSQL", engine, args.switches, args.ports)
        except Unavailable as exc:
            print(f"PostgreSQL: skipped ({exc})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        run("SQLite", engine, args.switches, args.ports)
        engine.dispose()


if __name__ == "__main__":
    main()
