"""Sharing the switches between collector processes with PostgreSQL leases.

Every enabled switch has a lease row. A worker renews its own leases every ``lease_s / 3`` and
each renewal (of a lease, or of the worker's heartbeat that counts it as live) holds for
``2/3 lease_s``, so a killed worker's switches are free within one lease
period of its death and the survivors pick them up at their next claim. Claims use
`SELECT ... FOR UPDATE SKIP LOCKED`, so two workers never take the same switch; each worker
takes at most its fair share (switches / live workers), and hands back what exceeds it when a
new worker joins, so load spreads while sessions stay sticky.
"""

from __future__ import annotations

import math
import time
from typing import cast

from sqlalchemy import Engine, Table, and_, delete, func, literal, null, or_, select, update
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from app.db.models import CollectorLease, CollectorWorker, Switch
from app.db.session import upsert_insert

LEASES = cast(Table, CollectorLease.__table__)
WORKERS = cast(Table, CollectorWorker.__table__)
SWITCHES = cast(Table, Switch.__table__)


def _now_ms() -> int:
    return int(time.time() * 1000)


class LeaseManager:
    def __init__(self, engine: Engine, worker: str, *, lease_s: float = 30.0,
                 real_only: bool = False) -> None:
        self.engine = engine
        # Mock switches live in one process's virtual fabric: collector processes leave them.
        self.real_only = real_only
        self.worker = worker
        self.lease_ms = int(lease_s * 1000)
        self.started_ms = _now_ms()
        self.owned: set[int] = set()
        self.hold_until_ms = 0

    @property
    def renew_interval_s(self) -> float:
        return self.lease_ms / 3000

    def _insert(self, conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
        return upsert_insert(conn.dialect.name, table)

    def claim(self, now_ms: int | None = None) -> set[int]:
        """Heartbeat, renew own leases, shed or take switches towards the fair share."""
        now = _now_ms() if now_ms is None else now_ms
        hold_until = now + self.lease_ms * 2 // 3
        with self.engine.begin() as conn:
            beat = self._insert(conn, WORKERS).values(
                name=self.worker, heartbeat_ms=now, started_ms=self.started_ms
            )
            conn.execute(beat.on_conflict_do_update(
                index_elements=["name"], set_={"heartbeat_ms": now}))
            eligible: ColumnElement[bool] = SWITCHES.c.enabled.is_(True)
            if self.real_only:
                eligible = and_(eligible, SWITCHES.c.driver != "mock")
            enabled = select(SWITCHES.c.id).where(eligible)
            missing = self._insert(conn, LEASES).from_select(
                ["switch_id", "owner", "expires_ms"],
                select(SWITCHES.c.id, sa_cast(null(), LEASES.c.owner.type), literal(0))
                .where(eligible),
            ).on_conflict_do_nothing(index_elements=["switch_id"])
            conn.execute(missing)
            # Leases of disabled or deleted switches are released.
            conn.execute(update(LEASES).where(LEASES.c.switch_id.not_in(enabled))
                         .values(owner=None, expires_ms=0))

            live = conn.execute(select(func.count()).select_from(WORKERS).where(
                WORKERS.c.heartbeat_ms > now - self.lease_ms * 2 // 3)).scalar_one()
            total = conn.execute(select(func.count()).select_from(enabled.subquery())).scalar_one()
            share = math.ceil(total / max(1, live))

            mine = [r[0] for r in conn.execute(
                select(LEASES.c.switch_id)
                .where(LEASES.c.owner == self.worker, LEASES.c.switch_id.in_(enabled))
                .order_by(LEASES.c.switch_id)
                .with_for_update())]
            keep, shed = mine[:share], mine[share:]
            if shed:
                conn.execute(update(LEASES).where(LEASES.c.switch_id.in_(shed))
                             .values(owner=None, expires_ms=0))
            if keep:
                conn.execute(update(LEASES).where(LEASES.c.switch_id.in_(keep))
                             .values(expires_ms=hold_until))
            wanted = share - len(keep)
            taken: list[int] = []
            if wanted > 0:
                free = and_(
                    LEASES.c.switch_id.in_(enabled),
                    or_(LEASES.c.owner.is_(None), LEASES.c.expires_ms < now),
                    or_(LEASES.c.owner.is_(None), LEASES.c.owner != self.worker),
                )
                taken = [r[0] for r in conn.execute(
                    select(LEASES.c.switch_id).where(free).order_by(LEASES.c.switch_id)
                    .limit(wanted).with_for_update(skip_locked=True))]
                if taken:
                    conn.execute(update(LEASES).where(LEASES.c.switch_id.in_(taken))
                                 .values(owner=self.worker, expires_ms=hold_until))
            # Workers silent for ten lease periods are forgotten.
            conn.execute(delete(WORKERS).where(WORKERS.c.heartbeat_ms < now - 10 * self.lease_ms))
        self.owned = set(keep) | set(taken)
        self.hold_until_ms = hold_until
        return self.owned

    def current(self, now_ms: int | None = None) -> set[int]:
        """What this worker may poll now: nothing once its leases may have expired (the
        renewal failed), so two workers never poll one switch."""
        now = _now_ms() if now_ms is None else now_ms
        return set(self.owned) if now < self.hold_until_ms else set()

    def release_all(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(LEASES).where(LEASES.c.owner == self.worker)
                         .values(owner=None, expires_ms=0))
            conn.execute(delete(WORKERS).where(WORKERS.c.name == self.worker))
        self.owned = set()
        self.hold_until_ms = 0
