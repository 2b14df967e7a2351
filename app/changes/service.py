"""The change workflow: plan -> approve -> apply in waves (canary first) -> verify -> rollback.

Safety properties:
- Validation (schema, inventory, guard) happens before any switch is contacted; a refused change
  sends no line to any switch.
- One lock per switch (a row keyed by switch id): a second change touching a locked switch gets
  a conflict, and nothing interleaves.
- Every switch is read before it is changed; its pre-change config is stored before the first
  line is sent, so it can be restored by this process, by an operator's rollback, or by crash
  recovery after a restart.
- After a commit the config is read back and compared with the intent; any failure restores
  that switch and stops the rollout (``on_failure``: ``stop`` keeps the switches already done,
  ``rollback_all`` restores them too).
- Every step is an audit event: who, what, which switch, the diff, the outcome.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app import metrics
from app.audit import record
from app.changes.schemas import (
    ChangeCreate,
    ChangeOut,
    ChangeResultOut,
    qos_from_json,
    qos_to_json,
)
from app.credentials import resolve_secret
from app.db.models import ChangeResult, ChangeSet, Switch, SwitchLock
from app.drivers.base import Driver, SwitchTarget, get_driver
from app.drivers.errors import DriverError
from app.drivers.models import QosConfig, Waterlines
from app.drivers.vendor_common import qos_differences
from app.qos_state import store_qos
from tuning.guard import check_waterlines

log = logging.getLogger("waterline.changes")

ROLE_ORDER = {"tor": 0, "leaf": 1, "spine": 2}  # least blast radius first
IN_FLIGHT = ("applying", "rolling_back")
TERMINAL = ("applied", "failed", "rolled_back", "rollback_failed", "rejected", "dry_run")
HEARTBEAT_S = 2.0
STALE_AFTER_S = 15.0


class ChangeError(Exception):
    """A refusal with an HTTP status: 404 unknown, 409 conflict, 422 invalid, 502 switch I/O."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SwitchContext:
    """What the workflow needs of one switch, detached from the database session."""

    id: int
    name: str
    role: str
    driver: str
    host: str
    port: int
    username: str
    credentials_ref: str
    buffer_bytes: int
    ports: tuple[str, ...]
    speed_gbps: int
    cable_m: float


DriverOpener = Callable[[SwitchContext], Driver]


def default_opener(timeout_s: float = 20.0) -> DriverOpener:
    def open_driver(ctx: SwitchContext) -> Driver:
        secret = resolve_secret(ctx.credentials_ref, switch=ctx.name)
        driver = get_driver(ctx.driver, SwitchTarget(
            name=ctx.name, host=ctx.host, port=ctx.port, username=ctx.username,
            password=secret, secret=secret, interfaces=ctx.ports, timeout_s=timeout_s,
        ))
        driver.open()
        return driver

    return open_driver


def _now() -> datetime:
    return datetime.now(UTC)


def _ms() -> int:
    return int(time.time() * 1000)


def _error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:1000]


@dataclass
class _Plan:
    ctx: SwitchContext
    before: QosConfig | None = None
    after: QosConfig | None = None
    diff: str = ""
    error: str | None = None


@dataclass
class _Run:
    thread: threading.Thread
    done: threading.Event = field(default_factory=threading.Event)


class ChangeService:
    def __init__(
        self,
        factory: sessionmaker[Session],
        opener: DriverOpener | None = None,
        *,
        instance_id: str | None = None,
        plan_concurrency: int = 32,
        restore_attempts: int = 3,
        restore_backoff_s: float = 2.0,
    ) -> None:
        self.factory = factory
        self.opener = opener or default_opener()
        self.instance_id = instance_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.plan_concurrency = plan_concurrency
        self.restore_attempts = restore_attempts
        self.restore_backoff_s = restore_backoff_s
        self._runs: dict[int, _Run] = {}
        self._runs_lock = threading.Lock()

    # --- targets and validation (no switch I/O) -----------------------------------------------

    def _resolve(self, session: Session, body: ChangeCreate) -> list[SwitchContext]:
        t = body.targets
        query = select(Switch).options(selectinload(Switch.interfaces)).order_by(Switch.name)
        if t.switches:
            known = set(session.scalars(select(Switch.name).where(Switch.name.in_(t.switches))))
            missing = [n for n in t.switches if n not in known]
            if missing:
                raise ChangeError(422, f"targets.switches: unknown switch {missing[0]!r}")
            query = query.where(Switch.name.in_(t.switches))
        if t.roles:
            query = query.where(Switch.role.in_(t.roles))
        if t.pods:
            query = query.where(Switch.pod.in_(t.pods))
        switches = [s for s in session.scalars(query) if s.enabled]
        if not switches:
            raise ChangeError(422, "targets: no enabled switch matches")
        contexts = []
        for s in switches:
            ports = [i for i in s.interfaces if not t.interfaces or i.name in t.interfaces]
            if t.interfaces:
                names = {i.name for i in s.interfaces}
                absent = [n for n in t.interfaces if n not in names]
                if absent:
                    raise ChangeError(
                        422, f"targets.interfaces: switch {s.name!r} has no interface {absent[0]!r}")
            if not ports:
                raise ChangeError(422, f"targets: switch {s.name!r} has no interfaces")
            contexts.append(SwitchContext(
                id=s.id, name=s.name, role=s.role, driver=s.driver, host=s.mgmt_host,
                port=s.mgmt_port, username=s.username, credentials_ref=s.credentials_ref,
                buffer_bytes=s.buffer_bytes, ports=tuple(i.name for i in ports),
                speed_gbps=max(i.speed_gbps for i in ports),
                cable_m=max(i.cable_m for i in ports),
            ))
        contexts.sort(key=lambda c: (ROLE_ORDER.get(c.role, 9), c.name))
        return contexts

    @staticmethod
    def _guard(body: ChangeCreate, contexts: list[SwitchContext]) -> None:
        for ctx in contexts:
            for priority, w in body.waterlines.items():
                # The worst port of the switch decides: the fastest and the longest cable.
                refusals = check_waterlines(w.to_model(), speed_gbps=ctx.speed_gbps,
                                            buffer_bytes=ctx.buffer_bytes, cable_m=ctx.cable_m)
                if refusals:
                    raise ChangeError(422, f"waterlines.{priority}: switch {ctx.name} "
                                           f"({ctx.speed_gbps}G, {ctx.cable_m:g} m, "
                                           f"{ctx.buffer_bytes} B buffer): {refusals[0]}")

    # --- plan ---------------------------------------------------------------------------------

    @staticmethod
    def _desired(current: QosConfig, body: ChangeCreate) -> QosConfig:
        waterlines: dict[int, Waterlines] = dict(current.waterlines)
        for priority, w in body.waterlines.items():
            new = w.to_model()
            old = current.waterlines.get(priority)
            # Fields the change leaves out keep the switch's current values (an ECN-only change
            # does not clear the PFC headroom).
            waterlines[priority] = new if old is None else old.model_copy(
                update={k: v for k, v in new.model_dump().items() if v is not None})
        pfc = tuple(body.baseline.pfc_priorities) if body.baseline else current.pfc_priorities
        ecn = tuple(body.baseline.ecn_queues) if body.baseline else current.ecn_queues
        missing = sorted(set(body.waterlines) - set(ecn))
        if missing:
            raise ValueError(f"queue {missing[0]} has no ECN enabled on the switch; "
                             "include a baseline that enables it")
        return QosConfig(pfc_priorities=pfc, ecn_queues=ecn, waterlines=waterlines).normalised()

    def _plan_switch(self, ctx: SwitchContext, body: ChangeCreate) -> _Plan:
        plan = _Plan(ctx)
        try:
            driver = self.opener(ctx)
        except DriverError as exc:
            plan.error = _error(exc)
            return plan
        try:
            plan.before = driver.get_qos_config().normalised()
            plan.after = self._desired(plan.before, body)
            driver.load_candidate(plan.after)
            plan.diff = driver.compare()
            driver.discard()
        except (DriverError, ValueError) as exc:
            plan.error = _error(exc)
        finally:
            _close(driver)
        return plan

    def create(self, body: ChangeCreate, actor: str, *, source: str = "api") -> int:
        """Validate, read every target's current config, render the diffs, store the plan."""
        with self.factory() as session:
            contexts = self._resolve(session, body)
            self._guard(body, contexts)
            locked = session.execute(
                select(Switch.name, SwitchLock.change_id).join(
                    SwitchLock, SwitchLock.switch_id == Switch.id)
                .where(SwitchLock.switch_id.in_([c.id for c in contexts]))
            ).first()
            if locked is not None and not body.dry_run:
                raise ChangeError(409, f"switch {locked[0]} is locked by change {locked[1]}")
        with ThreadPoolExecutor(max_workers=min(self.plan_concurrency, len(contexts))) as pool:
            plans = list(pool.map(lambda c: self._plan_switch(c, body), contexts))
        failed = [p for p in plans if p.error]
        if failed and not body.dry_run:
            first = failed[0]
            raise ChangeError(502, f"switch {first.ctx.name}: cannot plan: {first.error}")
        with self.factory() as session:
            change = ChangeSet(
                created_by=actor, source=source, description=body.description,
                status="dry_run" if body.dry_run else "planned",
                targets={**body.targets.model_dump(), "resolved": [c.name for c in contexts]},
                intent={"waterlines": {str(p): w.to_model().model_dump()
                                       for p, w in body.waterlines.items()},
                        "baseline": body.baseline.model_dump() if body.baseline else None},
                wave_size=body.wave_size, on_failure=body.on_failure,
            )
            session.add(change)
            session.flush()
            for index, plan in enumerate(plans):
                wave = 0 if index == 0 else 1 + (index - 1) // body.wave_size
                session.add(ChangeResult(
                    change_id=change.id, switch_id=plan.ctx.id, wave=wave,
                    state="plan_failed" if plan.error else "planned",
                    reason=plan.error or ("no change needed" if not plan.diff else ""),
                    diff=plan.diff,
                    before=qos_to_json(plan.before) if plan.before else None,
                    after=qos_to_json(plan.after) if plan.after else None,
                ))
            record(session, actor, "change.dry_run" if body.dry_run else "change.create",
                   change_id=change.id,
                   detail={"targets": change.targets, "intent": change.intent,
                           "diffs": {p.ctx.name: p.diff for p in plans},
                           "errors": {p.ctx.name: p.error for p in failed}})
            session.commit()
            return change.id

    # --- approve ------------------------------------------------------------------------------

    def approve(self, change_id: int, actor: str) -> None:
        with self.factory() as session:
            change = self._get(session, change_id)
            if change.status != "planned":
                raise ChangeError(409, f"change {change_id} is {change.status}; only a planned "
                                       "change can be approved")
            change.status = "approved"
            change.approved_by = actor
            change.approved_at = _now()
            record(session, actor, "change.approve", change_id=change_id)
            session.commit()

    def reject(self, change_id: int, actor: str) -> None:
        with self.factory() as session:
            change = self._get(session, change_id)
            if change.status not in ("planned", "approved"):
                raise ChangeError(409, f"change {change_id} is {change.status}")
            change.status = "rejected"
            change.finished_at = _now()
            record(session, actor, "change.reject", change_id=change_id)
            session.commit()

    # --- locks --------------------------------------------------------------------------------

    def _lock(self, change_id: int, switch_ids: list[int]) -> None:
        """All of the switches or none: a conflict names the switch and its holder."""
        with self.factory() as session:
            holders = session.execute(
                select(Switch.name, SwitchLock.change_id)
                .join(SwitchLock, SwitchLock.switch_id == Switch.id)
                .where(SwitchLock.switch_id.in_(switch_ids), SwitchLock.change_id != change_id)
            ).first()
            if holders is not None:
                raise ChangeError(409, f"switch {holders[0]} is locked by change {holders[1]}")
            try:
                mine = set(session.scalars(select(SwitchLock.switch_id).where(
                    SwitchLock.change_id == change_id)))
                for sid in switch_ids:
                    if sid not in mine:
                        session.add(SwitchLock(switch_id=sid, change_id=change_id))
                session.commit()
            except IntegrityError:
                session.rollback()
                raise ChangeError(409, "a target switch was locked by a concurrent change") from None

    def _unlock(self, change_id: int) -> None:
        with self.factory() as session:
            session.execute(delete(SwitchLock).where(SwitchLock.change_id == change_id))
            session.commit()

    # --- apply --------------------------------------------------------------------------------

    def start_apply(self, change_id: int, actor: str, *, wait: bool = False) -> None:
        with self.factory() as session:
            change = self._get(session, change_id)
            if change.status != "approved":
                raise ChangeError(409, f"change {change_id} is {change.status}; approve it first")
            switch_ids = [r.switch_id for r in change.results]
        self._lock(change_id, switch_ids)
        with self.factory() as session:
            change = self._get(session, change_id)
            if change.status != "approved":  # lost a race with another apply of the same change
                raise ChangeError(409, f"change {change_id} is {change.status}")
            change.status = "applying"
            change.owner = self.instance_id
            change.heartbeat_ms = _ms()
            change.started_at = _now()
            record(session, actor, "change.apply", change_id=change_id,
                   detail={"switches": len(switch_ids)})
            session.commit()
        self._spawn(change_id, lambda: self._execute(change_id, actor), wait)

    def _spawn(self, change_id: int, work: Callable[[], None], wait: bool) -> None:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                try:
                    with self.factory() as session:
                        change = session.get(ChangeSet, change_id)
                        if change is not None:
                            change.heartbeat_ms = _ms()
                            session.commit()
                except Exception:  # a missed heartbeat only delays nothing
                    log.debug("heartbeat failed", exc_info=True)

        def run() -> None:
            beater = threading.Thread(target=beat, daemon=True)
            beater.start()
            try:
                work()
            except Exception:
                log.exception("change %s: executor crashed", change_id)
                self._finish(change_id, "failed", "executor error (see logs)", "system")
            finally:
                stop.set()
                self._runs[change_id].done.set()

        thread = threading.Thread(target=run, name=f"change-{change_id}", daemon=True)
        with self._runs_lock:
            self._runs[change_id] = _Run(thread)
        thread.start()
        if wait:
            thread.join()

    def wait(self, change_id: int, timeout_s: float = 120.0) -> bool:
        run = self._runs.get(change_id)
        return True if run is None else run.done.wait(timeout_s)

    def _contexts(self, change_id: int) -> dict[int, SwitchContext]:
        with self.factory() as session:
            change = self._get(session, change_id)
            targets = change.targets
            ids = [r.switch_id for r in change.results]
            switches = session.scalars(select(Switch).where(Switch.id.in_(ids))
                                       .options(selectinload(Switch.interfaces)))
            out = {}
            for s in switches:
                ports = [i for i in s.interfaces
                         if not targets.get("interfaces") or i.name in targets["interfaces"]]
                out[s.id] = SwitchContext(
                    id=s.id, name=s.name, role=s.role, driver=s.driver, host=s.mgmt_host,
                    port=s.mgmt_port, username=s.username, credentials_ref=s.credentials_ref,
                    buffer_bytes=s.buffer_bytes, ports=tuple(i.name for i in ports),
                    speed_gbps=max((i.speed_gbps for i in ports), default=0),
                    cable_m=max((i.cable_m for i in ports), default=0.0))
            return out

    def _set_result(self, change_id: int, switch_id: int, **values: Any) -> None:
        with self.factory() as session:
            row = session.scalars(select(ChangeResult).where(
                ChangeResult.change_id == change_id, ChangeResult.switch_id == switch_id)).one()
            for key, value in values.items():
                setattr(row, key, value)
            session.commit()

    def _audit(self, actor: str, action: str, change_id: int, switch: str | None = None,
               outcome: str = "ok", **detail: Any) -> None:
        with self.factory() as session:
            record(session, actor, action, change_id=change_id, switch_name=switch,
                   outcome=outcome, detail=detail)
            session.commit()

    def _execute(self, change_id: int, actor: str) -> None:
        contexts = self._contexts(change_id)
        with self.factory() as session:
            change = self._get(session, change_id)
            on_failure = change.on_failure
            wave_size = change.wave_size
            waves: dict[int, list[tuple[int, QosConfig, QosConfig | None]]] = {}
            for r in change.results:
                if r.after is None:
                    continue
                waves.setdefault(r.wave, []).append(
                    (r.switch_id, qos_from_json(r.after),
                     qos_from_json(r.before) if r.before else None))
        failed_reason = ""
        done: list[tuple[int, QosConfig]] = []  # switches changed, with their pre-change config
        for wave in sorted(waves):
            members = waves[wave]
            self._audit(actor, "change.wave", change_id, wave=wave,
                        switches=[contexts[m[0]].name for m in members])
            with ThreadPoolExecutor(max_workers=min(wave_size, len(members))) as pool:
                outcomes = list(pool.map(
                    lambda m: self._apply_switch(change_id, contexts[m[0]], m[1], actor), members))
            for (switch_id, _after, _before), (ok, before, reason) in zip(members, outcomes,
                                                                          strict=True):
                if ok and before is not None:
                    done.append((switch_id, before))
                elif not ok and not failed_reason:
                    failed_reason = f"switch {contexts[switch_id].name}: {reason}"
            if failed_reason:
                break
        if not failed_reason:
            self._finish(change_id, "applied", "", actor)
            return
        # Stop the rollout: what never started is skipped.
        with self.factory() as session:
            for r in session.scalars(select(ChangeResult).where(
                    ChangeResult.change_id == change_id, ChangeResult.state == "planned")):
                r.state = "skipped"
                r.reason = "rollout stopped: " + failed_reason
            session.commit()
        status = "failed"
        if on_failure == "rollback_all":
            ok = all(self._restore(change_id, contexts[sid], before, actor, "rollback_all")
                     for sid, before in done)
            status = "rolled_back" if ok else "rollback_failed"
        self._finish(change_id, status, failed_reason, actor)

    def _apply_switch(self, change_id: int, ctx: SwitchContext, after: QosConfig,
                      actor: str) -> tuple[bool, QosConfig | None, str]:
        """Apply one switch. Returns (ok, its config before the change, reason)."""
        self._set_result(change_id, ctx.id, state="applying", reason="")
        try:
            driver = self.opener(ctx)
        except DriverError as exc:
            reason = _error(exc)
            self._set_result(change_id, ctx.id, state="failed", reason=reason)
            self._audit(actor, "switch.apply", change_id, ctx.name, "failed", error=reason)
            metrics.CHANGES.labels("switch_failed").inc()
            return False, None, reason
        before: QosConfig | None = None
        committed = False
        try:
            before = driver.get_qos_config().normalised()
            # The pre-change config is stored before the first line is sent.
            self._set_result(change_id, ctx.id, before=qos_to_json(before))
            driver.load_candidate(after)
            diff = driver.compare()
            self._set_result(change_id, ctx.id, diff=diff)
            if diff:
                committed = True  # from here the switch may hold part of the change
                driver.commit()
                self._set_result(change_id, ctx.id, state="committed")
            self._audit(actor, "switch.commit", change_id, ctx.name, diff=diff)
            readback = driver.get_qos_config()
            problems = qos_differences(driver.expected_readback(after), readback)
            if problems:
                raise DriverError("read-back differs from the intent: " + "; ".join(problems[:3]),
                                  switch=ctx.name)
            self._set_result(change_id, ctx.id, state="verified",
                             reason="" if diff else "no change needed")
            self._store_observed(ctx.id, readback, desired=after)
            self._audit(actor, "switch.verify", change_id, ctx.name)
            return True, before, ""
        except (DriverError, ValueError) as exc:
            reason = _error(exc)
            self._set_result(change_id, ctx.id, state="failed", reason=reason)
            self._audit(actor, "switch.apply", change_id, ctx.name, "failed", error=reason)
            metrics.CHANGES.labels("switch_failed").inc()
        finally:
            _close(driver)
        if before is not None and committed:
            self._restore(change_id, ctx, before, actor, "failure", keep_state_reason=reason)
        elif before is not None:
            self._set_result(change_id, ctx.id, state="failed", reason=reason + " (nothing sent)")
        return False, before, reason

    def _restore(self, change_id: int, ctx: SwitchContext, before: QosConfig, actor: str,
                 why: str, *, keep_state_reason: str = "") -> bool:
        """Bring a switch back to ``before``, verifying the read-back; retried with backoff."""
        last = ""
        for attempt in range(self.restore_attempts):
            if attempt:
                time.sleep(self.restore_backoff_s * attempt)
            driver = None
            try:
                driver = self.opener(ctx)
                current = driver.get_qos_config()
                if qos_differences(driver.expected_readback(before), current):
                    driver.load_candidate(before, restore=True)
                    diff = driver.compare()
                    driver.commit()
                    current = driver.get_qos_config()
                    problems = qos_differences(driver.expected_readback(before), current)
                    if problems:
                        raise DriverError("read-back after rollback differs: " + problems[0])
                else:
                    diff = ""
                reason = f"rolled back ({why})" + (f": {keep_state_reason}" if keep_state_reason
                                                   else "")
                self._set_result(change_id, ctx.id, state="rolled_back", reason=reason[:1000])
                self._store_observed(ctx.id, current, desired=before)
                self._audit(actor, "switch.rollback", change_id, ctx.name, diff=diff, why=why)
                metrics.CHANGE_ROLLBACKS.inc()
                return True
            except (DriverError, ValueError) as exc:
                last = _error(exc)
                log.warning("change %s: restoring %s failed (attempt %d): %s", change_id,
                            ctx.name, attempt + 1, last)
            finally:
                if driver is not None:
                    _close(driver)
        self._set_result(change_id, ctx.id, state="rollback_failed",
                         reason=f"rollback failed: {last}; {keep_state_reason}"[:1000])
        self._audit(actor, "switch.rollback", change_id, ctx.name, "failed", error=last)
        return False

    def _finish(self, change_id: int, status: str, reason: str, actor: str) -> None:
        with self.factory() as session:
            change = self._get(session, change_id)
            change.status = status
            change.reason = reason[:2000]
            change.finished_at = _now()
            change.owner = None
            record(session, actor, "change.finish", change_id=change_id,
                   outcome=status, detail={"reason": reason})
            session.commit()
        self._unlock(change_id)
        metrics.CHANGES.labels(status).inc()

    def _store_observed(self, switch_id: int, observed: QosConfig, *, desired: QosConfig) -> None:
        """Remember what the switch reports and what Waterline wants of it (consistency check,
        /metrics waterline gauges)."""
        with self.factory() as session:
            store_qos(session, switch_id, observed=observed, desired=desired, source="change")
            session.commit()

    # --- rollback -----------------------------------------------------------------------------

    def start_rollback(self, change_id: int, actor: str, *, wait: bool = False) -> None:
        """Restore every switch this change touched to its pre-change config."""
        with self.factory() as session:
            change = self._get(session, change_id)
            if change.status in IN_FLIGHT:
                raise ChangeError(409, f"change {change_id} is {change.status}; wait for it")
            if change.status in ("planned", "approved", "rejected", "dry_run"):
                raise ChangeError(409, f"change {change_id} was never applied")
            touched = [r.switch_id for r in change.results if r.before is not None
                       and r.state in ("verified", "committed", "failed", "rollback_failed",
                                       "applying")]
        if not touched:
            raise ChangeError(409, f"change {change_id} left nothing to roll back")
        self._lock(change_id, touched)
        with self.factory() as session:
            change = self._get(session, change_id)
            change.status = "rolling_back"
            change.owner = self.instance_id
            change.heartbeat_ms = _ms()
            record(session, actor, "change.rollback", change_id=change_id,
                   detail={"switches": len(touched)})
            session.commit()
        self._spawn(change_id, lambda: self._rollback_all(change_id, touched, actor, "operator"),
                    wait)

    def _rollback_all(self, change_id: int, switch_ids: Iterable[int], actor: str,
                      why: str) -> None:
        contexts = self._contexts(change_id)
        with self.factory() as session:
            befores = {r.switch_id: qos_from_json(r.before)
                       for r in self._get(session, change_id).results if r.before is not None}
        ok = True
        for sid in switch_ids:
            ok = self._restore(change_id, contexts[sid], befores[sid], actor, why) and ok
        self._finish(change_id, "rolled_back" if ok else "rollback_failed",
                     "" if ok else "some switches could not be restored", actor)

    # --- crash recovery -----------------------------------------------------------------------

    def recover(self, *, wait: bool = True) -> list[int]:
        """Resolve changes left in flight by a dead process: every switch they touched is
        brought back to its pre-change config (or found already there), never left unknown."""
        now = _ms()
        orphans: list[int] = []
        with self.factory() as session:
            for change in session.scalars(select(ChangeSet).where(
                    ChangeSet.status.in_(IN_FLIGHT))):
                if change.owner == self.instance_id:
                    continue
                if not (_owner_dead(change.owner) or
                        now - (change.heartbeat_ms or 0) > STALE_AFTER_S * 1000):
                    continue
                record(session, "system", "change.recover", change_id=change.id,
                       detail={"previous_owner": change.owner, "status": change.status})
                change.owner = self.instance_id
                change.status = "rolling_back"
                change.heartbeat_ms = now
                orphans.append(change.id)
            session.commit()
        for change_id in orphans:
            with self.factory() as session:
                results = self._get(session, change_id).results
                # Switches the rollout reached (their pre-change config is stored); the rest
                # were only planned and never received a line.
                touched = [r.switch_id for r in results if r.before is not None
                           and r.state in ("applying", "committed", "verified", "failed",
                                           "rollback_failed")]
                for r in results:
                    if r.state == "planned":
                        r.state = "skipped"
                        r.reason = "the process applying the change died before this switch"
                session.commit()
            self._spawn(change_id, functools.partial(
                self._rollback_all, change_id, touched, "system", "crash recovery"), wait)
        return orphans

    # --- reading ------------------------------------------------------------------------------

    @staticmethod
    def _get(session: Session, change_id: int) -> ChangeSet:
        change = session.scalars(select(ChangeSet).where(ChangeSet.id == change_id)
                                 .options(selectinload(ChangeSet.results))).first()
        if change is None:
            raise ChangeError(404, f"change {change_id} not found")
        return change

    def get(self, change_id: int) -> ChangeOut:
        with self.factory() as session:
            return _change_out(session, self._get(session, change_id))

    def list(self, *, status: str | None = None, limit: int = 100, offset: int = 0
             ) -> tuple[int, list[ChangeOut]]:
        with self.factory() as session:
            query = select(ChangeSet).options(selectinload(ChangeSet.results))
            if status:
                query = query.where(ChangeSet.status == status)
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(ChangeSet.id.desc()).limit(limit)
                                   .offset(offset)).all()
            return total, [_change_out(session, c) for c in rows]


def _change_out(session: Session, change: ChangeSet) -> ChangeOut:
    names = dict(session.execute(select(Switch.id, Switch.name).where(
        Switch.id.in_([r.switch_id for r in change.results]))).tuples().all())
    return ChangeOut(
        id=change.id, status=change.status, created_by=change.created_by,
        created_at=change.created_at, source=change.source, description=change.description,
        targets=change.targets, intent=change.intent, wave_size=change.wave_size,
        approved_by=change.approved_by, approved_at=change.approved_at,
        started_at=change.started_at, finished_at=change.finished_at, reason=change.reason,
        results=[ChangeResultOut(switch=names.get(r.switch_id, str(r.switch_id)), wave=r.wave,
                                 state=r.state, reason=r.reason, diff=r.diff, before=r.before,
                                 after=r.after, updated_at=r.updated_at)
                 for r in sorted(change.results, key=lambda r: (r.wave, r.id))],
    )


def _owner_dead(owner: str | None) -> bool:
    """True if ``owner`` (host:pid:nonce) was a process on this host that no longer runs."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # the same pid but another instance id: this process was restarted
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _close(driver: Driver) -> None:
    try:
        driver.close()
    except Exception:
        log.debug("closing driver failed", exc_info=True)
