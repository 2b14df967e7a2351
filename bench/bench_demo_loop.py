"""The whole tuning loop on `make run`'s demo fabric, in simulated time: what the daemon does
to each traffic profile's ground truth.

    .venv/bin/python bench/bench_demo_loop.py [--cycles 14] [--seed 0]

The demo fabric (2 pods, 10 mock switches, the built-in traffic mix: most switch priorities
carry allreduce next to incast and Poisson mixes) behind the mock driver, the collector
polling every 10 s of simulated time, the daemon in ``auto`` with `make run`'s timings (a
cycle every 30 s, 60 s windows and verification) and the shipped models, all in one process
on a SQLite file. Per cycle it prints the changes applied, rolled back and held for the
switch's other ports, and per profile the geometric mean over its busy ports of the
simulator's objective relative to the start (below 1: better); at the end, the mean objective
averaged over the cycles (the tuner's experiments come and go: one cycle's figure can sit on
a diagnostic's step) and every port whose objective moved more than 5 %. ``--seed`` draws
another demo traffic mix. Takes ~10-40 s on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import defaultdict

from app.changes.service import ChangeService
from app.daemon import DaemonOptions, TunerDaemon
from app.db import migrate
from app.db.session import make_engine, make_session_factory
from app.drivers import mock
from app.inventory import dump_yaml, import_inventory, parse_inventory
from collectors.poller import Poller
from fabricsim.topology import FabricParams, generate_fabric
from tuning.models import default_models

T0_S = 1_800_000_000.0
POLL_S = 10.0
Port = tuple[str, str, int]


def ground_truth(fabric: mock.MockFabric) -> dict[Port, tuple[str, float]]:
    """(switch, interface, priority) -> (profile carried, simulator objective), busy ports."""
    vf = fabric.fabric
    out: dict[Port, tuple[str, float]] = {}
    for switch in vf.switches():
        for interface in vf.interfaces(switch):
            for priority in vf.lossless_priorities:
                profile = str(vf.traffic(switch, interface, priority)["profile"])
                if profile != "idle":
                    out[(switch, interface, priority)] = (
                        profile, float(vf.kpis(switch, interface, priority)["objective"]))
    return out


def relative(start: dict[Port, tuple[str, float]], now: dict[Port, tuple[str, float]]
             ) -> dict[str, float]:
    """Per profile: the geometric mean of objective now / at the start over its ports."""
    logs: dict[str, list[float]] = defaultdict(list)
    for port, (profile, j) in now.items():
        logs[profile].append(math.log(max(j, 1e-9) / max(start[port][1], 1e-9)))
    return {p: math.exp(sum(v) / len(v)) for p, v in sorted(logs.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t_wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(engine)
        factory = make_session_factory(engine)
        inventory = generate_fabric(FabricParams())
        with factory() as session:
            import_inventory(session, parse_inventory(dump_yaml(inventory)))
            session.commit()
        state = mock.install(inventory, seed=args.seed, live=False, workers=2)
        state.fabric.prepare()  # every traffic class simulated before the first poll

        def clock() -> float:
            return T0_S + state.fabric.now_s

        poller = Poller(engine, concurrency=8, clock=clock, default_interval_s=POLL_S,
                        qos_refresh_s=0.0)
        poller.load_targets()
        changes = ChangeService(factory)
        daemon = TunerDaemon(factory, changes, models_loader=default_models, clock=clock,
                             options=DaemonOptions(interval_s=30, window_s=60, verify_s=60,
                                                   settle_s=5, initial_mode="auto"))

        def advance(polls: int) -> None:
            for _ in range(polls):
                state.fabric.advance(POLL_S)
                poller.poll_cycle()

        advance(1)
        start = ground_truth(state)
        busy = defaultdict(int)
        for profile, _j in start.values():
            busy[profile] += 1
        print(f"demo fabric: {len(state.fabric.switches())} switches, busy ports per profile "
              f"{dict(sorted(busy.items()))}, mean objective "
              f"{sum(j for _p, j in start.values()) / len(start):.3f}")
        print("cycle  t_s  applied rolled_back held  objective/start per profile (geo mean)"
              "   mean objective")
        means: list[float] = []
        for cycle in range(1, args.cycles + 1):
            advance(3)
            report = daemon.cycle()
            for run in list(changes._runs):
                changes.wait(run, 60)
            now = ground_truth(state)
            means.append(sum(j for _p, j in now.values()) / len(now))
            rel = " ".join(f"{p} {r:.2f}" for p, r in relative(start, now).items())
            print(f"{cycle:5d} {state.fabric.now_s:4.0f} {report.applied:7d} "
                  f"{report.rolled_back:11d} {report.held_for_others:4d}  {rel}   "
                  f"{sum(j for _p, j in now.values()) / len(now):.3f}")
        end = ground_truth(state)
        print(f"mean objective over the {len(means)} cycles: {sum(means) / len(means):.3f} "
              f"(start {sum(j for _p, j in start.values()) / len(start):.3f})")
        print("ports whose objective moved more than 5 %:")
        for port in sorted(end):
            ratio = end[port][1] / max(start[port][1], 1e-9)
            if abs(ratio - 1.0) > 0.05:
                print(f"  {port[0]:10s} {port[1]:11s} p{port[2]} {end[port][0]:9s} "
                      f"{start[port][1]:6.3f} -> {end[port][1]:6.3f} ({ratio:.2f} x)")
        poller.close()
        mock.uninstall()
        engine.dispose()
    print(f"wall time {time.perf_counter() - t_wall:.0f} s")


if __name__ == "__main__":
    main()
