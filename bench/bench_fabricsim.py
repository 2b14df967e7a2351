"""fabricsim speed: one incast run, a batch of configurations, and a 1,000-switch fabric poll.

    .venv/bin/python bench/bench_fabricsim.py [--switches 1000] [--cycles 6] [--workers 2]

1. 10 ms (simulated) of 100G incast with 64 senders, one configuration: wall seconds.
2. The same scenario with 64 waterline configurations in one ``simulate_batch``.
3. A 1,000-switch fabric, 64 ports x 2 lossless priorities each (128,000 counters rows),
   every switch read every 10 s of simulated time: CPU seconds spent per 10 s interval.

How the fabric keeps pace (fabricsim/fabric.py, "Representative windows"): ports that carry
the same traffic class -- (profile, parameter bucket, speed, cable, buffer, waterlines,
PFC/ECN on) -- behave alike, so each class is simulated once over a short window (1 ms
warm-up + 3 ms), classes differing only in waterlines in one batch, and cached. A read then
only integrates per-port rates over the elapsed interval with a deterministic per-port load
profile (so ports differ and the result does not depend on the read cadence), draws the
occupancy from the class's distribution and updates the watermark: O(ports) numpy work per
switch. The class simulations are a one-off cost at start and whenever new waterlines
appear (reported separately below, as "prepare").
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from fabricsim.fabric import VirtualFabric, clear_class_cache
from fabricsim.physics import Thresholds, simulate, simulate_batch, sonic_default


def synthetic_inventory(n_switches: int) -> dict[str, Any]:
    """Pods of 32 TORs (56 x 100G/200G hosts + 8 x 400G uplinks) and 8 leaves (32 down, 32
    up to spines outside the inventory): 64 ports on every switch."""
    switches: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    pod = 0
    while len(switches) < n_switches:
        pod += 1
        host_speed = 100 if pod % 2 else 200
        leaves = [f"leaf-p{pod}-{i + 1}" for i in range(8)]
        tors = [f"tor-p{pod}-{i + 1}" for i in range(32)]
        for t, tor in enumerate(tors):
            itfs = [{"name": f"Ethernet{4 * h}", "speed_gbps": host_speed,
                     "peer": f"gpu-{tor}-{h}", "cable_m": 3} for h in range(56)]
            for u, leaf in enumerate(leaves):
                itfs.append({"name": f"Ethernet{4 * (56 + u)}", "speed_gbps": 400,
                             "peer": leaf, "cable_m": 40})
                links.append({"a_switch": tor, "a_interface": f"Ethernet{4 * (56 + u)}",
                              "b_switch": leaf, "b_interface": f"Ethernet{4 * t}"})
            switches.append({"name": tor, "role": "tor", "pod": pod, "interfaces": itfs,
                             "buffer_bytes": 32 * 1024 * 1024})
        for leaf in leaves:
            itfs = [{"name": f"Ethernet{4 * t}", "speed_gbps": 400, "peer": tors[t],
                     "cable_m": 40} for t in range(32)]
            itfs += [{"name": f"Ethernet{4 * (32 + s)}", "speed_gbps": 400,
                      "peer": f"spine-{s + 1}", "cable_m": 100} for s in range(32)]
            switches.append({"name": leaf, "role": "leaf", "pod": pod, "interfaces": itfs,
                             "buffer_bytes": 64 * 1024 * 1024})
    switches = switches[:n_switches]
    names = {s["name"] for s in switches}
    links = [lk for lk in links if lk["a_switch"] in names and lk["b_switch"] in names]
    return {"fabric": {"name": "bench", "lossless_priorities": [3, 4], "cnp_priority": 6},
            "switches": switches, "links": links}


def bench_incast() -> None:
    simulate("incast", 100, sonic_default(), incast_degree=8, duration_ms=0.5, warmup_ms=0)
    t = time.perf_counter()
    res = simulate("incast", 100, sonic_default(), incast_degree=64, duration_ms=10,
                   warmup_ms=0, seed=1)
    single = time.perf_counter() - t
    print(f"incast 64->1 at 100G, 10 ms simulated, 1 configuration: {single:.2f} s wall "
          f"({res.kpis['flows_total']:.0f} flows)")
    ths = [Thresholds(int(k), int(k * f), p) for k in (5e3, 20e3, 50e3, 100e3, 200e3, 400e3,
                                                       1e6, 2e6)
           for f in (2, 4) for p in (0.01, 0.05, 0.2, 1.0)]
    t = time.perf_counter()
    simulate_batch("incast", 100, ths, incast_degree=64, duration_ms=10, warmup_ms=0, seed=1)
    batch = time.perf_counter() - t
    print(f"same scenario, batch of {len(ths)} configurations: {batch:.2f} s wall "
          f"({batch / single:.1f}x one run, {single * len(ths) / batch:.0f}x cheaper than "
          f"{len(ths)} runs)")


def bench_fabric(n_switches: int, cycles: int, workers: int) -> None:
    inv = synthetic_inventory(n_switches)
    rows = sum(len(s["interfaces"]) for s in inv["switches"]) * 2
    clear_class_cache()
    vf = VirtualFabric.from_inventory(inv, seed=1, live=False, workers=workers)
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    n_classes = vf.prepare()
    prep_wall, prep_cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    print(f"fabric: {len(inv['switches'])} switches, {rows} interface x priority rows, "
          f"{n_classes} traffic classes")
    print(f"  prepare (one-off class windows, {workers} worker(s)): {prep_wall:.1f} s wall, "
          f"{prep_cpu:.1f} s CPU in this process")
    names = vf.switches()
    per_cycle: list[float] = []
    for _ in range(cycles):
        vf.advance(10.0)
        t = time.process_time()
        n = 0
        for sw in names:
            n += len(vf.read_counters(sw))
        per_cycle.append(time.process_time() - t)
    avg = sum(per_cycle) / len(per_cycle)
    print(f"  poll every switch per 10 s interval: {avg:.2f} s CPU per 10 s "
          f"({avg / 10 * 100:.1f}% of one core; {n} rows per cycle, {cycles} cycles)")
    # waterline change on 10% of the switches: new classes appear and are batch-simulated
    t_wall = time.perf_counter()
    for sw in names[:: 10]:
        vf.set_thresholds(sw, 3, Thresholds(100_000, 400_000, 0.2))
    added = vf.prepare()
    print(f"  new waterlines on {len(names[::10])} switches: {added} new classes in "
          f"{time.perf_counter() - t_wall:.1f} s wall")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--switches", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    bench_incast()
    bench_fabric(args.switches, args.cycles, args.workers)


if __name__ == "__main__":
    main()
