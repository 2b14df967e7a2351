"""Tuner quality on the README's "unseen" and "further afield" rows, in one reproducible run.

    .venv/bin/python bench/bench_tuner_unseen.py [--set unseen|further|all] [--models-dir DIR]
        [--json rows.json]

Unseen (22 rows, parameter values the models never trained on, 100G and 200G each):
allreduce with 6 / 20 / 14 elephants (seeds 5 / 7 / 9), 5 flows (s41) and 40 flows (s43);
incast of 40 senders at load 0.6 (s41) and 6 senders at load 0.2 (s43); websearch at load
0.8 (s41) and load 0.4 from 5 senders (s43); hadoop at load 0.6 (s41) and load 0.8 from 7
senders (s43). Further afield (8 rows): 400G, and values further from training.

Scored as the test subset and the random bench (``bench_tuner_random``: 2 realisations per
measurement, the coarse oracle, the hill-climb run long enough to tell "a fifth of its
probes"); prints each row and the same per-profile summary.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench_tuner_random import report, score

from tuning.evaluate import jsonable
from tuning.simulation import Scenario

UNSEEN: list[tuple[str, dict[str, Any], int]] = [
    ("allreduce", {"flows": 6}, 5),
    ("allreduce", {"flows": 20}, 7),
    ("allreduce", {"flows": 14}, 9),
    ("allreduce", {"flows": 5}, 41),
    ("allreduce", {"flows": 40}, 43),
    ("incast", {"incast_degree": 40, "load": 0.6}, 41),
    ("incast", {"incast_degree": 6, "load": 0.2}, 43),
    ("websearch", {"load": 0.8}, 41),
    ("websearch", {"load": 0.4, "flows": 5}, 43),
    ("hadoop", {"load": 0.6}, 41),
    ("hadoop", {"load": 0.8, "flows": 7}, 43),
]
FURTHER: list[tuple[str, int, dict[str, Any], int]] = [
    ("allreduce", 400, {"flows": 30}, 51),
    ("allreduce", 100, {"flows": 3}, 52),
    ("incast", 400, {"incast_degree": 100, "load": 0.7}, 53),
    ("incast", 100, {"incast_degree": 10, "load": 0.5}, 54),
    ("websearch", 400, {"load": 0.9}, 55),
    ("hadoop", 200, {"load": 0.25, "flows": 3}, 56),
    ("websearch", 100, {"load": 0.2}, 57),
    ("hadoop", 400, {"load": 0.7}, 58),
]


def scenarios(which: str) -> list[Scenario]:
    out = []
    if which in ("unseen", "all"):
        out += [Scenario.make(p, speed, params, seed=seed)
                for p, params, seed in UNSEEN for speed in (100, 200)]
    if which in ("further", "all"):
        out += [Scenario.make(p, speed, params, seed=seed) for p, speed, params, seed in FURTHER]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="all", choices=("unseen", "further", "all"))
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args()
    scs = scenarios(args.set)
    t0 = time.perf_counter()
    rows = score(scs, args.models_dir, args.workers)
    n_unseen = 2 * len(UNSEEN) if args.set in ("unseen", "all") else 0
    if n_unseen:
        print("unseen:")
        report(rows[:n_unseen])
    if len(rows) > n_unseen:
        print("further afield:")
        report(rows[n_unseen:])
    print(f"wall time {time.perf_counter() - t0:.0f} s ({args.workers} workers)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(jsonable(rows), f, indent=1)


if __name__ == "__main__":
    main()
