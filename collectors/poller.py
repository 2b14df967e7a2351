"""The poller: which switches, how often, with how much concurrency, and per-switch isolation.

Each switch has its own schedule (its interval with jitter) and its own persistent driver
session, reused across polls. Polls run in a bounded thread pool (drivers are blocking, like
netmiko). The loop thread never waits on a switch: it submits due polls, collects finished ones,
and declares a poll that outlives its timeout failed — so a slow or dead switch delays nobody
but itself. Failures become results (health state, an error row, a metric) and reconnects back
off exponentially. All database writes happen in the loop thread, batched per tick.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, select, update
from sqlalchemy.orm import Session, selectinload

from app import metrics
from app.credentials import resolve_secret
from app.db.models import Interface, PollError, Switch
from app.drivers.base import Driver, SwitchTarget, get_driver
from app.drivers.errors import DriverError, DriverTimeout
from app.drivers.models import QosConfig, QueueSample
from app.qos_state import store_qos
from collectors.ingest import Ingestor
from collectors.normalise import InterfaceInfo, Normaliser, NormaliseStats, SampleBatch

log = logging.getLogger("waterline.poller")

DriverFactory = Callable[[str, SwitchTarget], Driver]


@dataclass(frozen=True)
class PollTarget:
    switch_id: int
    name: str
    driver: str
    host: str
    port: int
    username: str
    credentials_ref: str
    interval_s: float
    interfaces: dict[str, InterfaceInfo]


@dataclass
class PollOutcome:
    switch_id: int
    name: str
    ts_ms: int
    duration_s: float
    samples: list[QueueSample] | None = None
    error: DriverError | None = None
    qos: QosConfig | None = None
    qos_error: DriverError | None = None
    qos_read_at: datetime | None = None  # when the read of ``qos`` started


@dataclass
class _SwitchState:
    target: PollTarget
    driver: Driver | None = None
    failures: int = 0
    next_due: float = 0.0
    future: Future[PollOutcome] | None = None
    started: float = 0.0
    timed_out: bool = False
    next_qos_due: float = 0.0
    reconnect: bool = False  # the target changed while a poll was running


WRITE_QUEUE_JOBS = 1000


@dataclass
class _WriteJob:
    rows: SampleBatch
    health: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    observed: list[tuple[int, QosConfig, datetime | None]]


@dataclass
class CycleReport:
    polled: int = 0
    ok: int = 0
    failed: int = 0
    samples: int = 0
    rows_written: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0


def _error_text(error: BaseException) -> str:
    return str(error).splitlines()[0][:480] if str(error) else type(error).__name__


class Poller:
    def __init__(
        self,
        engine: Engine,
        *,
        ingestor: Ingestor | None = None,
        driver_factory: DriverFactory = get_driver,
        concurrency: int = 32,
        default_interval_s: float = 10.0,
        jitter: float = 0.1,
        timeout_s: float = 10.0,
        max_backoff_s: float = 300.0,
        owned: Callable[[], set[int] | None] | None = None,
        seed: int | None = None,
        qos_refresh_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        driver_filter: Callable[[str], bool] | None = None,
    ) -> None:
        self.engine = engine
        self.ingestor = ingestor or Ingestor(engine)
        self.driver_factory = driver_factory
        self.concurrency = concurrency
        self.default_interval_s = default_interval_s
        self.jitter = jitter
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.owned = owned or (lambda: None)
        self.qos_refresh_s = qos_refresh_s
        self.driver_filter = driver_filter or (lambda _name: True)
        # Wall-clock source of sample timestamps (tests drive simulated time through it).
        self.clock = clock
        self.normaliser = Normaliser()
        self._random = random.Random(seed)
        # Extra threads beyond `concurrency` so that polls hung past their timeout (still
        # holding a thread until the driver gives up) cannot starve the healthy switches.
        self._pool_size = concurrency * 2
        self._pool = ThreadPoolExecutor(max_workers=self._pool_size, thread_name_prefix="poll")
        self._states: dict[int, _SwitchState] = {}
        # Switches dropped while a poll was running: closed once the poll returns.
        self._orphans: list[_SwitchState] = []
        self.stats = NormaliseStats()
        # Database writes happen on a writer thread, so a slow or hung database never stops
        # the polling loop (the ingestor buffers what it cannot write).
        self._writes: queue.Queue[_WriteJob] = queue.Queue(maxsize=WRITE_QUEUE_JOBS)
        self._writer: threading.Thread | None = None

    # --- inventory ----------------------------------------------------------------------------

    def load_targets(self) -> int:
        """(Re)read the enabled switches this worker owns; keep sessions of unchanged ones."""
        owned = self.owned()
        with self.engine.connect() as conn, Session(bind=conn) as session:
            query = select(Switch).where(Switch.enabled.is_(True)).options(
                selectinload(Switch.interfaces)
            )
            switches = session.scalars(query).all()
            targets = {
                s.id: self._target(s, s.interfaces)
                for s in switches
                if (owned is None or s.id in owned) and self.driver_filter(s.driver)
            }
        now = time.monotonic()
        for switch_id in list(self._states):
            if switch_id not in targets:
                self._drop(switch_id)
        for switch_id, target in targets.items():
            state = self._states.get(switch_id)
            if state is None:
                # Spread first polls over one interval so that a thousand switches do not all
                # connect in the same second.
                self._states[switch_id] = _SwitchState(
                    target, next_due=now + self._random.uniform(0, target.interval_s)
                )
            elif state.target != target:
                # A new address, credentials, driver or interface list needs a new session
                # (the driver was opened with the old ones); a running poll finishes first.
                session_changed = (
                    state.target.driver, state.target.host, state.target.port,
                    state.target.username, state.target.credentials_ref,
                    tuple(state.target.interfaces),
                ) != (target.driver, target.host, target.port, target.username,
                      target.credentials_ref, tuple(target.interfaces))
                state.target = target
                if session_changed:
                    if state.future is None:
                        self._close_driver(state)
                    else:
                        state.reconnect = True
        metrics.SWITCHES_OWNED.set(len(self._states))
        return len(self._states)

    def _target(self, switch: Switch, interfaces: list[Interface]) -> PollTarget:
        return PollTarget(
            switch_id=switch.id,
            name=switch.name,
            driver=switch.driver,
            host=switch.mgmt_host,
            port=switch.mgmt_port,
            username=switch.username,
            credentials_ref=switch.credentials_ref,
            interval_s=switch.poll_interval_s or self.default_interval_s,
            interfaces={i.name: InterfaceInfo(i.id, i.speed_gbps) for i in interfaces},
        )

    def _drop(self, switch_id: int) -> None:
        state = self._states.pop(switch_id)
        if state.future is None:
            self._close_driver(state)
        else:
            self._orphans.append(state)
        self.normaliser.forget_switch(switch_id)

    def _reap_orphans(self) -> None:
        for state in [s for s in self._orphans if s.future is None or s.future.done()]:
            self._orphans.remove(state)
            self._close_driver(state)

    # --- polling ------------------------------------------------------------------------------

    def _poll(self, state: _SwitchState) -> PollOutcome:
        target = state.target
        started = time.monotonic()
        ts_ms = int(self.clock() * 1000)
        try:
            if state.driver is None:
                secret = resolve_secret(target.credentials_ref, switch=target.name)
                driver = self.driver_factory(
                    target.driver,
                    SwitchTarget(
                        name=target.name, host=target.host, port=target.port,
                        username=target.username, password=secret, secret=secret,
                        interfaces=tuple(target.interfaces), timeout_s=self.timeout_s,
                    ),
                )
                driver.open()
                state.driver = driver
            ts_ms = int(self.clock() * 1000)
            samples = state.driver.get_telemetry()
            outcome = PollOutcome(target.switch_id, target.name, ts_ms,
                                  time.monotonic() - started, samples=samples)
            if time.monotonic() >= state.next_qos_due:
                # The switch's RoCE config, less often: for the consistency check and the tuner.
                try:
                    outcome.qos_read_at = datetime.now(UTC)
                    outcome.qos = state.driver.get_qos_config()
                    state.next_qos_due = time.monotonic() + self.qos_refresh_s
                except DriverError as exc:
                    outcome.qos_error = exc
                except Exception as exc:  # a driver bug in one getter must not lose telemetry
                    outcome.qos_error = DriverError(f"unexpected {type(exc).__name__}: {exc}",
                                                    switch=target.name)
                if outcome.qos_error is not None:
                    state.next_qos_due = time.monotonic() + min(60.0, self.qos_refresh_s)
            return outcome
        except DriverError as exc:
            exc.switch = exc.switch or target.name
            return PollOutcome(target.switch_id, target.name, ts_ms,
                               time.monotonic() - started, error=exc)
        except Exception as exc:  # a driver bug must not kill the poller
            error = DriverError(f"unexpected {type(exc).__name__}: {exc}", switch=target.name)
            return PollOutcome(target.switch_id, target.name, ts_ms,
                               time.monotonic() - started, error=error)

    def _submit(self, state: _SwitchState, now: float) -> None:
        state.started = now
        state.timed_out = False
        state.future = self._pool.submit(self._poll, state)

    def _schedule(self, state: _SwitchState, now: float) -> None:
        interval = state.target.interval_s
        if state.failures:
            interval = min(interval * 2 ** (state.failures - 1), self.max_backoff_s)
        state.next_due = now + interval * (1 + self._random.uniform(-self.jitter, self.jitter))

    def _collect(self, now: float) -> list[PollOutcome]:
        outcomes: list[PollOutcome] = []
        for state in self._states.values():
            future = state.future
            if future is None:
                continue
            if future.done():
                state.future = None
                outcome = future.result()
                if state.timed_out:
                    # Already reported as a timeout; the session is suspect, start afresh.
                    self._close_driver(state)
                    continue
                outcomes.append(outcome)
                self._after(state, outcome, now)
                if state.reconnect:
                    state.reconnect = False
                    self._close_driver(state)
            elif not state.timed_out and now - state.started > self.timeout_s:
                state.timed_out = True
                self._abort(state)
                error = DriverTimeout(
                    f"no answer within {self.timeout_s:g} s", switch=state.target.name
                )
                outcome = PollOutcome(state.target.switch_id, state.target.name,
                                      int(self.clock() * 1000), now - state.started, error=error)
                outcomes.append(outcome)
                state.failures += 1
                self._schedule(state, now)
        return outcomes

    def _after(self, state: _SwitchState, outcome: PollOutcome, now: float) -> None:
        metrics.POLL_DURATION.labels(state.target.driver).observe(outcome.duration_s)
        if outcome.error is None:
            state.failures = 0
        else:
            state.failures += 1
            self._close_driver(state)
        self._schedule(state, now)

    def _abort(self, state: _SwitchState) -> None:
        """Close a hung poll's session from outside, so that its thread returns (closing may
        block too, hence a thread of its own)."""
        driver = state.driver
        if driver is None:
            return

        def close() -> None:
            try:
                driver.close()
            except Exception:
                log.debug("aborting %s failed", state.target.name, exc_info=True)

        threading.Thread(target=close, name=f"abort-{state.target.name}", daemon=True).start()

    def _close_driver(self, state: _SwitchState) -> None:
        driver, state.driver = state.driver, None
        if driver is not None:
            try:
                driver.close()
            except Exception:  # closing a broken session may fail too; it is gone either way
                log.debug("closing %s failed", state.target.name, exc_info=True)

    def _submit_due(self, now: float, *, everyone: bool = False) -> bool:
        """Start due polls while fewer than ``concurrency`` healthy polls are in flight.
        Returns whether some due switch is still waiting for a slot."""
        active = sum(1 for s in self._states.values() if s.future is not None and not s.timed_out)
        # Threads still held by polls that timed out (their sessions are being aborted).
        busy = active + sum(1 for s in self._states.values()
                            if s.future is not None and s.timed_out and not s.future.done())
        busy += sum(1 for s in self._orphans if s.future is not None and not s.future.done())
        for state in sorted(self._states.values(), key=lambda s: s.next_due):
            if state.future is not None or (not everyone and state.next_due > now):
                continue
            if active >= self.concurrency or busy >= self._pool_size:
                return True
            self._submit(state, now)
            active += 1
            busy += 1
        return False

    def tick(self, report: CycleReport | None = None) -> list[PollOutcome]:
        """Submit due polls, gather finished ones, and record their results."""
        now = time.monotonic()
        outcomes = self._collect(now)
        self._reap_orphans()
        self._submit_due(now)
        if outcomes:
            self._record(outcomes, report, sync=False)
        return outcomes

    def _record(self, outcomes: list[PollOutcome], report: CycleReport | None, *,
                sync: bool = True) -> None:
        rows = SampleBatch.empty()
        health: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        observed: list[tuple[int, QosConfig, datetime | None]] = []
        for outcome in outcomes:
            state = self._states.get(outcome.switch_id)
            polled_at = datetime.fromtimestamp(outcome.ts_ms / 1000, UTC)
            if report is not None:
                report.polled += 1
            if outcome.error is None and outcome.samples is not None:
                if state is not None:
                    rows.extend(self.normaliser.process(
                        outcome.switch_id, outcome.ts_ms, outcome.samples,
                        state.target.interfaces, state.target.interval_s, self.stats,
                    ))
                health.append({"b_id": outcome.switch_id, "b_health": "up", "b_reason": "",
                               "b_poll": polled_at, "b_ok": polled_at})
                if outcome.qos is not None:
                    observed.append((outcome.switch_id, outcome.qos, outcome.qos_read_at))
                if outcome.qos_error is not None:
                    metrics.POLL_ERRORS.labels("qos_" + outcome.qos_error.reason).inc()
                    errors.append({"switch_id": outcome.switch_id, "ts_ms": outcome.ts_ms,
                                   "reason": "qos_" + outcome.qos_error.reason,
                                   "message": _error_text(outcome.qos_error)})
                if report is not None:
                    report.ok += 1
                    report.samples += len(outcome.samples)
                continue
            error = outcome.error or DriverError("no samples")
            reason = error.reason
            metrics.POLL_ERRORS.labels(reason).inc()
            message = _error_text(error)
            log.warning("poll of %s failed (%s): %s", outcome.name, reason, message)
            health.append({"b_id": outcome.switch_id, "b_health": "down",
                           "b_reason": f"{reason}: {message}"[:500], "b_poll": polled_at,
                           "b_ok": None})
            errors.append({"switch_id": outcome.switch_id, "ts_ms": outcome.ts_ms,
                           "reason": reason, "message": message})
            if report is not None:
                report.failed += 1
                report.errors[reason] = report.errors.get(reason, 0) + 1
        job = _WriteJob(rows, health, errors, observed)
        if sync:
            self._write(job, report)
            return
        self._start_writer()
        try:
            self._writes.put_nowait(job)
        except queue.Full:  # the database has been stuck for a while: the oldest job goes
            try:
                dropped = self._writes.get_nowait()
                self._writes.task_done()
                metrics.INGEST_BUFFER_OVERFLOW.inc(len(dropped.rows))
                log.warning("database writes are stuck: dropped %d samples", len(dropped.rows))
            except queue.Empty:
                pass
            self._writes.put_nowait(job)

    def _write(self, job: _WriteJob, report: CycleReport | None) -> None:
        result = self.ingestor.write(job.rows)
        if report is not None:
            report.rows_written += result.written
        self._write_health(job.health, job.errors, job.observed)

    def _start_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            return

        def drain() -> None:
            while True:
                job = self._writes.get()
                try:
                    self._write(job, None)
                except Exception:
                    log.exception("writing poll results failed")
                finally:
                    self._writes.task_done()

        self._writer = threading.Thread(target=drain, name="poll-writer", daemon=True)
        self._writer.start()

    def _write_health(self, health: list[dict[str, Any]], errors: list[dict[str, Any]],
                      observed: list[tuple[int, QosConfig, datetime | None]]) -> None:
        ok = [h for h in health if h["b_ok"] is not None]
        failed = [h for h in health if h["b_ok"] is None]
        table = cast(Table, Switch.__table__)
        try:
            with self.engine.begin() as conn:
                if ok:
                    conn.execute(
                        update(table).where(table.c.id == bindparam("b_id")).values(
                            health=bindparam("b_health"), health_reason=bindparam("b_reason"),
                            last_poll_at=bindparam("b_poll"), last_ok_at=bindparam("b_ok")),
                        ok,
                    )
                if failed:
                    conn.execute(
                        update(table).where(table.c.id == bindparam("b_id")).values(
                            health=bindparam("b_health"), health_reason=bindparam("b_reason"),
                            last_poll_at=bindparam("b_poll")),
                        [{k: v for k, v in h.items() if k != "b_ok"} for h in failed],
                    )
                if errors:
                    conn.execute(cast(Table, PollError.__table__).insert(), errors)
                if observed:
                    with Session(bind=conn) as session:
                        for switch_id, qos, read_at in observed:
                            store_qos(session, switch_id, observed=qos, source="poll",
                                      read_at=read_at)
                        session.flush()
        except Exception as exc:  # the database being down must not stop polling
            log.warning("could not record switch health: %s", _error_text(exc))

    # --- drivers of the loop ------------------------------------------------------------------

    def poll_cycle(self, timeout_s: float | None = None) -> CycleReport:
        """Poll every owned switch once, now, and wait for all of them (or their timeouts)."""
        started = time.monotonic()
        report = CycleReport()
        for state in self._states.values():
            state.next_due = min(state.next_due, started)
        waiting = self._submit_due(started, everyone=True)
        deadline = started + (timeout_s if timeout_s is not None else 4 * self.timeout_s + 5)
        while waiting or any(
            s.future is not None and not s.timed_out for s in self._states.values()
        ):
            self._record_outcomes(report)
            waiting = self._submit_due(time.monotonic()) if waiting else False
            if time.monotonic() > deadline:
                break
            time.sleep(0.002)
        self._record_outcomes(report)
        report.wall_s = time.monotonic() - started
        metrics.POLL_CYCLES.inc()
        metrics.LAST_CYCLE.set(time.time())
        return report

    def _record_outcomes(self, report: CycleReport) -> None:
        outcomes = self._collect(time.monotonic())
        self._reap_orphans()
        if outcomes:
            self._record(outcomes, report, sync=True)

    def run(self, stop: threading.Event, *, tick_s: float = 0.2, reload_s: float = 30.0) -> None:
        """Poll until ``stop`` is set. Inventory changes are picked up every ``reload_s``."""
        last_reload = 0.0
        last_cycle_mark = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now - last_reload >= reload_s:
                try:
                    self.load_targets()
                except Exception as exc:
                    log.warning("could not load switches: %s", _error_text(exc))
                last_reload = now
            try:
                self.tick()
                if self.ingestor.depth and self._writes.empty():
                    # samples wait for the database: retry them on the writer thread
                    self._start_writer()
                    self._writes.put_nowait(_WriteJob(SampleBatch.empty(), [], [], []))
            except Exception:
                log.exception("poller tick failed")
            if now - last_cycle_mark >= self.default_interval_s:
                metrics.POLL_CYCLES.inc()
                metrics.LAST_CYCLE.set(time.time())
                last_cycle_mark = now
            stop.wait(tick_s)

    def close(self) -> None:
        for state in self._states.values():
            if state.future is None:
                self._close_driver(state)
        self._pool.shutdown(wait=False, cancel_futures=True)
