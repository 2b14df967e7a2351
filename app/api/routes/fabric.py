"""Fabric-wide views: RoCE consistency (like `netq check roce`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from app.api.deps import SessionDep, Viewer
from app.metrics import ALL_PROFILES
from app.qos_state import check_consistency
from app.telemetry_blocks import MAX_WINDOW_S
from app.timestamps import UtcDatetime

router = APIRouter(prefix="/fabric", tags=["fabric"])


class InconsistentSwitch(BaseModel):
    switch: str
    problems: list[str]
    observed_at: UtcDatetime | None


class ConsistencyOut(BaseModel):
    checked: int
    consistent: int
    inconsistent: list[InconsistentSwitch]


@router.get("/consistency", response_model=ConsistencyOut)
def consistency(session: SessionDep, _: Viewer) -> ConsistencyOut:
    """Switches whose observed RoCE settings (read by the collector and by changes) differ from
    the intent: PFC on the lossless priorities, ECN on their queues, the pushed waterlines."""
    checked, bad = check_consistency(session)
    return ConsistencyOut(
        checked=checked, consistent=checked - len(bad),
        inconsistent=[InconsistentSwitch(switch=b.switch, problems=b.problems,
                                         observed_at=b.observed_at) for b in bad])


class ProfileKpis(BaseModel):
    profile: str
    ports: int
    kpis: dict[str, float]


class FabricKpisOut(BaseModel):
    window_s: float
    ports: int
    telemetry: dict[str, float]
    by_profile: list[ProfileKpis]
    virtual_fabric: dict[str, float] | None = None
    # the simulator's ground truth per *true* profile (what the port carries, not what the
    # classifier reads): a profile's gain is not drowned by the others' larger objectives
    virtual_fabric_by_profile: list[ProfileKpis] | None = None


@router.get("/kpis", response_model=FabricKpisOut)
def fabric_kpis(
    session: SessionDep, _: Viewer,
    window: Annotated[float, Query(gt=0, le=MAX_WINDOW_S,
                                   description="seconds back from now")] = 300,
) -> FabricKpisOut:
    """Fabric KPIs over the window from stored telemetry (mean over lossless ports, and per
    classified profile). With the virtual fabric, also its ground truth (the simulator's KPIs
    and objective, mean over the mock switches' active ports)."""
    import time

    import numpy as np

    from app.db.models import Fabric, PortProfile, Switch
    from app.telemetry import interface_table, load_window_rows
    from tuning.features import WindowBatch, window_kpis_batch

    now_ms = int(time.time() * 1000)
    fabric = session.scalars(select(Fabric)).first()
    priorities = list(fabric.lossless_priorities) if fabric else [3]
    interfaces = interface_table(session)
    links = {i: (float(row[2]), row[3]) for i, row in interfaces.items()}
    buffers = dict(session.execute(select(Switch.id, Switch.buffer_bytes)).tuples().all())
    profiles = {(p.switch_id, p.interface_id, p.priority): p.profile
                for p in session.scalars(select(PortProfile))}
    per_profile: dict[str, list[dict[str, float]]] = {}
    every: list[dict[str, float]] = []
    got = load_window_rows(session, start_ms=now_ms - int(window * 1000), end_ms=now_ms + 1,
                           priorities=priorities, interfaces=interfaces)
    rows = [k for k, key in enumerate(got.keys) if key[1] in links]
    keys = [got.keys[k] for k in rows]
    batch = WindowBatch(np.array([links[key[1]][0] for key in keys]),
                        np.array([float(buffers.get(key[0], 1)) for key in keys]),
                        np.array([links[key[1]][1] for key in keys]),
                        {n: v[rows] for n, v in got.fields.items()})
    table = window_kpis_batch(batch) if keys else {}
    for j, key in enumerate(keys):
        kpis = {k: float(v[j]) for k, v in table.items()}
        if kpis["utilisation"] <= 0.001:
            continue  # idle ports would drown the averages
        every.append(kpis)
        per_profile.setdefault(profiles.get(key, "unclassified"), []).append(kpis)

    def mean(rows: list[dict[str, float]]) -> dict[str, float]:
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}

    truth = virtual_fabric_kpis()
    return FabricKpisOut(
        window_s=window, ports=len(every), telemetry=mean(every),
        by_profile=[ProfileKpis(profile=k, ports=len(v), kpis=mean(v))
                    for k, v in sorted(per_profile.items())],
        virtual_fabric=None if truth is None else truth.get(ALL_PROFILES, {}),
        virtual_fabric_by_profile=None if truth is None else [
            ProfileKpis(profile=k, ports=int(v["ports"]),
                        kpis={n: x for n, x in v.items() if n != "ports"})
            for k, v in sorted(truth.items()) if k != ALL_PROFILES],
    )


VIRTUAL_KPIS = ("objective", "utilisation", "pause_time_fraction", "queue_p99_bytes",
                "mice_fct_slowdown_p99", "drops")


def virtual_fabric_kpis() -> dict[str, dict[str, float]] | None:
    """The simulator's ground truth for the mock switches' busy ports (None without a virtual
    fabric): the mean of each KPI and the number of ports ("ports") over all of them
    (``ALL_PROFILES``) and per profile the ports truly carry."""
    from app.drivers import mock

    state = mock.current()
    if state is None:
        return None
    vf = state.fabric
    rows: dict[str, list[dict[str, float]]] = {}
    for switch in vf.switches():
        for interface in vf.interfaces(switch):
            for priority in vf.lossless_priorities:
                profile = str(vf.traffic(switch, interface, priority)["profile"])
                if profile == "idle":
                    continue
                rows.setdefault(profile, []).append(vf.kpis(switch, interface, priority))
    if not rows:
        return {}
    rows[ALL_PROFILES] = [r for group in rows.values() for r in group]
    return {profile: {k: float(sum(r.get(k, 0.0) for r in group) / len(group))
                      for k in VIRTUAL_KPIS} | {"ports": float(len(group))}
            for profile, group in rows.items()}
