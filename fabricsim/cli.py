"""``waterline sim`` commands: run one configuration, integrate the fluid model, sweep a grid.

Mounted by the main CLI as ``waterline sim``; also ``python -m fabricsim``.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer

from .fluid import run_fluid
from .physics import STATIC_BASELINES, SimResult, Thresholds, simulate, simulate_batch
from .traffic import PROFILES

app = typer.Typer(help="Simulated RoCE fabric physics (DCQCN, ECN, PFC, buffers).",
                  no_args_is_help=True, add_completion=False)

DEFAULT_KMIN = "5000,20000,50000,100000,200000,400000,1000000,2000000"
DEFAULT_KMAX_FACTOR = "2,4,10"
DEFAULT_PMAX = "0.01,0.05,0.2,1.0"
RUN_KPIS = ("mice_fct_slowdown_p50", "mice_fct_slowdown_p99", "utilisation",
            "lost_utilisation", "pause_time_fraction", "queue_p99_bytes", "drops",
            "ecn_mark_fraction", "objective")


def _check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise typer.BadParameter(f"must be one of {', '.join(PROFILES)}")
    return profile


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    return value


def _extra_params(size_bytes: int | None, ingress_ports: int | None,
                  phase_bytes: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if size_bytes is not None:
        params["size_bytes"] = size_bytes
    if ingress_ports is not None:
        params["ingress_ports"] = ingress_ports
    if phase_bytes is not None:
        params["phase_bytes"] = phase_bytes
    return params


def _fmt(v: float) -> str:
    if abs(v) >= 1e5:
        return f"{v:,.0f}"
    return f"{v:.4g}"


ProfileOpt = Annotated[str, typer.Option("--profile", help=f"one of {', '.join(PROFILES)}",
                                         callback=_check_profile)]
SpeedOpt = Annotated[float, typer.Option("--speed-gbps", help="port speed, Gbit/s")]
FlowsOpt = Annotated[int | None, typer.Option("--flows", help="allreduce elephants "
                                              "(incast degree / Poisson senders otherwise)")]
LoadOpt = Annotated[float | None, typer.Option("--load", help="offered load (0..1)")]
DegreeOpt = Annotated[int | None, typer.Option("--incast-degree", help="incast senders")]
SizeOpt = Annotated[int | None, typer.Option("--size-bytes", help="fixed incast flow size")]
IngressOpt = Annotated[int | None, typer.Option("--ingress-ports",
                                                help="incast: uplinks the senders arrive on")]
PhaseOpt = Annotated[int | None, typer.Option("--phase-bytes",
                                              help="allreduce: bytes per synchronised phase")]
DurationOpt = Annotated[float, typer.Option("--duration-ms", help="measured time, ms")]
WarmupOpt = Annotated[float, typer.Option("--warmup-ms", help="traffic before measuring, ms")]
SeedOpt = Annotated[int, typer.Option("--seed")]
BufferOpt = Annotated[int | None, typer.Option("--buffer-bytes",
                                               help="switch buffer (default 16 MB x bw/50G)")]
CableOpt = Annotated[float, typer.Option("--cable-m", min=0.0, max=10_000.0,
                                         help="cable length, m")]
BusyOpt = Annotated[int, typer.Option("--busy-ports",
                                      help="other ports of the switch as busy as this one")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@app.command()
def run(
    profile: ProfileOpt,
    speed_gbps: SpeedOpt,
    kmin_bytes: Annotated[int, typer.Option("--kmin-bytes")],
    kmax_bytes: Annotated[int, typer.Option("--kmax-bytes")],
    pmax: Annotated[float, typer.Option("--pmax", help="0 < pmax <= 1")],
    flows: FlowsOpt = None,
    load: LoadOpt = None,
    incast_degree: DegreeOpt = None,
    size_bytes: SizeOpt = None,
    ingress_ports: IngressOpt = None,
    phase_bytes: PhaseOpt = None,
    xoff_bytes: Annotated[int | None, typer.Option("--xoff-bytes")] = None,
    xon_bytes: Annotated[int | None, typer.Option("--xon-bytes")] = None,
    headroom_bytes: Annotated[int | None, typer.Option("--headroom-bytes")] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", help="power of two 1/128..8")] = None,
    duration_ms: DurationOpt = 10.0,
    warmup_ms: WarmupOpt = 2.0,
    seed: SeedOpt = 0,
    buffer_bytes: BufferOpt = None,
    cable_m: CableOpt = 40.0,
    busy_ports: BusyOpt = 8,
    series: Annotated[bool, typer.Option("--series", help="include the occupancy series")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Simulate one waterline configuration and print its KPIs."""
    th = Thresholds(kmin_bytes, kmax_bytes, pmax, xoff_bytes=xoff_bytes, xon_bytes=xon_bytes,
                    headroom_bytes=headroom_bytes, alpha=alpha)
    try:
        res = simulate(profile, speed_gbps, th, flows=flows, load=load,
                       incast_degree=incast_degree, duration_ms=duration_ms, seed=seed,
                       buffer_bytes=buffer_bytes, cable_m=cable_m,
                       params=_extra_params(size_bytes, ingress_ports, phase_bytes),
                       busy_ports=busy_ports, warmup_ms=warmup_ms)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(_jsonable(res.to_dict(series=series)), indent=2))
        return
    typer.echo(f"{profile} at {speed_gbps:g}G, Kmin {kmin_bytes} B / Kmax {kmax_bytes} B / "
               f"Pmax {pmax:g}, {duration_ms:g} ms, seed {seed}")
    for key, value in res.kpis.items():
        typer.echo(f"  {key:28} {_fmt(value)}")


@app.command()
def fluid(
    flows: Annotated[int, typer.Option("--flows")],
    speed_gbps: SpeedOpt = 40.0,
    feedback_delay_us: Annotated[float, typer.Option("--feedback-delay-us")] = 4.0,
    kmin_bytes: Annotated[int, typer.Option("--kmin-bytes")] = 5_000,
    kmax_bytes: Annotated[int, typer.Option("--kmax-bytes")] = 200_000,
    pmax: Annotated[float, typer.Option("--pmax")] = 0.01,
    rai_mbps: Annotated[float, typer.Option("--rai-mbps")] = 40.0,
    duration_ms: Annotated[float, typer.Option("--duration-ms")] = 100.0,
    as_json: JsonOpt = False,
) -> None:
    """Integrate the DCQCN fluid model (Zhu et al., CoNEXT'16); stats over the second half."""
    try:
        out = run_fluid(flows, speed_gbps, feedback_delay_us, kmin_bytes, kmax_bytes, pmax,
                        rai_mbps=rai_mbps, duration_ms=duration_ms)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(_jsonable(out), indent=2))
        return
    for key in ("queue_mean_bytes", "queue_std_bytes", "utilisation", "jain_fairness",
                "p_star", "q_star_bytes"):
        typer.echo(f"  {key:20} {_fmt(float(out[key]))}")


def _floats(values: list[str]) -> list[float]:
    out: list[float] = []
    for v in values:
        for part in v.split(","):
            if part.strip():
                out.append(float(part))
    return out


def sweep_rows(results: list[SimResult], labels: list[str]) -> list[dict[str, Any]]:
    rows = []
    for res, label in zip(results, labels, strict=True):
        th = res.thresholds
        row: dict[str, Any] = {"label": label, "kmin_bytes": th.kmin_bytes,
                               "kmax_bytes": th.kmax_bytes, "pmax": th.pmax,
                               "feasible": res.feasible}
        row.update({k: res.kpis[k] for k in RUN_KPIS})
        rows.append(row)
    rows.sort(key=lambda r: r["objective"])
    return rows


@app.command()
def sweep(
    profile: ProfileOpt,
    speed_gbps: SpeedOpt,
    kmin_bytes: Annotated[list[str] | None, typer.Option(
        "--kmin-bytes", help=f"list, repeat or comma-separate [default: {DEFAULT_KMIN}]")] = None,
    kmax_factor: Annotated[list[str] | None, typer.Option(
        "--kmax-factor",
        help=f"Kmax = factor x Kmin, unless --kmax-bytes [default: {DEFAULT_KMAX_FACTOR}]")] = None,
    kmax_bytes: Annotated[list[str] | None, typer.Option(
        "--kmax-bytes", help="absolute Kmax list (pairs with every Kmin <= it)")] = None,
    pmax: Annotated[list[str] | None, typer.Option(
        "--pmax", help=f"list [default: {DEFAULT_PMAX}]")] = None,
    baselines: Annotated[bool, typer.Option(
        "--baselines/--no-baselines", help="add the static baselines")] = True,
    flows: FlowsOpt = None,
    load: LoadOpt = None,
    incast_degree: DegreeOpt = None,
    size_bytes: SizeOpt = None,
    ingress_ports: IngressOpt = None,
    phase_bytes: PhaseOpt = None,
    headroom_bytes: Annotated[int | None, typer.Option("--headroom-bytes")] = None,
    alpha: Annotated[float | None, typer.Option("--alpha")] = None,
    duration_ms: DurationOpt = 10.0,
    warmup_ms: WarmupOpt = 2.0,
    seed: SeedOpt = 0,
    buffer_bytes: BufferOpt = None,
    cable_m: CableOpt = 40.0,
    busy_ports: BusyOpt = 8,
    top: Annotated[int, typer.Option("--top", help="rows to print (0 = all)")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Simulate a Kmin x Kmax x Pmax grid in one batch; rows sorted by objective."""
    kmins = [int(x) for x in _floats(kmin_bytes or [DEFAULT_KMIN])]
    pmaxes = _floats(pmax or [DEFAULT_PMAX])
    ths: list[Thresholds] = []
    labels: list[str] = []
    for kmin in kmins:
        if kmax_bytes:
            kmaxes = [int(x) for x in _floats(kmax_bytes) if x >= kmin]
        else:
            kmaxes = [int(kmin * f) for f in _floats(kmax_factor or [DEFAULT_KMAX_FACTOR])]
        for kmax in kmaxes:
            for p in pmaxes:
                ths.append(Thresholds(kmin, kmax, p, headroom_bytes=headroom_bytes,
                                      alpha=alpha))
                labels.append("grid")
    if baselines:
        for name, make in STATIC_BASELINES.items():
            b = make(speed_gbps)
            ths.append(Thresholds(b.kmin_bytes, b.kmax_bytes, b.pmax,
                                  headroom_bytes=headroom_bytes, alpha=alpha))
            labels.append(name)
    if not ths:
        raise typer.BadParameter("empty grid")
    try:
        results = simulate_batch(profile, speed_gbps, ths, flows=flows, load=load,
                                 incast_degree=incast_degree, duration_ms=duration_ms,
                                 seed=seed, buffer_bytes=buffer_bytes, cable_m=cable_m,
                                 params=_extra_params(size_bytes, ingress_ports, phase_bytes),
                                 busy_ports=busy_ports, warmup_ms=warmup_ms)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    rows = sweep_rows(results, labels)
    if top:
        rows = rows[:top]
    if as_json:
        typer.echo(json.dumps(_jsonable(rows), indent=2))
        return
    head = (f"{'rank':>4} {'label':13} {'kmin_B':>9} {'kmax_B':>9} {'pmax':>5} "
            f"{'objective':>10} {'mice_p50':>8} {'mice_p99':>8} {'util':>6} {'pause':>6} "
            f"{'q_p99_B':>10} {'drops':>6}")
    typer.echo(head)
    for i, r in enumerate(rows):
        typer.echo(f"{i:>4} {r['label']:13} {r['kmin_bytes']:>9} {r['kmax_bytes']:>9} "
                   f"{r['pmax']:>5g} {r['objective']:>10.4f} "
                   f"{r['mice_fct_slowdown_p50']:>8.2f} {r['mice_fct_slowdown_p99']:>8.2f} "
                   f"{r['utilisation']:>6.3f} {r['pause_time_fraction']:>6.3f} "
                   f"{r['queue_p99_bytes']:>10.0f} {r['drops']:>6.0f}")


def main() -> None:  # pragma: no cover - thin wrapper
    app()
