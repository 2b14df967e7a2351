"""Tuner speed and quality: one proposal cycle for 1,000 switches, model sizes, training time, and
the closed-loop evaluation table.

    .venv/bin/python bench/bench_tuner.py [--switches 1000] [--ports 64] [--train] [--no-eval]

1. One proposal cycle, as the daemon runs it: 1,000 switches x 64 ports x 2 lossless
   priorities of 12-poll windows (128,000 port windows, stacked arrays) -> features (one
   vectorised pass) -> classification of every port -> per (switch, priority) the profile
   posterior of its ports with traffic, their median features and traffic descriptors (one
   batched estimator pass; ports of other traffic set aside as the daemon does,
   ``tuning.mixed``: the tiled ports mix five profiles on every switch, the worst case for
   it) -> one batched optimiser call (2,000 proposals, each sparing its other ports).
   Wall seconds of each step; the target is <= 5 s in all. From the SONiC default nearly
   every switch priority takes the deep-to-shallow diagnostic's first step, so the next two
   cycles are timed too, every step of them (the same windows read after each move): the
   diagnostic's verdict at the step and its check at the vendor guide, each judging every
   port of every group on its own windows as well (``diagnostic.with_port_risk``) -- the
   heaviest cycles a fleet that starts at the default meets.
2. Model files and their sizes; the training time recorded in the shipped models' metadata
   (``--train`` retrains with ``--quick`` to time it here).
3. The evaluation table (tuned vs best static vs oracle, cycles, probes tuned vs hill-climb)
   for all four profiles at 100G and 200G (seed 1; ``--seeds``), with the CLI's defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np

from tuning import mixed
from tuning.features import PROFILES, WINDOW_FIELDS, WindowBatch, features_matrix
from tuning.guard import Waterline
from tuning.models import METADATA_FILE, MODEL_DIR, default_models, train_models
from tuning.optimiser import ProposalRequest
from tuning.simulation import Rig, Scenario, to_thresholds
from tuning.space import PortContext, complete
from tuning.tracker import TrafficTracker


def sample_windows(n_templates: int = 40) -> tuple[dict[str, np.ndarray], list[str]]:
    """Real virtual-fabric windows of every profile, to tile the 128,000 ports from."""
    cases = [("allreduce", {"flows": 8}), ("incast", {"incast_degree": 32, "load": 0.3}),
             ("websearch", {"load": 0.5}), ("hadoop", {"load": 0.5}), ("idle", {})]
    arms = [(f"t{i}", Scenario.make(p, 100, prm, seed=i)) for i, (p, prm) in enumerate(cases)]
    rig = Rig(arms, seed=5, ports=n_templates // len(cases))
    sonic = Waterline(1 << 20, 2 << 20, 0.05)
    for name, _ in arms:
        rig.set_thresholds(name, to_thresholds(sonic))
    rig.observe(polls=1)
    wins = rig.observe()
    fields = {f: np.stack([getattr(w, f) for ws in wins.values() for w in ws])
              for f in WINDOW_FIELDS}
    labels = [sc.profile for name, sc in arms for _ in wins[name]]
    return fields, labels


def _read(models: Any, batch: WindowBatch, wl: np.ndarray, n_groups: int, ports: int
          ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Features and classification of every port window: (features, probabilities) per
    group x port, and the seconds of each step."""
    t0 = time.perf_counter()
    feats = features_matrix(batch, wl)
    t1 = time.perf_counter()
    proba = models.classifier.predict_proba(feats)
    t2 = time.perf_counter()
    return (feats.reshape(n_groups, ports, -1), proba.reshape(n_groups, ports, -1), t1 - t0,
            t2 - t1)


def _group(p3: np.ndarray, f3: np.ndarray
           ) -> tuple[list[np.ndarray], list[np.ndarray], list[list[tuple[Any, Any]]]]:
    """Per (switch, priority): the ports of its group (traffic, the ports of other traffic
    set aside as the daemon does), their median features and the other ports' entries."""
    idle = PROFILES.index("idle")
    groups, meds, others = [], [], []
    for g in range(len(p3)):
        busy = np.argmax(p3[g], axis=1) != idle
        sel = np.flatnonzero(busy if busy.any() else np.ones(p3.shape[1], bool))
        keep = mixed.split(p3[g][sel])  # the ports of other traffic set aside
        group, rest = sel[keep], sel[~keep]
        groups.append(group)
        meds.append(np.median(f3[g][group], axis=0))
        others.append([(f, q) for f, q, _idx in mixed.summarise(
            f3[g][rest], p3[g][rest], p3[g][group].mean(axis=0))] if len(rest) else [])
    return groups, meds, others


def bench_cycle(n_switches: int, ports: int, distinct: bool = False) -> None:
    models = default_models()
    fields, _ = sample_windows()
    n_tpl = len(fields["tx_bytes_per_s"])
    rows = n_switches * ports * 2
    n_groups = n_switches * 2
    rng = np.random.default_rng(0)
    pick = rng.integers(0, n_tpl, rows)
    # one factor per port (a port's counters scale together), or with ``distinct`` one per
    # field of each port, so that hardly two port windows share the models' bins (the worst
    # case for ``estimator.tree_proba``, which walks each distinct binned row once)
    jitter = {f: rng.uniform(0.9, 1.1, (rows, 1)) for f in fields} if distinct else \
        dict.fromkeys(fields, rng.uniform(0.9, 1.1, (rows, 1)))
    batch = WindowBatch(np.full(rows, 100.0), np.full(rows, float(32 << 20)),
                        np.full(rows, 3.0),
                        {f: v[pick] * (jitter[f] if f != "occupancy_bytes" else 1.0)
                         for f, v in fields.items()})
    ctx = PortContext(100, 32 << 20, 3.0)
    current = complete(Waterline(1 << 20, 2 << 20, 0.05), ctx)
    wl = np.tile([current.kmin_bytes, current.kmax_bytes, current.pmax, current.alpha or 0.125,
                  current.headroom_bytes or np.nan], (rows, 1)).astype(float)
    f3, p3, t_feat, t_cls = _read(models, batch, wl, n_groups, ports)
    t0 = time.perf_counter()
    groups, meds, others = _group(p3, f3)
    trackers = []
    for g, group in enumerate(groups):
        tracker = TrafficTracker()
        tracker.update(p3[g][group])  # the daemon's first cycle
        trackers.append(tracker)
    estimates = models.optimiser.estimate_descriptors_batch(
        np.vstack(meds), np.vstack([t.posterior for t in trackers]))
    port_rows = [tuple((f"Ethernet{4 * int(i)}", f3[g][i]) for i in group)
                 for g, group in enumerate(groups)]
    reqs = []
    for tracker, med, est, oth, own in zip(trackers, meds, estimates, others, port_rows,
                                           strict=True):
        reqs.append(ProposalRequest(tracker.profile, med, current, 100, 32 << 20, 3.0,
                                    posterior=tracker.posterior,
                                    descriptors=tracker.add_descriptors(est),
                                    others=tuple(oth), origin=current, ports=own))
    t_group = time.perf_counter() - t0
    t0 = time.perf_counter()
    props = models.optimiser.propose_batch(reqs)
    t_opt = time.perf_counter() - t0
    methods = Counter(p.method for p in props)
    print(f"proposal cycle: {n_switches} switches x {ports} ports x 2 priorities = {rows:,} "
          f"port windows, {len(props):,} proposals")
    print(f"  cycle 1: features {t_feat:.2f} s, classification {t_cls:.2f} s, grouping "
          f"{t_group:.2f} s, optimiser {t_opt:.2f} s; in all "
          f"{t_feat + t_cls + t_group + t_opt:.2f} s (target <= 5 s)")
    print(f"  proposals by method: {dict(methods)}; dominant profiles: "
          f"{dict(Counter(r.profile for r in reqs))}; other-traffic entries per switch "
          f"priority: mean {np.mean([len(r.others) for r in reqs]):.1f}, "
          f"{sum(p.spared_others for p in props)} moves held to spare them")
    for cycle in (2, 3):  # the diagnostic's verdict, then its check (docstring)
        # the same windows read again after the move: features, classification, grouping and
        # the descriptors' estimates as in the first cycle, the tracks stored, read back and
        # updated
        f3, p3, t_feat, t_cls = _read(models, batch, wl, n_groups, ports)
        t0 = time.perf_counter()
        groups, meds, others = _group(p3, f3)
        for g, (tracker, prop) in enumerate(zip(trackers, props, strict=True)):
            if prop.probe is not None:
                tracker.note_probe(prop.probe)
            # stored and read back, as the daemon keeps its tracks in the database
            trackers[g] = tracker = TrafficTracker.from_state(tracker.state())
            tracker.update(p3[g][groups[g]])
        estimates = models.optimiser.estimate_descriptors_batch(
            np.vstack(meds), np.vstack([t.posterior for t in trackers]))
        reqs = [replace(rq, current=prop.waterlines, posterior=tracker.posterior,
                        descriptors=tracker.add_descriptors(est), probe=tracker.probe_view())
                for rq, prop, tracker, est in zip(reqs, props, trackers, estimates,
                                                  strict=True)]
        t_group = time.perf_counter() - t0
        t0 = time.perf_counter()
        props = models.optimiser.propose_batch(reqs)
        t_opt = time.perf_counter() - t0
        judged = sum(bool(p.probe and p.probe.get("checked" if cycle == 3 else "verdict"))
                     for p in props)
        print(f"  cycle {cycle}: features {t_feat:.2f} s, classification {t_cls:.2f} s, "
              f"grouping and tracks {t_group:.2f} s, optimiser {t_opt:.2f} s; in all "
              f"{t_feat + t_cls + t_group + t_opt:.2f} s; proposals by method: "
              f"{dict(Counter(p.method for p in props))}; judged by the diagnostic {judged}")


def bench_models(train: bool) -> None:
    meta = json.loads((MODEL_DIR / METADATA_FILE).read_text())
    for name in ("classifier.joblib", "optimiser.joblib", METADATA_FILE):
        print(f"  {name:18} {(MODEL_DIR / name).stat().st_size:>10,} bytes")
    opt = meta["optimiser"]
    print(f"shipped models: trained in {meta.get('training_seconds')} s (seed {opt.get('seed')}); "
          f"classifier held-out accuracy {meta['classifier'].get('heldout_accuracy')}")
    if train:
        t = time.perf_counter()
        train_models(0, quick=True)
        print(f"quick training here: {time.perf_counter() - t:.0f} s")


def bench_eval(seeds: list[int], workers: int) -> None:
    from tuning.evaluate import EvalSettings, evaluate, scenarios, summary_table

    models = default_models()
    t = time.perf_counter()
    rows = evaluate(scenarios(("allreduce", "incast", "websearch", "hadoop"), (100, 200),
                              seeds), models.classifier, models.optimiser, EvalSettings(),
                    workers=workers)
    print(summary_table(rows))
    print(f"evaluation: {len(rows)} scenarios in {time.perf_counter() - t:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--switches", type=int, default=1000)
    ap.add_argument("--ports", type=int, default=64)
    ap.add_argument("--train", action="store_true", help="time a quick training run")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--distinct", action="store_true",
                    help="jitter each field of each port on its own (bench_cycle)")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    bench_cycle(args.switches, args.ports, args.distinct)
    bench_models(args.train)
    if not args.no_eval:
        bench_eval([int(s) for s in args.seeds.split(",")], args.workers)


if __name__ == "__main__":
    main()
