"""The change workflow: plan -> approve -> apply in waves (canary first) -> verify -> rollback.

Safety properties:
- Validation (schema, inventory, guard) happens before any switch is contacted; a refused change
  sends no line to any switch.
- One lock per switch (a row keyed by switch id): a second change touching a locked switch gets
  a conflict, and nothing interleaves.
- Every switch is read before it is changed; its pre-change config is stored before the first
  line is sent, so it can be restored by this process, by an operator's rollback, or by crash
  recovery after a restart.
- At apply each switch is read again and the diff rendered again; if it differs from the
  approved plan (the switch changed meanwhile), nothing is sent and the rollout stops.
- After a commit the config is read back and compared with the intent; any failure restores
  that switch and stops the rollout (``on_failure``: ``stop`` keeps the switches already done,
  ``rollback_all`` restores them too).
- A rollback restores only what the change set, so what other changes did since stays; an
  operator's rollback refuses a switch whose settings someone changed since.
- Status changes are conditional UPDATEs, so concurrent approve/apply/reject/rollback calls
  on one change cannot both win.
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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
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
from app.drivers.errors import DriverError, ValidationFailed
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



def _merged_refusal(intent: Intent, after: QosConfig, ctx: SwitchContext) -> str:
    """The guard on what the switch would run: where the intent sets part of the PG buffer
    (xoff, xon, headroom), the fields it leaves out keep the switch's values, so the
    merged set is checked again (an xoff of 300 KB under the switch's 218 KB headroom passes
    the intent's own check, which counts xoff + xon as the headroom)."""
    for priority, w in intent.waterlines.items():
        if all(getattr(w, f) is None for f in ("xoff_bytes", "xon_bytes", "headroom_bytes")):
            continue
        merged = after.waterlines.get(priority)
        if merged is None:
            continue
        refusals = check_waterlines(merged, speed_gbps=ctx.speed_gbps,
                                    buffer_bytes=ctx.buffer_bytes, cable_m=ctx.cable_m)
        if refusals:
            return (f"waterlines.{priority} with the switch's other values "
                    f"(headroom {merged.headroom_bytes}, xoff {merged.xoff_bytes}, xon "
                    f"{merged.xon_bytes}): {refusals[0]}")
    return ""


def _error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:1000]


@dataclass(frozen=True)
class Intent:
    """What a change sets: waterlines per priority and, optionally, the RoCE baseline."""

    waterlines: dict[int, Waterlines]
    pfc_priorities: tuple[int, ...] | None = None
    ecn_queues: tuple[int, ...] | None = None

    @classmethod
    def from_body(cls, body: ChangeCreate) -> Intent:
        return cls(
            waterlines={p: w.to_model() for p, w in body.waterlines.items()},
            pfc_priorities=tuple(body.baseline.pfc_priorities) if body.baseline else None,
            ecn_queues=tuple(body.baseline.ecn_queues) if body.baseline else None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Intent:
        baseline = data.get("baseline") or None
        return cls(
            waterlines={int(p): Waterlines(**w) for p, w in (data.get("waterlines") or {}).items()},
            pfc_priorities=tuple(baseline["pfc_priorities"]) if baseline else None,
            ecn_queues=tuple(baseline["ecn_queues"]) if baseline else None)

    def to_json(self) -> dict[str, Any]:
        baseline = None
        if self.pfc_priorities is not None and self.ecn_queues is not None:
            baseline = {"pfc_priorities": list(self.pfc_priorities),
                        "ecn_queues": list(self.ecn_queues)}
        return {"waterlines": {str(p): w.model_dump() for p, w in self.waterlines.items()},
                "baseline": baseline}

    def desired(self, current: QosConfig) -> QosConfig:
        """``current`` with this intent applied. Waterline fields the intent leaves out keep
        the switch's values (an ECN-only change does not clear the PFC headroom)."""
        waterlines: dict[int, Waterlines] = dict(current.waterlines)
        for priority, new in self.waterlines.items():
            old = current.waterlines.get(priority)
            waterlines[priority] = new if old is None else old.model_copy(
                update={k: v for k, v in new.model_dump().items() if v is not None})
        pfc = self.pfc_priorities if self.pfc_priorities is not None else current.pfc_priorities
        ecn = self.ecn_queues if self.ecn_queues is not None else current.ecn_queues
        missing = sorted(set(self.waterlines) - set(ecn))
        if missing:
            raise ValueError(f"queue {missing[0]} has no ECN enabled on the switch; "
                             "include a baseline that enables it")
        return QosConfig(pfc_priorities=pfc, ecn_queues=ecn, waterlines=waterlines).normalised()

    def restored(self, current: QosConfig, before: QosConfig) -> QosConfig:
        """``current`` with what this intent touches put back as it was in ``before``; what
        other changes did since (other priorities) stays."""
        waterlines = dict(current.waterlines)
        for priority in self.waterlines:
            if priority in before.waterlines:
                waterlines[priority] = before.waterlines[priority]
            else:
                waterlines.pop(priority, None)
        pfc = before.pfc_priorities if self.pfc_priorities is not None else current.pfc_priorities
        ecn = before.ecn_queues if self.ecn_queues is not None else current.ecn_queues
        return QosConfig(pfc_priorities=pfc, ecn_queues=ecn, waterlines=waterlines).normalised()

    def touched(self, config: QosConfig) -> tuple[Any, ...]:
        """The parts of ``config`` this intent sets (to tell whether someone changed them)."""
        return (
            tuple(config.waterlines.get(p) for p in sorted(self.waterlines)),
            config.pfc_priorities if self.pfc_priorities is not None else None,
            config.ecn_queues if self.ecn_queues is not None else None,
        )


@dataclass
class _Plan:
    ctx: SwitchContext
    before: QosConfig | None = None
    after: QosConfig | None = None
    diff: str = ""
    error: str | None = None
    invalid: bool = False  # the intent does not fit the switch (422), not an I/O failure


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
        self._sweeper_stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # --- targets and validation (no switch I/O) -----------------------------------------------

    def _resolve(self, session: Session, body: ChangeCreate) -> list[SwitchContext]:
        t = body.targets
        query = select(Switch).options(selectinload(Switch.interfaces)).order_by(Switch.name)
        if t.switches:
            named = {s.name: s for s in session.scalars(
                select(Switch).where(Switch.name.in_(t.switches)))}
            missing = [n for n in t.switches if n not in named]
            if missing:
                raise ChangeError(422, f"targets.switches: unknown switch {missing[0]!r}")
            disabled = [n for n in t.switches if not named[n].enabled]
            if disabled:
                raise ChangeError(422, f"targets.switches: switch {disabled[0]!r} is disabled")
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
            if t.interfaces:
                names = {i.name for i in s.interfaces}
                absent = [n for n in t.interfaces if n not in names]
                if absent:
                    raise ChangeError(
                        422, f"targets.interfaces: switch {s.name!r} has no interface {absent[0]!r}")
            contexts.append(_context(s, t.interfaces))
            if not contexts[-1].ports:
                raise ChangeError(422, f"targets: switch {s.name!r} has no interfaces")
        contexts.sort(key=lambda c: (ROLE_ORDER.get(c.role, 9), c.name))
        return contexts

    @staticmethod
    def _guard(intent: Intent, contexts: list[SwitchContext]) -> None:
        for ctx in contexts:
            for priority, w in intent.waterlines.items():
                # The worst port of the switch decides: the fastest and the longest cable.
                refusals = check_waterlines(w, speed_gbps=ctx.speed_gbps,
                                            buffer_bytes=ctx.buffer_bytes, cable_m=ctx.cable_m)
                if refusals:
                    raise ChangeError(422, f"waterlines.{priority}: switch {ctx.name} "
                                           f"({ctx.speed_gbps}G, {ctx.cable_m:g} m, "
                                           f"{ctx.buffer_bytes} B buffer): {refusals[0]}")

    # --- plan ---------------------------------------------------------------------------------

    def _plan_switch(self, ctx: SwitchContext, intent: Intent) -> _Plan:
        plan = _Plan(ctx)
        try:
            driver = self.opener(ctx)
        except DriverError as exc:
            plan.error = _error(exc)
            return plan
        try:
            plan.before = driver.get_qos_config().normalised()
            plan.after = intent.desired(plan.before)
            merged = _merged_refusal(intent, plan.after, ctx)
            if merged:
                plan.error, plan.invalid = merged, True
                driver.discard()
                return plan
            driver.load_candidate(plan.after)
            plan.diff = driver.compare()
            driver.discard()
        except (ValidationFailed, ValueError) as exc:
            plan.error, plan.invalid = _error(exc), True
        except DriverError as exc:
            plan.error = _error(exc)
        except Exception as exc:  # a driver bug is this switch's failure, not a 500
            log.exception("planning %s failed", ctx.name)
            plan.error = _error(exc)
        finally:
            _close(driver)
        return plan

    def create(self, body: ChangeCreate, actor: str, *, source: str = "api") -> int:
        """Validate, read every target's current config, render the diffs, store the plan."""
        intent = Intent.from_body(body)
        with self.factory() as session:
            contexts = self._resolve(session, body)
            self._guard(intent, contexts)
            locked = session.execute(
                select(Switch.name, SwitchLock.change_id).join(
                    SwitchLock, SwitchLock.switch_id == Switch.id)
                .where(SwitchLock.switch_id.in_([c.id for c in contexts]))
            ).first()
            if locked is not None and not body.dry_run:
                raise ChangeError(409, f"switch {locked[0]} is locked by change {locked[1]}")
        with ThreadPoolExecutor(max_workers=min(self.plan_concurrency, len(contexts))) as pool:
            plans = list(pool.map(lambda c: self._plan_switch(c, intent), contexts))
        failed = [p for p in plans if p.error]
        if failed and not body.dry_run:
            first = next((p for p in failed if p.invalid), failed[0])
            status = 422 if first.invalid else 502
            what = "the change does not fit" if first.invalid else "cannot plan"
            raise ChangeError(status, f"switch {first.ctx.name}: {what}: {first.error}")
        with self.factory() as session:
            change = ChangeSet(
                created_by=actor, source=source, description=body.description,
                status="dry_run" if body.dry_run else "planned",
                targets={**body.targets.model_dump(), "resolved": [c.name for c in contexts]},
                intent=intent.to_json(), wave_size=body.wave_size, on_failure=body.on_failure,
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

    # --- state transitions (atomic: a conditional UPDATE decides every race) ------------------

    def _transition(self, change_id: int, from_states: tuple[str, ...], to_state: str,
                    **values: Any) -> bool:
        with self.factory() as session:
            result = session.execute(
                update(ChangeSet)
                .where(ChangeSet.id == change_id, ChangeSet.status.in_(from_states))
                .values(status=to_state, **values))
            session.commit()
            return bool(getattr(result, "rowcount", 0) == 1)

    def _refuse_transition(self, change_id: int, what: str) -> ChangeError:
        with self.factory() as session:
            change = self._get(session, change_id)
            return ChangeError(409, f"change {change_id} is {change.status}; {what}")

    def approve(self, change_id: int, actor: str) -> None:
        with self.factory() as session:
            self._get(session, change_id)
        if not self._transition(change_id, ("planned",), "approved", approved_by=actor,
                                approved_at=_now()):
            raise self._refuse_transition(change_id, "only a planned change can be approved")
        self._audit(actor, "change.approve", change_id)

    def reject(self, change_id: int, actor: str) -> None:
        with self.factory() as session:
            self._get(session, change_id)
        if not self._transition(change_id, ("planned", "approved"), "rejected",
                                finished_at=_now()):
            raise self._refuse_transition(change_id, "only a planned or approved change can be "
                                                     "rejected")
        self._audit(actor, "change.reject", change_id)

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
            switch_ids = [r.switch_id for r in self._get(session, change_id).results]
            # planning refuses a disabled switch; one disabled since is refused here
            disabled = session.scalars(select(Switch.name).where(
                Switch.id.in_(switch_ids), Switch.enabled.is_(False)).order_by(Switch.name)
            ).first()
            if disabled is not None:
                raise ChangeError(409, f"switch {disabled!r} was disabled after the change was "
                                       "planned; plan it again")
        if not self._transition(change_id, ("approved",), "applying", owner=self.instance_id,
                                heartbeat_ms=_ms(), started_at=_now()):
            raise self._refuse_transition(change_id, "only an approved change can be applied")
        try:
            self._lock(change_id, switch_ids)
        except BaseException:
            self._transition(change_id, ("applying",), "approved", owner=None, started_at=None)
            raise
        self._audit(actor, "change.apply", change_id, switches=len(switch_ids))
        self._spawn(change_id, functools.partial(self._execute, change_id, actor), wait)

    def _spawn(self, change_id: int, work: Callable[[], None], wait: bool) -> None:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                try:
                    with self.factory() as session:
                        session.execute(update(ChangeSet).where(
                            ChangeSet.id == change_id, ChangeSet.owner == self.instance_id)
                            .values(heartbeat_ms=_ms()))
                        session.commit()
                except Exception:  # a missed heartbeat only delays nothing
                    log.debug("heartbeat failed", exc_info=True)

        run_record = _Run(threading.Thread(target=lambda: None))

        def run() -> None:
            beater = threading.Thread(target=beat, daemon=True)
            beater.start()
            try:
                work()
            except Exception:
                log.exception("change %s: executor crashed", change_id)
                self._salvage(change_id)
            finally:
                stop.set()
                run_record.done.set()
                with self._runs_lock:
                    if self._runs.get(change_id) is run_record:
                        del self._runs[change_id]

        thread = threading.Thread(target=run, name=f"change-{change_id}", daemon=True)
        run_record.thread = thread
        with self._runs_lock:
            self._runs[change_id] = run_record
        thread.start()
        if wait:
            thread.join()

    def wait(self, change_id: int, timeout_s: float = 120.0) -> bool:
        with self._runs_lock:
            run = self._runs.get(change_id)
        return True if run is None else run.done.wait(timeout_s)

    def running(self) -> list[int]:
        with self._runs_lock:
            return list(self._runs)

    def wait_all(self, timeout_s: float = 300.0) -> list[int]:
        """Wait for every change this process is applying or rolling back (a process about
        to exit must not leave one half-applied); the ones still running after
        ``timeout_s`` in all."""
        deadline = time.monotonic() + timeout_s
        for change_id in self.running():
            self.wait(change_id, max(0.0, deadline - time.monotonic()))
        return self.running()

    def _salvage(self, change_id: int) -> None:
        """The executor crashed (a bug, the database): restore what it reached, if it can."""
        try:
            with self.factory() as session:
                change = self._get(session, change_id)
                intent = Intent.from_json(change.intent)
                reached = [(r.switch_id, qos_from_json(r.before)) for r in change.results
                           if r.reached and r.before and r.state != "rolled_back"]
            contexts = self._contexts(change_id)
            ok = all([self._restore(change_id, contexts[sid], before, intent, "system",
                                    "executor error") for sid, before in reached])
            self._finish(change_id, "failed" if ok else "rollback_failed",
                         "executor error (see logs); reached switches restored" if ok else
                         "executor error (see logs); some switches could not be restored",
                         "system")
        except Exception:
            log.exception("change %s: could not salvage; crash recovery will", change_id)

    def _contexts(self, change_id: int) -> dict[int, SwitchContext]:
        with self.factory() as session:
            change = self._get(session, change_id)
            targets = change.targets
            ids = [r.switch_id for r in change.results]
            switches = session.scalars(select(Switch).where(Switch.id.in_(ids))
                                       .options(selectinload(Switch.interfaces)))
            return {s.id: _context(s, targets.get("interfaces") or []) for s in switches}

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
            intent = Intent.from_json(change.intent)
            waves: dict[int, list[tuple[int, str]]] = {}
            for r in change.results:
                waves.setdefault(r.wave, []).append((r.switch_id, r.diff))
        failed_reason = ""
        for wave in sorted(waves):
            members = waves[wave]
            self._audit(actor, "change.wave", change_id, wave=wave,
                        switches=[contexts[m[0]].name for m in members])
            with ThreadPoolExecutor(max_workers=min(wave_size, len(members))) as pool:
                outcomes = list(pool.map(
                    lambda m: self._apply_switch(change_id, contexts[m[0]], intent, m[1], actor),
                    members))
            for (switch_id, _diff), (ok, reason) in zip(members, outcomes, strict=True):
                if not ok and not failed_reason:
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
            with self.factory() as session:
                done = [(r.switch_id, qos_from_json(r.before))
                        for r in self._get(session, change_id).results
                        if r.reached and r.before and r.state == "verified"]
            # every switch is attempted, whatever happens to the others
            results = [self._restore(change_id, contexts[sid], before, intent, actor,
                                     "rollback_all") for sid, before in done]
            status = "rolled_back" if all(results) else "rollback_failed"
        self._finish(change_id, status, failed_reason, actor)

    def _apply_switch(self, change_id: int, ctx: SwitchContext, intent: Intent,
                      planned_diff: str, actor: str) -> tuple[bool, str]:
        """Apply one switch; returns (ok, reason). Restores it on any failure after the first
        line may have been sent."""
        self._set_result(change_id, ctx.id, state="applying", reason="")
        try:
            driver = self.opener(ctx)
        except DriverError as exc:
            return self._failed_untouched(change_id, ctx, _error(exc), actor)
        before: QosConfig | None = None
        reason = ""
        try:
            current = driver.get_qos_config().normalised()
            desired = intent.desired(current)
            driver.load_candidate(desired)
            diff = driver.compare()
            if diff != planned_diff:
                return self._failed_untouched(
                    change_id, ctx, "the switch changed since the plan (the diff differs from "
                    "the approved one); plan the change again", actor, diff=diff)
            # The rollback point is stored before the first line is sent, and never again.
            before = current
            self._set_result(change_id, ctx.id, before=qos_to_json(before),
                             after=qos_to_json(desired), reached=True, diff=diff)
            if diff:
                driver.commit()
                self._set_result(change_id, ctx.id, state="committed")
            self._audit(actor, "switch.commit", change_id, ctx.name, diff=diff)
            readback = driver.get_qos_config()
            expected = driver.expected_readback(desired)
            problems = qos_differences(expected, readback)
            if problems:
                raise DriverError("read-back differs from the intent: " + "; ".join(problems[:3]),
                                  switch=ctx.name)
            self._set_result(change_id, ctx.id, state="verified",
                             reason="" if diff else "no change needed")
            self._store_observed(ctx.id, readback, desired=expected)
            self._audit(actor, "switch.verify", change_id, ctx.name)
            return True, ""
        except (DriverError, ValueError) as exc:
            reason = _error(exc)
        except Exception as exc:  # a database error or a bug after lines may have gone out
            log.exception("change %s: applying %s failed", change_id, ctx.name)
            reason = _error(exc)
        finally:
            _close(driver)
        metrics.CHANGES.labels("switch_failed").inc()
        if before is None:
            return self._failed_untouched(change_id, ctx, reason, actor)
        try:
            self._set_result(change_id, ctx.id, state="failed", reason=reason)
            self._audit(actor, "switch.apply", change_id, ctx.name, "failed", error=reason)
        except Exception:
            log.exception("change %s: could not record the failure of %s", change_id, ctx.name)
        self._restore(change_id, ctx, before, intent, actor, "failure", keep_state_reason=reason)
        return False, reason

    def _failed_untouched(self, change_id: int, ctx: SwitchContext, reason: str, actor: str,
                          **detail: Any) -> tuple[bool, str]:
        self._set_result(change_id, ctx.id, state="failed", reason=reason + " (nothing sent)")
        self._audit(actor, "switch.apply", change_id, ctx.name, "failed", error=reason, **detail)
        metrics.CHANGES.labels("switch_failed").inc()
        return False, reason

    def _restore(self, change_id: int, ctx: SwitchContext, before: QosConfig, intent: Intent,
                 actor: str, why: str, *, keep_state_reason: str = "",
                 after: QosConfig | None = None) -> bool:
        """Put back what the change touched as it was in ``before`` (what other changes did
        since stays), verifying the read-back; retried with backoff. With ``after`` (an
        operator's rollback), refuse when someone else changed those settings since."""
        last = ""
        for attempt in range(self.restore_attempts):
            if attempt:
                time.sleep(self.restore_backoff_s * attempt)
            driver = None
            try:
                driver = self.opener(ctx)
                current = driver.get_qos_config().normalised()
                if after is not None:
                    now = intent.touched(current)
                    ours = intent.touched(driver.expected_readback(after))
                    theirs = intent.touched(driver.expected_readback(before))
                    if now not in (ours, theirs):
                        last = ("the switch's settings changed since this change (another "
                                "change or a hand edit); not overwriting them")
                        break
                target = intent.restored(current, before)
                diff = ""
                if qos_differences(driver.expected_readback(target), current):
                    driver.load_candidate(target, restore=True)
                    diff = driver.compare()
                    driver.commit()
                    current = driver.get_qos_config()
                    problems = qos_differences(driver.expected_readback(target), current)
                    if problems:
                        raise DriverError("read-back after rollback differs: " + problems[0])
                reason = f"rolled back ({why})" + (f": {keep_state_reason}" if keep_state_reason
                                                   else "")
                self._set_result(change_id, ctx.id, state="rolled_back", reason=reason[:1000])
                self._store_observed(ctx.id, current, desired=driver.expected_readback(target))
                self._audit(actor, "switch.rollback", change_id, ctx.name, diff=diff, why=why)
                metrics.CHANGE_ROLLBACKS.inc()
                return True
            except (DriverError, ValueError) as exc:
                last = _error(exc)
                log.warning("change %s: restoring %s failed (attempt %d): %s", change_id,
                            ctx.name, attempt + 1, last)
            except Exception as exc:
                last = _error(exc)
                log.exception("change %s: restoring %s failed", change_id, ctx.name)
            finally:
                if driver is not None:
                    _close(driver)
        try:
            self._set_result(change_id, ctx.id, state="rollback_failed",
                             reason=f"rollback failed: {last}; {keep_state_reason}"[:1000])
            self._audit(actor, "switch.rollback", change_id, ctx.name, "failed", error=last)
        except Exception:
            log.exception("change %s: could not record the failed rollback of %s", change_id,
                          ctx.name)
        return False

    def _finish(self, change_id: int, status: str, reason: str, actor: str) -> None:
        for attempt in range(5):  # the database may be briefly unavailable
            try:
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
                break
            except Exception:
                log.warning("change %s: could not record the end (attempt %d)", change_id,
                            attempt + 1, exc_info=True)
                time.sleep(1.0 + attempt)
        metrics.CHANGES.labels(status).inc()

    def _store_observed(self, switch_id: int, observed: QosConfig, *, desired: QosConfig) -> None:
        """Remember what the switch reports and what Waterline wants of it, as the switch will
        show it (consistency check, /metrics waterline gauges)."""
        with self.factory() as session:
            store_qos(session, switch_id, observed=observed, desired=desired, source="change")
            session.commit()

    # --- rollback -----------------------------------------------------------------------------

    def start_rollback(self, change_id: int, actor: str, *, wait: bool = False) -> None:
        """Restore what this change set on every switch it reached, to the pre-change values
        (refusing, per switch, where someone changed those settings since)."""
        with self.factory() as session:
            change = self._get(session, change_id)
            touched = [r.switch_id for r in change.results
                       if r.reached and r.state != "rolled_back"]
        if not self._transition(change_id, ("applied", "failed", "rollback_failed"),
                                "rolling_back", owner=self.instance_id, heartbeat_ms=_ms()):
            raise self._refuse_transition(change_id, "only an applied or failed change can be "
                                                     "rolled back")
        if not touched:
            self._transition(change_id, ("rolling_back",), change.status, owner=None)
            raise ChangeError(409, f"change {change_id} left nothing to roll back")
        try:
            self._lock(change_id, touched)
        except BaseException:
            self._transition(change_id, ("rolling_back",), change.status, owner=None)
            raise
        self._audit(actor, "change.rollback", change_id, switches=len(touched))
        self._spawn(change_id, functools.partial(
            self._rollback_all, change_id, touched, actor, "operator", True), wait)

    def _rollback_all(self, change_id: int, switch_ids: Iterable[int], actor: str,
                      why: str, check_drift: bool = False) -> None:
        contexts = self._contexts(change_id)
        with self.factory() as session:
            change = self._get(session, change_id)
            intent = Intent.from_json(change.intent)
            rows = {r.switch_id: r for r in change.results}
            befores = {sid: qos_from_json(r.before) for sid, r in rows.items() if r.before}
            afters = {sid: qos_from_json(r.after) for sid, r in rows.items() if r.after}
        results = [self._restore(change_id, contexts[sid], befores[sid], intent, actor, why,
                                 after=afters.get(sid) if check_drift else None)
                   for sid in switch_ids]
        ok = all(results)
        self._finish(change_id, "rolled_back" if ok else "rollback_failed",
                     "" if ok else "some switches could not be restored", actor)

    # --- crash recovery -----------------------------------------------------------------------

    def recover(self, *, wait: bool = True) -> list[int]:
        """Resolve changes left in flight by a dead process: every switch they reached is
        brought back to its pre-change config (or found already there), never left unknown."""
        now = _ms()
        orphans: list[int] = []
        with self.factory() as session:
            candidates = [(c.id, c.status, c.owner, c.heartbeat_ms) for c in session.scalars(
                select(ChangeSet).where(ChangeSet.status.in_(IN_FLIGHT)))]
        for change_id, status, owner, heartbeat in candidates:
            if owner == self.instance_id:
                continue
            stale = now - (heartbeat or 0) > STALE_AFTER_S * 1000
            if not (stale or _owner_dead(owner)):
                continue
            with self.factory() as session:  # take it over atomically
                taken = session.execute(
                    update(ChangeSet).where(ChangeSet.id == change_id,
                                            ChangeSet.status == status,
                                            ChangeSet.heartbeat_ms == heartbeat)
                    .values(status="rolling_back", owner=self.instance_id, heartbeat_ms=now))
                session.commit()
            if getattr(taken, "rowcount", 0) != 1:
                continue
            self._audit("system", "change.recover", change_id, previous_owner=owner,
                        status=status)
            orphans.append(change_id)
        for change_id in orphans:
            with self.factory() as session:
                results = self._get(session, change_id).results
                touched = [r.switch_id for r in results
                           if r.reached and r.state not in ("rolled_back", "skipped")]
                for r in results:
                    if not r.reached and r.state in ("planned", "applying"):
                        r.state = "skipped"
                        r.reason = "the process applying the change died before this switch"
                session.commit()
            self._spawn(change_id, functools.partial(
                self._rollback_all, change_id, touched, "system", "crash recovery"), wait)
        return orphans

    def release_stale_locks(self) -> int:
        """Locks whose change is no longer in flight (a crash between steps) are released."""
        with self.factory() as session:
            result = session.execute(delete(SwitchLock).where(
                SwitchLock.change_id.in_(select(ChangeSet.id).where(
                    ChangeSet.status.not_in(IN_FLIGHT)))))
            session.commit()
            return int(getattr(result, "rowcount", 0) or 0)

    def start_sweeper(self, interval_s: float = 10.0) -> None:
        """Recover orphaned changes and stale locks periodically (not only at start-up: the
        dead owner may have been another host whose heartbeat goes stale later)."""
        def sweep() -> None:
            while not self._sweeper_stop.wait(interval_s):
                try:
                    self.recover(wait=False)
                    self.release_stale_locks()
                except Exception:
                    log.warning("change recovery sweep failed", exc_info=True)

        self._sweeper = threading.Thread(target=sweep, name="change-sweeper", daemon=True)
        self._sweeper.start()

    def stop_sweeper(self) -> None:
        self._sweeper_stop.set()

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


def _context(s: Switch, interfaces: Sequence[str]) -> SwitchContext:
    ports = [i for i in s.interfaces if not interfaces or i.name in interfaces]
    return SwitchContext(
        id=s.id, name=s.name, role=s.role, driver=s.driver, host=s.mgmt_host,
        port=s.mgmt_port, username=s.username, credentials_ref=s.credentials_ref,
        buffer_bytes=s.buffer_bytes, ports=tuple(i.name for i in ports),
        speed_gbps=max((i.speed_gbps for i in ports), default=0),
        cable_m=max((i.cable_m for i in ports), default=0.0))


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
