"""What Waterline knows of each switch's RoCE QoS: the config last read from it (observed)
and the config Waterline last pushed (desired); and the consistency check between them and the
fabric's intent (like `netq check roce`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Fabric, QosWaterline, Switch
from app.drivers.models import QosConfig
from app.timestamps import as_utc


def store_qos(session: Session, switch_id: int, *, observed: QosConfig | None = None,
              desired: QosConfig | None = None, source: str = "",
              read_at: datetime | None = None) -> None:
    """Record observed and/or desired waterlines (switch-wide rows) in the caller's session.
    ``read_at``: when the read of ``observed`` started; a reading older than the one stored
    (a poll that read the switch while a change was committing, stored after the change's own
    read-back) is dropped."""
    if observed is not None:
        switch = session.get(Switch, switch_id)
        if switch is not None and read_at is not None and switch.observed_qos_at is not None \
                and as_utc(switch.observed_qos_at) > read_at:
            observed = None
        elif switch is not None:
            switch.observed_qos = observed.model_dump(mode="json")
            switch.observed_qos_at = datetime.now(UTC)
    for kind, config in (("observed", observed), ("desired", desired)):
        if config is None:
            continue
        rows = {r.priority: r for r in session.scalars(select(QosWaterline).where(
            QosWaterline.switch_id == switch_id, QosWaterline.kind == kind,
            QosWaterline.interface_name == ""))}
        for priority, row in rows.items():
            if priority not in config.waterlines:
                session.delete(row)
        for priority, w in config.waterlines.items():
            row = rows.get(priority) or QosWaterline(
                switch_id=switch_id, priority=priority, kind=kind, interface_name="")
            for name, value in w.model_dump().items():
                setattr(row, name, value)
            row.pfc_enabled = priority in config.pfc_priorities
            row.ecn_enabled = priority in config.ecn_queues
            row.source = source
            session.add(row)


def desired_config(session: Session, switch_id: int) -> dict[int, QosWaterline]:
    return {r.priority: r for r in session.scalars(select(QosWaterline).where(
        QosWaterline.switch_id == switch_id, QosWaterline.kind == "desired",
        QosWaterline.interface_name == ""))}


@dataclass(frozen=True)
class Inconsistency:
    switch: str
    problems: list[str]
    observed_at: datetime | None


WATERLINE_FIELDS = ("kmin_bytes", "kmax_bytes", "pmax", "xoff_bytes", "xon_bytes",
                    "headroom_bytes", "alpha")


def check_consistency(session: Session) -> tuple[int, list[Inconsistency]]:
    """Switches whose observed RoCE settings differ from the intent: PFC on every lossless
    priority, ECN on their queues, and the waterlines Waterline last pushed."""
    fabric = session.scalars(select(Fabric)).first()
    lossless = sorted(fabric.lossless_priorities) if fabric else [3]
    out: list[Inconsistency] = []
    switches = session.scalars(select(Switch).where(Switch.enabled.is_(True))
                               .order_by(Switch.name)).all()
    for switch in switches:
        problems: list[str] = []
        if switch.observed_qos is None:
            out.append(Inconsistency(switch.name, ["QoS config never read from the switch"],
                                     None))
            continue
        observed = QosConfig.model_validate(switch.observed_qos)
        for p in lossless:
            if p not in observed.pfc_priorities:
                problems.append(f"PFC is off on lossless priority {p}")
            if p not in observed.ecn_queues:
                problems.append(f"ECN is off on queue {p}")
        for p in observed.pfc_priorities:
            if p not in lossless:
                problems.append(f"PFC is on for priority {p}, which is not lossless in the fabric")
        for p, row in sorted(desired_config(session, switch.id).items()):
            have = observed.waterlines.get(p)
            if have is None:
                problems.append(f"priority {p}: no waterlines on the switch")
                continue
            for name in WATERLINE_FIELDS:
                want = getattr(row, name)
                got = getattr(have, name)
                if want is not None and got != want and not (
                        isinstance(want, float) and isinstance(got, float)
                        and abs(want - got) <= 1e-9 * max(1.0, abs(want))):
                    problems.append(f"priority {p}: {name} is {got}, intent {want}")
        if problems:
            out.append(Inconsistency(switch.name, problems, switch.observed_qos_at))
    return len(switches), out
