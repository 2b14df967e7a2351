"""``waterline tuner`` commands: train the tuner's models, evaluate it in closed loop on fabricsim.

A typer app (``app``), mounted by the main CLI as ``waterline tuner``. The logic lives in
``tuning`` (``tuning.models``, ``tuning.evaluate``); this module only parses and prints.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The AI-ECN tuner: train its models, evaluate it on the virtual fabric.",
                  no_args_is_help=True, add_completion=False)


def _err(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def train(
    seed: Annotated[int, typer.Option("--seed", help="seed of the whole run")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="small run (tests, smoke)")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="directory for the model files [default: the package's tuning/models]")
    ] = None,
) -> None:
    """Simulate training data on fabricsim and fit the classifier and the optimiser."""
    from tuning.models import MODEL_DIR, save_models, train_models

    t0 = time.perf_counter()
    models = train_models(seed, quick=quick, log=_err)
    paths = save_models(models, out or MODEL_DIR)
    meta = models.classifier.metadata
    typer.echo(f"trained in {time.perf_counter() - t0:.0f} s (seed {seed}"
               f"{', quick' if quick else ''}); classifier held-out accuracy "
               f"{meta.get('heldout_accuracy', float('nan')):.3f}")
    for name, path in paths.items():
        typer.echo(f"  {name:10} {path} ({path.stat().st_size:,} bytes)")


def _integers(values: list[str] | None, default: str, hint: str) -> list[int]:
    try:
        return [int(v) for v in _split(values, [default])]
    except ValueError:
        raise typer.BadParameter("comma-separated whole numbers", param_hint=hint) from None


def _split(values: list[str] | None, default: list[str]) -> list[str]:
    out: list[str] = []
    for v in values or default:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


@app.command("eval")
def evaluate(
    profiles: Annotated[list[str] | None, typer.Option(
        "--profiles", help="comma-separated or repeated [default: allreduce,incast,websearch,"
        "hadoop]")] = None,
    speeds: Annotated[list[str] | None, typer.Option(
        "--speeds", help="port speeds in Gb/s [default: 100,200]")] = None,
    seeds: Annotated[list[str] | None, typer.Option("--seeds", help="[default: 0,1]")] = None,
    flows: Annotated[int | None, typer.Option(
        "--flows", help="allreduce elephants / Poisson senders")] = None,
    load: Annotated[float | None, typer.Option("--load", help="offered load (0..1)")] = None,
    incast_degree: Annotated[int | None, typer.Option("--incast-degree")] = None,
    max_cycles: Annotated[int, typer.Option("--max-cycles")] = 10,
    hillclimb_probes: Annotated[int, typer.Option("--hillclimb-probes")] = 60,
    duration_ms: Annotated[float, typer.Option(
        "--duration-ms", help="simulated time of one measurement")] = 20.0,
    repeats: Annotated[int, typer.Option(
        "--repeats", help="traffic realisations averaged per measurement")] = 4,
    oracle: Annotated[str, typer.Option("--oracle", help="fine | coarse grid")] = "fine",
    workers: Annotated[int, typer.Option("--workers", help="scenarios evaluated at once")] = 2,
    models_dir: Annotated[Path | None, typer.Option(
        "--models", help="model directory [default: the shipped models]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON list")] = False,
) -> None:
    """Closed-loop tuning on fabricsim vs static baselines, ByteTuning and the oracle."""
    from fabricsim.traffic import PROFILES
    from tuning.evaluate import EvalSettings, evaluate, jsonable, scenarios, summary_table
    from tuning.models import default_models, load_models

    profs = _split(profiles, ["allreduce,incast,websearch,hadoop"])
    bad = [p for p in profs if p not in PROFILES or p == "idle"]
    if bad or not profs:
        raise typer.BadParameter(f"unknown profile(s) {', '.join(bad)}" if bad else
                                 "give at least one profile", param_hint="--profiles")
    if oracle not in ("fine", "coarse"):
        raise typer.BadParameter("fine or coarse", param_hint="--oracle")
    spd = _integers(speeds, "100,200", "--speeds")
    sds = _integers(seeds, "0,1", "--seeds")
    if any(s not in (100, 200, 400) for s in spd):
        raise typer.BadParameter("speeds are 100, 200 or 400", param_hint="--speeds")
    if any(s < 0 for s in sds):
        raise typer.BadParameter("seeds are whole numbers >= 0", param_hint="--seeds")
    for value, low, high, hint in ((flows, 1, 1024, "--flows"),
                                   (incast_degree, 1, 1024, "--incast-degree"),
                                   (max_cycles, 1, 100, "--max-cycles"),
                                   (hillclimb_probes, 0, 1000, "--hillclimb-probes"),
                                   (repeats, 1, 64, "--repeats"),
                                   (workers, 1, 64, "--workers")):
        if value is not None and not low <= value <= high:
            raise typer.BadParameter(f"must be within {low}..{high}", param_hint=hint)
    if load is not None and not 0 < load <= 1:  # NaN fails this too
        raise typer.BadParameter("an offered load within (0, 1]", param_hint="--load")
    if not 0 < duration_ms <= 1000:
        raise typer.BadParameter("simulated milliseconds within (0, 1000]",
                                 param_hint="--duration-ms")
    if models_dir is not None and not models_dir.is_dir():
        raise typer.BadParameter(f"{models_dir} is not a directory", param_hint="--models")
    try:
        models = load_models(models_dir) if models_dir else default_models()
    except Exception as exc:
        raise typer.BadParameter(f"cannot load the models from {models_dir}: {exc}",
                                 param_hint="--models") from None
    settings = EvalSettings(duration_ms=duration_ms, repeats=repeats, max_cycles=max_cycles,
                            hillclimb_probes=hillclimb_probes, oracle=oracle)
    scs = scenarios(profs, spd, sds, flows=flows, load=load, incast_degree=incast_degree)
    t0 = time.perf_counter()
    rows = evaluate(scs, models.classifier, models.optimiser, settings, workers=workers,
                    log=None if as_json else _err)
    if as_json:
        typer.echo(json.dumps(jsonable(rows), indent=2))
        return
    typer.echo(summary_table(rows))
    typer.echo(f"{len(rows)} scenario(s) in {time.perf_counter() - t0:.0f} s", err=True)


def main() -> None:  # pragma: no cover - thin wrapper
    app()
