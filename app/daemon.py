"""The auto-tuning daemon: classify every port, propose waterlines, and (in `auto`) apply them
through the change workflow, watch the KPIs for a verification window, and keep the change or
roll it back on regression.

Modes: `off` (nothing), `observe` (classify only), `propose` (store proposals for operators),
`auto` (apply them, canary first). Freeze windows stop proposing and applying (verification and
rollback still run: they only ever make things safer). Everything the daemon decides lives in
the database (mode, profiles, proposals, trials), so a restart resumes where it was; database or
driver errors are logged and counted, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import (
    Table,
    case,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app import metrics
from app.changes.schemas import ChangeCreate, TargetsIn, WaterlinesIn
from app.changes.service import ChangeError, ChangeService
from app.db.models import (
    ChangeSet,
    Fabric,
    Interface,
    ModelVersion,
    PortProfile,
    ProfileTrack,
    Proposal,
    QosWaterline,
    Switch,
    SwitchLock,
    TunerState,
    TunerTrial,
)
from app.db.session import bulk_upsert
from app.drivers.models import QosConfig, Waterlines
from app.telemetry import interface_table, load_window_rows, load_windows
from tuning import mixed
from tuning.features import (
    PROFILES,
    PortWindow,
    WindowBatch,
    features_matrix,
    port_features,
    waterline_matrix,
    window_kpis_batch,
)
from tuning.guard import Waterline, check_waterlines
from tuning.optimiser import Proposal as OptimiserProposal
from tuning.optimiser import ProposalRequest
from tuning.space import PortContext, clip_coords, deeper_than_references, to_coords
from tuning.tracker import TrafficTracker
from tuning.verify import Tolerance, kpis_of, verdict

log = logging.getLogger("waterline.daemon")

MODES = ("off", "observe", "propose", "auto")
Mode = Literal["off", "observe", "propose", "auto"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class FreezeWindow(BaseModel):
    """No tuning changes inside: a daily UTC time range (optionally on some weekdays; ``end``
    may be 24:00, the end of the day), or an absolute range."""

    model_config = ConfigDict(extra="forbid")

    start: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str | None = Field(None, pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=list, max_length=7)
    start_at: datetime | None = None
    end_at: datetime | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> FreezeWindow:
        daily = self.start is not None and self.end is not None
        absolute = self.start_at is not None and self.end_at is not None
        given = [n for n in ("start", "end", "start_at", "end_at") if getattr(self, n) is not None]
        if daily == absolute or len(given) != 2:
            raise ValueError("give start and end (HH:MM, daily UTC) or start_at and end_at, "
                             f"not {' + '.join(given) or 'neither'}")
        if daily and self.start == self.end:
            raise ValueError("start and end are the same time: an empty window (a whole day "
                             "is 00:00 to 24:00)")
        if len(set(self.days)) != len(self.days):
            raise ValueError("days: each day once")
        if absolute and self.start_at and self.end_at:
            if self.start_at.tzinfo is None or self.end_at.tzinfo is None:
                raise ValueError("start_at and end_at need a timezone")
            if self.start_at >= self.end_at:
                raise ValueError("start_at must be before end_at")
        return self

    def contains(self, moment: datetime) -> bool:
        if self.start_at is not None and self.end_at is not None:
            return self.start_at <= moment < self.end_at
        assert self.start is not None and self.end is not None
        if self.days and WEEKDAYS[moment.weekday()] not in self.days:
            return False
        now = moment.strftime("%H:%M")
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end  # across midnight


def frozen(windows: Sequence[dict[str, Any]], moment: datetime) -> bool:
    """Whether ``moment`` falls in a freeze window. A stored window that no longer validates
    (edited by hand, or by an older version) freezes the tuner, logged: the safe reading of
    a window nobody can read."""
    for w in windows:
        try:
            window = FreezeWindow.model_validate(w)
        except ValueError as exc:
            log.warning("invalid freeze window %r treated as frozen: %s", w,
                        str(exc).splitlines()[0])
            return True
        if window.contains(moment):
            return True
    return False


def invalid_windows(windows: Sequence[dict[str, Any]]) -> list[str]:
    """Why each stored window that does not validate fails (empty: all are valid)."""
    out = []
    for i, w in enumerate(windows):
        try:
            FreezeWindow.model_validate(w)
        except ValueError as exc:
            out.append(f"freeze_windows[{i}] invalid, the tuner stays frozen: "
                       f"{str(exc).splitlines()[-1].strip()[:200]}")
    return out


CLAIM_TIMEOUT_S = 600.0  # an approval's claim without a started change is dead after this

# This process, as the tuner lease knows it: the host and pid to read, a random part so two
# containers that are both pid 1 on one host name are not taken for one process
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class DaemonOptions:
    interval_s: float = 60.0
    window_s: float = 120.0
    verify_s: float = 120.0
    settle_s: float = 15.0
    min_polls: int = 3
    max_changes_per_cycle: int = 20
    # after a rollback, that switch and priority gets no new proposal for this long: the
    # tuner does not flap a port between its old setting and the next guess
    holdoff_s: float = 600.0
    wave_size: int = 10
    initial_mode: Mode = "propose"
    tolerance: Tolerance = field(default_factory=Tolerance)
    # a daemon in its own process leaves mock switches alone: their virtual fabric lives in
    # the `waterline serve` process that polls them (as `waterline collector` does)
    real_switches_only: bool = False


@dataclass
class CycleReport:
    mode: str
    frozen: bool = False
    ports: int = 0
    classified: int = 0
    proposals: int = 0
    applied: int = 0
    kept: int = 0
    rolled_back: int = 0
    held_for_others: int = 0  # moves held: they would slow a switch's other ports
    errors: list[str] = field(default_factory=list)


def waterline_of(w: Waterlines) -> Waterline:
    return Waterline(**w.model_dump())


def device_precision(w: Waterline) -> Waterline:
    """What a switch can hold: the marking probability in whole percent (both NOSes take an
    integer percentage), at least 1 %."""
    from dataclasses import replace

    return replace(w, pmax=max(0.01, round(w.pmax * 100) / 100))


def _dump(w: Waterline) -> dict[str, Any]:
    return {k: getattr(w, k) for k in ("kmin_bytes", "kmax_bytes", "pmax", "xoff_bytes",
                                       "xon_bytes", "headroom_bytes", "alpha")}


_NO_READING = np.zeros(len(PROFILES))  # shared, never written to: replaced when read
_NO_READING.flags.writeable = False


@dataclass
class _CycleArrays:
    """What one cycle read and classified of all its ports, one row per port."""

    features: np.ndarray  # (ports x FEATURE_NAMES)
    kpis: dict[str, np.ndarray]  # the window's telemetry KPIs (``window_kpis_batch``)
    proba: np.ndarray | None = None  # the classifier's probabilities (ports x PROFILES)


@dataclass(slots=True)
class _Port:
    switch_id: int
    interface_id: int
    interface: str
    priority: int
    speed_gbps: int
    cable_m: float
    arrays: _CycleArrays
    row: int  # its row of ``arrays``
    profile: str = "idle"
    probability: float = 0.0
    # its classifier probabilities smoothed over cycles (``TrafficTracker.smooth_ports``)
    reading: np.ndarray = field(default_factory=lambda: _NO_READING)

    @property
    def features(self) -> np.ndarray:
        row: np.ndarray = self.arrays.features[self.row]
        return row

    @property
    def proba(self) -> np.ndarray:
        if self.arrays.proba is None:
            return _NO_READING
        row: np.ndarray = self.arrays.proba[self.row]
        return row

    @property
    def kpis(self) -> dict[str, float]:
        return {k: float(v[self.row]) for k, v in self.arrays.kpis.items()}


def _rows(ports: Sequence[_Port]) -> np.ndarray:
    """The ports' rows of their (one cycle's) arrays."""
    return np.fromiter((p.row for p in ports), dtype=np.int64, count=len(ports))


def _proba(ports: Sequence[_Port]) -> np.ndarray:
    """The ports' classifier probabilities (ports x PROFILES), from their cycle's arrays."""
    proba = ports[0].arrays.proba
    if proba is None:
        return np.vstack([_NO_READING] * len(ports))
    out: np.ndarray = proba[_rows(ports)]
    return out


@dataclass
class _Group:
    """One (switch, priority) as the last cycle saw it."""

    posterior: np.ndarray
    ports: list[_Port]
    features: np.ndarray
    descriptors: dict[str, np.ndarray]
    probe: dict[str, Any] | None = None  # the tracker's last identification probe
    avoid: tuple[tuple[float, ...], ...] = ()  # sets rolled back here (the tracker's)
    # busy ports that read as other traffic than ``ports`` (``tuning.mixed``): the switch's
    # waterlines are theirs too, so a change must not be predicted to slow them down
    others: list[_Port] = field(default_factory=list)
    # the switch priority's tracker as stored at the end of the classification
    tracker: TrafficTracker = field(default_factory=TrafficTracker)

    @property
    def busy(self) -> list[_Port]:
        """Every port a change of this switch and priority lands on."""
        return self.ports + self.others


@dataclass
class _Job:
    """One (switch, priority) the optimiser is asked about this cycle."""

    switch: Switch
    priority: int
    group: _Group
    profile: str
    current: Waterline
    speed_gbps: int
    cable_m: float
    others: list[tuple[np.ndarray, np.ndarray, list[int]]]
    request: ProposalRequest
    # the switch's most demanding port, busy or not (the fastest, the longest cable): one set
    # applies to all of them, and the change service guards it against that port
    worst_speed_gbps: int
    worst_cable_m: float


def _mean_kpis(ports: Sequence[_Port]) -> dict[str, float]:
    """The mean of each of the ports' window KPIs (their ``kpis``), read from the cycle's
    arrays at once (ports of one cycle share them)."""
    if not ports:
        return {}
    rows = _rows(ports)
    return {k: float(np.mean(v[rows])) for k, v in ports[0].arrays.kpis.items()}


def _for_every_port(w: Waterline, job: _Job) -> Waterline:
    """``w`` with its PFC headroom raised, when it falls short, to the formula of the switch's
    most demanding port (``_Job.worst_speed_gbps``): the optimiser plans for the ports that
    carry the traffic (their speed sets the ECN thresholds), but the switch applies one set
    to every port of the priority -- an idle 400G uplink on 40 m of cable needs more headroom
    than the 100G access ports the set was planned for, and the change service refuses a set
    any port's formula refuses."""
    if w.headroom_bytes is None:
        return w
    ctx = PortContext(job.worst_speed_gbps, job.switch.buffer_bytes, job.worst_cable_m)
    if not ctx.supported():
        return w
    if not check_waterlines(w, speed_gbps=ctx.speed_gbps, buffer_bytes=ctx.buffer_bytes,
                            cable_m=ctx.cable_m):
        return w
    need = ctx.headroom()
    head = max(int(w.headroom_bytes), need.size_bytes)
    return replace(w, headroom_bytes=head, xon_bytes=need.xon_bytes,
                   xoff_bytes=head - need.xon_bytes)


def _upsert_profiles(session: Session, ports: list[_Port], now_ms: int) -> None:
    """The ports' verdicts into ``port_profiles``, one statement for the fleet
    (``bulk_upsert``); a port's ``since_ms`` moves only when its profile does."""
    bulk_upsert(
        session, cast(Table, PortProfile.__table__),
        ("switch_id", "interface_id", "priority", "profile", "probability", "since_ms",
         "updated_ms"),
        [(p.switch_id, p.interface_id, p.priority, p.profile, p.probability, now_ms, now_ms)
         for p in ports],
        lambda table, new: {
            "profile": new.profile, "probability": new.probability,
            "updated_ms": new.updated_ms,
            "since_ms": case((table.c.profile == new.profile, table.c.since_ms),
                             else_=new.since_ms)})


class TunerDaemon:
    def __init__(
        self,
        factory: sessionmaker[Session],
        changes: ChangeService,
        *,
        models_loader: Callable[[], Any] | None = None,
        options: DaemonOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.factory = factory
        self.changes = changes
        self.options = options or DaemonOptions()
        self.clock = clock
        self._models_loader = models_loader
        self._models: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tracks: dict[tuple[int, int], _Group] = {}
        # switches whose tuner change this cycle started rolling back: no proposal for them
        # until the next cycle, whether or not the rollback has released its lock yet
        self._rolled_back_now: set[int] = set()
        self._mode_checked = False  # the stored mode against the start-up one, logged once
        # the lease's owner: one process runs the cycles over a database; its daemons (the
        # embedded one, the API's handle) are one owner
        self.owner = PROCESS_ID

    # --- models ---------------------------------------------------------------------------

    @property
    def models(self) -> Any:
        if self._models is None:
            if self._models_loader is None:
                from tuning.models import default_models

                self._models_loader = default_models
            self._models = self._models_loader()
            self._record_versions()
            self._replay_outcomes()
        return self._models

    def _record_versions(self) -> None:
        versions: dict[str, dict[str, Any]] = getattr(self._models, "versions", {}) or {}
        with self.factory() as session:
            for kind, meta in versions.items():
                version = str(meta.get("version") or str(meta.get("sha256", ""))[:16]
                              or "unknown")
                row = session.scalars(select(ModelVersion).where(
                    ModelVersion.kind == kind, ModelVersion.version == version)).first()
                if row is None:
                    row = ModelVersion(kind=kind, version=version, meta=_jsonable(meta))
                    session.add(row)
                for other in session.scalars(select(ModelVersion).where(
                        ModelVersion.kind == kind)):
                    other.active = other is row
                row.active = True
            session.commit()

    def _replay_outcomes(self) -> None:
        """Feed the optimiser what earlier runs measured (restart-safe online learning)."""
        with self.factory() as session:
            trials = session.scalars(select(TunerTrial).where(TunerTrial.status == "kept")
                                     .order_by(TunerTrial.id)).all()
            for trial in trials:
                outcome = (trial.kpis_after or {}).get("outcome")
                if not outcome:
                    continue
                try:
                    _observe(self._models.optimiser, trial.profile, outcome)
                except Exception as exc:
                    log.warning("could not replay trial %s: %s", trial.id, exc)

    # --- state ----------------------------------------------------------------------------

    def state(self, session: Session) -> TunerState:
        row = session.get(TunerState, 1)
        if row is not None and not self._mode_checked:
            self._mode_checked = True
            if row.mode != self.options.initial_mode:
                log.info("tuner mode %s from the database (set by %s); the start-up mode %s "
                         "(WATERLINE_TUNER_MODE) applies to a new database only: change it "
                         "with PUT /api/v1/tuner", row.mode, row.updated_by or "?",
                         self.options.initial_mode)
        if row is None:
            row = TunerState(id=1, mode=self.options.initial_mode, freeze_windows=[], cycles=0,
                             updated_by="default")
            session.add(row)
            session.flush()
        return row

    def set_mode(self, mode: Mode, actor: str, freeze_windows: list[dict[str, Any]] | None = None
                 ) -> None:
        from app.audit import record

        with self.factory() as session:
            row = self.state(session)
            row.mode = mode
            if freeze_windows is not None:
                row.freeze_windows = freeze_windows
            row.updated_by = actor
            row.updated_at = datetime.now(UTC)
            record(session, actor, "tuner.set", detail={"mode": mode,
                                                        "freeze_windows": row.freeze_windows})
            session.commit()
        self._export_mode(mode)

    @staticmethod
    def _export_mode(mode: str) -> None:
        for m in MODES:
            metrics.TUNER_MODE.labels(m).set(1 if m == mode else 0)

    # --- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tuner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():  # a cycle still running: its lease runs out instead
                log.warning("tuner cycle still running at stop; the lease is left to expire")
                return
        self.release_lease()

    def lease_s(self) -> float:
        """How long this daemon's lease holds unless renewed: three of its intervals, at
        least a minute (a process killed without a goodbye is replaced after that long)."""
        return max(3 * self.options.interval_s, 60.0)

    def _claim_lease(self, session: Session, now_ms: int) -> str | None:
        """Take or renew the lease on the cycles (until now + ``lease_s``, the holder's own
        term, stored); the other holder while its lease holds."""
        got = session.execute(update(TunerState).where(
            TunerState.id == 1,
            or_(TunerState.owner.is_(None), TunerState.owner == self.owner,
                TunerState.lease_until_ms.is_(None), TunerState.lease_until_ms < now_ms))
            .values(owner=self.owner, lease_until_ms=now_ms + int(self.lease_s() * 1000)))
        if getattr(got, "rowcount", 0) == 1:
            return None
        return session.scalar(select(TunerState.owner).where(TunerState.id == 1)) or "?"

    def _holds_lease(self, now_ms: int) -> bool:
        """Renew the lease before changes start (a cycle can be long); False if it was lost."""
        try:
            with self.factory() as session:
                held = self._claim_lease(session, now_ms) is None
                session.commit()
                return held
        except Exception as exc:
            log.warning("could not renew the tuner lease: %s", exc)
            return False

    def release_lease(self) -> None:
        """Hand the cycles over at once (a clean stop), not after the lease runs out."""
        try:
            with self.factory() as session:
                session.execute(update(TunerState).where(
                    TunerState.id == 1, TunerState.owner == self.owner)
                    .values(owner=None, lease_until_ms=None))
                session.commit()
        except Exception as exc:
            log.warning("could not release the tuner lease: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.options.interval_s):
            try:
                self.cycle()
            except Exception:  # cycle() catches its own; this loop must outlive any bug
                log.exception("tuner cycle raised")
                metrics.TUNER_CYCLES.labels("error").inc()

    def cycle(self) -> CycleReport:
        """One pass; never raises."""
        now_ms = int(self.clock() * 1000)
        try:
            with self.factory() as session:
                state = self.state(session)
                mode, windows = state.mode, list(state.freeze_windows or [])
                holder = self._claim_lease(session, now_ms)
                session.commit()
        except Exception as exc:
            metrics.TUNER_CYCLES.labels("error").inc()
            log.warning("tuner cycle: database unavailable: %s", exc)
            return CycleReport(mode="unknown", errors=[str(exc)])
        if holder is not None:  # another process's daemon runs the cycles: stand by
            metrics.TUNER_CYCLES.labels("standby").inc()
            log.info("tuner daemon %s holds the lease; standing by", holder)
            return CycleReport(mode=mode, errors=[
                f"standby: the tuner daemon {holder} runs the cycles (lease "
                f"{self.lease_s():g} s)"])
        self._export_mode(mode)
        report = CycleReport(mode=mode)
        if mode == "off":  # nothing new; a change already under verification is still judged
            try:
                self._judge_trials(now_ms, report)
            except Exception as exc:
                log.exception("tuner: judging the trials failed")
                report.errors.append(f"{type(exc).__name__}: {exc}")
            metrics.TUNER_CYCLES.labels("off").inc()
            return report
        report.frozen = frozen(windows, datetime.fromtimestamp(now_ms / 1000, UTC))
        report.errors.extend(invalid_windows(windows))
        self._rolled_back_now.clear()
        try:
            self._release_stale_claims(datetime.now(UTC))
            # the waterlines in force during the window, read before this cycle's rollbacks
            # start rewriting them: the window's features are relative to these
            in_force = self._observed_waterlines()
            self._judge_trials(now_ms, report)
            self._classify(now_ms, report, in_force)
            proposal_ids: list[int] = []
            try:
                if mode in ("propose", "auto") and not report.frozen:
                    proposal_ids = self._propose(now_ms, report)
            finally:  # the evidence gathered is kept even when proposing failed
                self._store_tracks(now_ms)
            if mode == "auto" and proposal_ids:
                if self._holds_lease(int(self.clock() * 1000)):
                    self._apply(proposal_ids, now_ms, report)
                else:
                    report.errors.append("the tuner lease was lost during the cycle: "
                                         "nothing applied")
            outcome = "ok"
        except Exception as exc:  # a bad cycle is counted and logged; the next one retries
            log.exception("tuner cycle failed")
            report.errors.append(f"{type(exc).__name__}: {exc}")
            outcome = "error"
        try:
            with self.factory() as session:
                state = self.state(session)
                state.cycles += 1
                state.last_cycle_ms = now_ms
                state.last_error = report.errors[0][:500] if report.errors else ""
                session.commit()
        except Exception as exc:
            log.warning("could not record the tuner cycle: %s", exc)
        metrics.TUNER_CYCLES.labels(outcome).inc()
        return report

    # --- classify -------------------------------------------------------------------------

    @staticmethod
    def _current_waterlines(switch: Switch) -> dict[int, Waterline]:
        return _waterlines_of(switch.observed_qos)

    def _observed_waterlines(self) -> dict[int, dict[int, Waterline]]:
        """Every enabled switch's waterlines as last observed, per priority."""
        with self.factory() as session:
            return {sid: _waterlines_of(qos) for sid, qos in session.execute(
                select(Switch.id, Switch.observed_qos).where(Switch.enabled.is_(True)))}

    def _load_ports(self, session: Session, now_ms: int,
                    in_force: dict[int, dict[int, Waterline]]) -> list[_Port]:
        """Every lossless port with enough polls in the last window, with its features (under
        the waterlines ``in_force``) and KPIs (one query, one vectorised pass for the whole
        fabric)."""
        fabric = session.scalars(select(Fabric)).first()
        priorities = list(fabric.lossless_priorities) if fabric else [3]
        wanted = select(Switch).where(Switch.enabled.is_(True))
        if self.options.real_switches_only:
            wanted = wanted.where(Switch.driver != "mock")
        switches = {s.id: s for s in session.scalars(wanted)}
        interfaces = interface_table(session)
        got = load_window_rows(session, start_ms=now_ms - int(self.options.window_s * 1000),
                               end_ms=now_ms + 1, priorities=priorities,
                               switch_ids=list(switches), interfaces=interfaces)
        waterlines = {(sid, prio): waterline_matrix([w])[0] for sid in switches
                      for prio, w in in_force.get(sid, {}).items()}
        polls = np.sum(np.isfinite(got.fields["tx_bytes_per_s"]), axis=1)
        rows, found = [], []
        for k, (sid, iid, prio) in enumerate(got.keys):
            if (sid, prio) not in waterlines or polls[k] < self.options.min_polls:
                continue
            rows.append(k)
            found.append((sid, iid, prio))
        if not rows:
            return []
        links = [interfaces[iid] for _sid, iid, _prio in found]
        batch = WindowBatch(np.array([float(link[2]) for link in links]),
                            np.array([float(switches[f[0]].buffer_bytes) for f in found]),
                            np.array([link[3] for link in links]),
                            {name: v[rows] for name, v in got.fields.items()})
        arrays = _CycleArrays(
            features_matrix(batch, np.stack([waterlines[(f[0], f[2])] for f in found])),
            window_kpis_batch(batch))
        return [_Port(sid, iid, link[1], prio, link[2], link[3], arrays, j)
                for j, ((sid, iid, prio), link) in enumerate(zip(found, links, strict=True))]

    def _classify(self, now_ms: int, report: CycleReport,
                  in_force: dict[int, dict[int, Waterline]]) -> list[_Port]:
        self._tracks = {}
        with self.factory() as session:
            ports = self._load_ports(session, now_ms, in_force)
            report.ports = len(ports)
            if not ports:
                return []
            arrays = ports[0].arrays  # every port's row, in order
            arrays.proba = proba = self.models.classifier.predict_proba(arrays.features)
            best = np.argmax(proba, axis=1)
            chance = proba[np.arange(len(best)), best].tolist()
            for port, k, p in zip(ports, best.tolist(), chance, strict=True):
                port.profile, port.probability = PROFILES[k], p
            self._record_profiles(session, ports, now_ms)
            self._tracks = self._track(session, ports)
            session.commit()
        report.classified = len(ports)
        return ports

    @staticmethod
    def _record_profiles(session: Session, ports: list[_Port], now_ms: int) -> None:
        """Each port's verdict (``port_profiles``: one upsert for all ports, a fabric has
        128,000; ``since_ms`` moves only with the profile) and its gauges."""
        _upsert_profiles(session, ports, now_ms)
        names = dict(session.execute(select(Switch.id, Switch.name)).tuples().all())
        metrics.export_port_profiles(
            (names.get(p.switch_id, "?"), p.interface, str(p.priority), p.profile,
             p.probability) for p in ports)

    # --- propose --------------------------------------------------------------------------

    def _track(self, session: Session, ports: list[_Port]) -> dict[tuple[int, int], _Group]:
        """Per (switch, priority): the profile posterior and traffic descriptors tracked over
        cycles (stored, so a restart resumes with the evidence it had) from the ports that
        carry traffic (all of them when none does) and read like the switch's dominant
        profile; ports that read as other traffic are kept aside (``tuning.mixed.split``)."""
        by_key: dict[tuple[int, int], list[_Port]] = defaultdict(list)
        for p in ports:
            by_key[(p.switch_id, p.priority)].append(p)
        table = cast(Table, ProfileTrack.__table__)
        stored = {(sid, prio): state for sid, prio, state in session.execute(
            select(table.c.switch_id, table.c.priority, table.c.state))}
        out: dict[tuple[int, int], _Group] = {}
        trackers: dict[tuple[int, int], TrafficTracker] = {}
        loaded = {key: TrafficTracker.from_state(stored.get(key)) for key in by_key}
        fates = self._proposal_fates(session, {t.pending_proposal for t in loaded.values()
                                               if t.pending_proposal is not None})
        for key, members in by_key.items():
            busy = [p for p in members if p.profile != "idle"] or members
            tracker = loaded[key]
            if tracker.pending_proposal is not None:
                fate = fates.get(tracker.pending_proposal)
                if fate is not None:
                    tracker.settle_probe(fate)
            prior = tracker.posterior if tracker.cycles else None
            arrays = busy[0].arrays
            readings = tracker.smooth_ports([str(p.interface_id) for p in busy],
                                            _proba(busy))
            for port, reading in zip(busy, readings, strict=True):
                port.reading = reading
            keep = mixed.split(readings, prior)
            group = [p for p, k in zip(busy, keep, strict=True) if k]
            others = [p for p, k in zip(busy, keep, strict=True) if not k]
            posterior = tracker.update(_proba(group))
            feats = np.median(arrays.features[_rows(group)], axis=0)
            trackers[key] = tracker
            out[key] = _Group(posterior, group, feats, {}, tracker.probe_view(),
                              tracker.avoid_view(), others, tracker)
        keys = [k for k, g in out.items() if PROFILES[int(np.argmax(g.posterior))] != "idle"]
        if keys:
            estimates = self.models.optimiser.estimate_descriptors_batch(
                np.vstack([out[k].features for k in keys]),
                np.vstack([out[k].posterior for k in keys]))
            for k, est in zip(keys, estimates, strict=True):
                out[k].descriptors = trackers[k].add_descriptors(est)
        return out

    @staticmethod
    def _proposal_fates(session: Session, ids: set[int]) -> dict[int, bool]:
        """For the proposals ``ids`` the trackers' probe records await: True when its change
        reached the switch (applied, even if since rolled back: the step was taken), False
        when it never will (superseded, rejected, still pending a cycle later, or its change
        failed or was rejected); proposals whose change is not settled yet are left out."""
        if not ids:
            return {}
        fates = dict.fromkeys(ids, False)  # a proposal since deleted never reaches a switch
        for pid, status, change_status in session.execute(
                select(Proposal.id, Proposal.status, ChangeSet.status)
                .outerjoin(ChangeSet, ChangeSet.id == Proposal.change_id)
                .where(Proposal.id.in_(ids))):
            if status == "applying":
                del fates[pid]  # an approval under way (``apply_proposals``)
            elif status != "applied" or change_status in (None, "failed", "rejected",
                                                          "dry_run"):
                fates[pid] = False
            elif change_status in ("planned", "approved"):
                del fates[pid]  # not started yet
            else:
                fates[pid] = True
        return fates

    def _store_tracks(self, now_ms: int) -> None:
        """Every tracker of this cycle as it stands after the proposals (their origin and
        probe noted), in one statement (``bulk_upsert``)."""
        if not self._tracks:
            return
        with self.factory() as session:
            bulk_upsert(
                session, cast(Table, ProfileTrack.__table__),
                ("switch_id", "priority", "state", "updated_ms"),
                [(sid, prio, json.dumps(group.tracker.state()), now_ms)
                 for (sid, prio), group in self._tracks.items()],
                lambda _table, new: {"state": new.state, "updated_ms": new.updated_ms})
            session.commit()

    def _propose(self, now_ms: int, report: CycleReport) -> list[int]:
        """A proposal per (switch, priority) tracked by the last :meth:`_classify`: every
        request first, one batched optimiser call, then the proposals stored."""
        groups = self._tracks
        with self.factory() as session:
            # the proposals go in as multi-row INSERTs of at most 100 rows: the driver then
            # parses one statement shape, once (pages of 1,000 rows, each a new shape of
            # 15,000 parameters, cost PostgreSQL's driver 0.4 s for a fleet's 2,000)
            session.connection(execution_options={"insertmanyvalues_page_size": 100})
            switches = {s.id: s for s in session.scalars(select(Switch))}
            worst = {sid: (int(speed or 0), float(cable or 0.0)) for sid, speed, cable in
                     session.execute(select(Interface.switch_id, func.max(Interface.speed_gbps),
                                            func.max(Interface.cable_m))
                                     .group_by(Interface.switch_id))}
            busy = self._busy_switches(session) | self._rolled_back_now
            held = self._held_off(session, now_ms)
            jobs: list[_Job] = []
            for (sid, prio), group in sorted(groups.items()):
                profile = PROFILES[int(np.argmax(group.posterior))]
                if profile == "idle":
                    continue
                switch = switches[sid]
                current = self._current_waterlines(switch).get(prio)
                if current is None or sid in busy or \
                        (sid, prio, mixed.family_of(profile)) in held:
                    continue
                try:
                    jobs.append(self._job(switch, prio, group, profile, current,
                                          worst.get(sid, (0, 0.0))))
                except Exception as exc:
                    report.errors.append(f"{switch.name}/{prio}: {type(exc).__name__}: {exc}")
            proposals = self._proposals(jobs, report)
            rows: list[Proposal] = []
            records: list[tuple[TrafficTracker, dict[str, Any], Proposal]] = []
            for job, proposal in zip(jobs, proposals, strict=True):
                if proposal is not None:
                    row = self._record(job, proposal, report)
                    if row is not None:
                        rows.append(row)
                        if proposal.probe is not None:
                            records.append((job.group.tracker, proposal.probe, row))
            # a new proposal supersedes the pending one of its switch and priority
            table = cast(Table, Proposal.__table__)
            superseded = sorted({(r.switch_id, r.priority) for r in rows})
            for k in range(0, len(superseded), 500):  # 1,000 bound values a statement
                session.execute(
                    update(table).where(
                        tuple_(table.c.switch_id, table.c.priority).in_(superseded[k:k + 500]),
                        table.c.status == "pending")
                    .values(status="superseded"))
            session.add_all(rows)
            session.flush()
            for tracker, record, row in records:  # stands once the change is applied
                tracker.note_probe(record, proposal_id=row.id)
            for row in rows:
                metrics.TUNER_PROPOSALS.labels(row.profile).inc()
            session.commit()
            created = [row.id for row in rows]
        report.proposals = len(created)
        return created

    def _job(self, switch: Switch, prio: int, group: _Group, profile: str,
             current: Waterline, worst: tuple[int, float]) -> _Job:
        """What the optimiser is asked for one switch and priority (``worst``: the speed and
        the cable length of the switch's most demanding port)."""
        members = group.busy
        speed = max(m.speed_gbps for m in members)
        cable = max(m.cable_m for m in members)
        others = mixed.summarise(
            np.vstack([p.features for p in group.others]),
            np.vstack([np.maximum(p.reading, p.proba) for p in group.others]),
            np.mean(np.vstack([p.reading for p in group.ports]), axis=0)
        ) if group.others else []
        request = ProposalRequest(
            profile, np.asarray(group.features, dtype=float), current, speed,
            switch.buffer_bytes, cable, posterior=group.posterior,
            descriptors=group.descriptors, probe=group.probe,
            avoid=tuple(tuple(float(v) for v in a) for a in group.avoid),
            others=tuple((f, q) for f, q, _idx in others),
            origin=self._origin(group.tracker, current),
            ports=tuple((m.interface, m.features) for m in group.ports)
            if len(group.ports) > 1 else ())
        return _Job(switch, prio, group, profile, current, speed, cable, others, request,
                    max(speed, worst[0]), max(cable, worst[1]))

    def _proposals(self, jobs: list[_Job], report: CycleReport) -> list[OptimiserProposal | None]:
        """The optimiser's answers, in one batch; when the batch fails, one by one, so one
        switch's bad input costs only its own proposal."""
        optimiser = self.models.optimiser
        try:
            return list(optimiser.propose_batch([j.request for j in jobs]))
        except Exception:
            log.exception("tuner: the batched proposal failed; proposing switch by switch")
        out: list[OptimiserProposal | None] = []
        for job in jobs:
            try:
                out.append(optimiser.propose_batch([job.request])[0])
            except Exception as exc:
                report.errors.append(f"{job.switch.name}/{job.priority}: "
                                     f"{type(exc).__name__}: {exc}")
                out.append(None)
        return out

    def _record(self, job: _Job, proposal: OptimiserProposal, report: CycleReport
                ) -> Proposal | None:
        """The proposal to store for one job (None: nothing to propose). A probe or a
        probe's verdict goes to the switch's tracker: here when it needs no change, else
        once the proposal is stored (:meth:`_propose`), awaiting its change."""
        switch, prio, group, members = job.switch, job.priority, job.group, job.group.busy
        sid = switch.id
        if proposal.spared_others:
            report.held_for_others += 1
            metrics.TUNER_HELD_FOR_OTHERS.inc()
            log.debug("tuner: %s priority %s: %s", switch.name, prio, proposal.reason)
        proposed = device_precision(_for_every_port(proposal.waterlines, job))
        if proposal.method == "hold" or _dump(proposed) == _dump(job.current):
            if proposal.probe is not None:  # in effect now: nothing to apply
                group.tracker.note_probe(proposal.probe)
            return None
        refusals = check_waterlines(proposed, speed_gbps=job.worst_speed_gbps,
                                    buffer_bytes=switch.buffer_bytes, cable_m=job.worst_cable_m)
        if refusals:  # a probe's record is not noted: its step will not be taken
            report.errors.append(f"{switch.name}/{prio}: guard refused {refusals[0]}")
            return None
        posterior = group.posterior
        return Proposal(
            switch_id=sid, priority=prio, interfaces=[m.interface for m in members],
            profile=job.profile, probability=float(posterior[PROFILES.index(job.profile)]),
            current=_dump(job.current), proposed=_dump(proposed),
            predicted={
                "objective_current": proposal.predicted_objective_current,
                "objective_proposed": proposal.predicted_objective_proposed,
                "kpis_current": proposal.predicted_kpis_current,
                "kpis_proposed": proposal.predicted_kpis_proposed,
            },
            confidence=float(proposal.confidence),
            explanation={
                "method": proposal.method, "reason": proposal.reason,
                "way_back": proposal.way_back,
                "features": _mean_kpis(members),
                "feature_vector": [float(x) for x in group.features],
                "ports": len(members), "speed_gbps": job.speed_gbps, "cable_m": job.cable_m,
                "tuned_for": [m.interface for m in group.ports],
                "other_ports": [
                    {"interfaces": [group.others[j].interface for j in idx],
                     "reads_as": PROFILES[int(np.argmax(q))], **fate}
                    for (_f, q, idx), fate in zip(
                        job.others, proposal.others or [{}] * len(job.others), strict=True)],
                "posterior": {p: round(float(v), 4) for p, v in zip(
                    PROFILES, posterior, strict=True)},
                "descriptors": {p: [round(float(x), 4) for x in v]
                                for p, v in group.descriptors.items()},
            },
        )

    @staticmethod
    def _origin(tracker: TrafficTracker, current: Waterline) -> Waterline:
        """The set the tuner found on this switch and priority (noted the first time)."""
        origin = tracker.note_origin(_dump(current))
        try:
            return Waterline(**origin)
        except (TypeError, ValueError):
            return current

    @staticmethod
    def _busy_switches(session: Session) -> set[int]:
        """Switches with a tuner change still applying or under verification, or locked by
        any change in flight (an operator's change, a rollback still running): a proposal
        for them could not be applied before the lock goes. (A switch whose rollback this
        cycle started is busy this cycle whatever its lock: ``_rolled_back_now``.)"""
        busy: set[int] = set(session.scalars(select(SwitchLock.switch_id)))
        for trial in session.scalars(select(TunerTrial).where(
                TunerTrial.status.in_(("applying", "verifying")))):
            busy.update(int(s) for s in trial.switch_ids)
        return busy

    def _held_off(self, session: Session, now_ms: int
                  ) -> set[tuple[int, int, tuple[str, ...]]]:
        """(switch, priority, profile family) whose tuner change for traffic of that family
        was rolled back (or failed) within ``holdoff_s``: the same traffic is not tuned again there for a
        while; traffic that has since changed family (allreduce turned incast) is tuned
        afresh. By family (``tuning.mixed.FAMILIES``), not profile: the classifier confuses
        incast and the Poisson mixes, and a reading flipping among them is no new traffic."""
        since = now_ms - int(self.options.holdoff_s * 1000)
        held: set[tuple[int, int, tuple[str, ...]]] = set()
        # a change the switch refused (failed: a rejected line, a commit timeout) is held off
        # too: retried every cycle it would fail every cycle, and as the canary of a group
        # stop the healthy switches grouped with it
        for trial in session.scalars(select(TunerTrial).where(
                TunerTrial.status.in_(("rolled_back", "failed")),
                TunerTrial.verify_after_ms >= since)):
            held.update((int(s), int(trial.priority), mixed.family_of(trial.profile))
                        for s in trial.switch_ids)
        return held

    # --- apply and verify -----------------------------------------------------------------

    def _apply(self, proposal_ids: list[int], now_ms: int, report: CycleReport) -> None:
        """Group identical proposals into one change each (canary first), record a trial.

        One change per switch a cycle: a proposal for a switch an earlier group of this cycle
        already changes (another priority) stays pending, so that each trial is judged on its
        own change and no apply meets the lock of another."""
        with self.factory() as session:
            rows = session.scalars(select(Proposal).where(Proposal.id.in_(proposal_ids))
                                   .order_by(Proposal.id)).all()
            groups: dict[tuple[Any, ...], list[Proposal]] = defaultdict(list)
            for p in rows:
                groups[(p.priority, p.profile, tuple(sorted(p.proposed.items())))].append(p)
        changed: set[int] = set()
        applied = 0
        for (priority, profile, _), group in groups.items():
            members = [p for p in group if p.switch_id not in changed]
            if not members:
                continue
            if applied >= self.options.max_changes_per_cycle:
                break
            applied += 1
            changed.update(p.switch_id for p in members)
            ids = [p.id for p in members]
            try:
                change_id = self.apply_proposals(ids, actor="tuner", source="daemon")
            except ChangeError as exc:
                report.errors.append(f"apply proposals {ids}: {exc}")
                continue
            ports = [pt for p in members
                     for pt in (self._tracks[(p.switch_id, priority)].busy
                                if (p.switch_id, priority) in self._tracks else [])]
            with self.factory() as session:
                names = dict(session.execute(select(Switch.id, Switch.name).where(
                    Switch.id.in_({p.switch_id for p in members}))).tuples().all())
                before: dict[str, Any] = _mean_kpis(ports)
                # each port's own, for the per-port rule (``tuning.verify.port_regression``)
                before["ports_utilisation"] = {
                    f"{names.get(pt.switch_id, pt.switch_id)}/{pt.interface}":
                        pt.kpis["utilisation"] for pt in ports}
                session.add(TunerTrial(
                    change_id=change_id, proposal_ids=ids, profile=profile, priority=priority,
                    switch_ids=sorted({p.switch_id for p in members}),
                    kpis_before=before, applied_ms=now_ms,
                    verify_after_ms=now_ms + int(self.options.verify_s * 1000),
                    status="applying"))
                session.commit()
            report.applied += 1
            metrics.TUNER_APPLIED.inc()

    def apply_proposals(self, proposal_ids: list[int], *, actor: str, source: str) -> int:
        """Turn proposals (same priority and waterlines) into one change, approve and apply it.

        The proposals are claimed first (pending -> applying, all of them in one statement or
        none), so of two concurrent decisions on one proposal -- two approvals, an approval
        and a rejection -- exactly one wins and the other gets 409. When the change cannot
        start, it is rejected and the proposals are pending again: nothing half-applied."""
        ids = sorted({int(i) for i in proposal_ids})
        with self.factory() as session:
            rows = session.scalars(select(Proposal).where(Proposal.id.in_(ids))).all()
            if len(rows) != len(ids):
                missing = sorted(set(ids) - {r.id for r in rows})
                raise ChangeError(404, f"no such proposals: {missing}")
            if any(r.status != "pending" for r in rows):
                raise ChangeError(409, "only pending proposals can be applied")
            names = {s.id: s.name for s in session.scalars(
                select(Switch).where(Switch.id.in_([r.switch_id for r in rows])))}
            first = rows[0]
            body = ChangeCreate(
                targets=TargetsIn(switches=sorted(names[r.switch_id] for r in rows)),
                waterlines={first.priority: WaterlinesIn(**first.proposed)},
                wave_size=self.options.wave_size,
                description=f"tuner: {first.profile} waterlines for priority {first.priority}",
            )
            claimed = session.execute(
                update(Proposal).where(Proposal.id.in_(ids), Proposal.status == "pending")
                .values(status="applying", decided_by=actor, decided_at=datetime.now(UTC)))
            if getattr(claimed, "rowcount", 0) != len(ids):
                session.rollback()
                raise ChangeError(409, "only pending proposals can be applied (another "
                                       "decision on one of them came first)")
            session.commit()
        change_id: int | None = None
        try:
            change_id = self.changes.create(body, actor, source=source)
            self.changes.approve(change_id, actor)
            self._set_proposals(ids, "applying", status="applied", change_id=change_id)
            self.changes.start_apply(change_id, actor)
        except BaseException:
            try:
                if change_id is not None:
                    with contextlib.suppress(ChangeError):
                        self.changes.reject(change_id, actor)
            finally:  # whatever the rejection met, the proposals are pending again
                self._set_proposals(ids, None, status="pending", change_id=None,
                                    decided_by=None, decided_at=None)
            raise
        return change_id

    def _release_stale_claims(self, now: datetime) -> None:
        """Approvals that died half-way (the process stopped between claiming the proposals
        and starting their change, which takes milliseconds): after ``CLAIM_TIMEOUT_S`` a
        proposal still ``applying``, or ``applied`` with its change never started, is
        pending again, and that change is rejected."""
        cutoff = now - timedelta(seconds=CLAIM_TIMEOUT_S)
        unstarted = select(ChangeSet.id).where(ChangeSet.status.in_(("planned", "approved")))
        with self.factory() as session:
            # only the stuck ones (an index-sized query: applied proposals whose change ran
            # pile up for as long as the database lives)
            for p in session.scalars(select(Proposal).where(
                    Proposal.decided_at < cutoff,
                    or_(Proposal.status == "applying",
                        (Proposal.status == "applied") & Proposal.change_id.in_(unstarted)))):
                change = session.get(ChangeSet, p.change_id) if p.change_id else None
                if change is not None:
                    change.status, change.reason = "rejected", "its approval never started it"
                p.status, p.change_id, p.decided_by, p.decided_at = "pending", None, None, None
                log.warning("proposal %s: an approval that never started its change released",
                            p.id)
            session.commit()

    def _set_proposals(self, ids: list[int], only: str | None, **values: Any) -> None:
        """``values`` on the proposals ``ids`` (those in status ``only``, when given)."""
        with self.factory() as session:
            stmt = update(Proposal).where(Proposal.id.in_(ids))
            if only is not None:
                stmt = stmt.where(Proposal.status == only)
            session.execute(stmt.values(**values))
            session.commit()

    def _judge_trials(self, now_ms: int, report: CycleReport) -> None:
        with self.factory() as session:
            trials = list(session.scalars(select(TunerTrial).where(
                TunerTrial.status.in_(("applying", "verifying")))))
            if self.options.real_switches_only:  # mock switches' trials are serve's to judge
                mocks = set(session.scalars(select(Switch.id).where(Switch.driver == "mock")))
                trials = [t for t in trials if not mocks & {int(s) for s in t.switch_ids}]
            for trial in trials:
                change = session.get(ChangeSet, trial.change_id)
                if change is None:
                    trial.status, trial.reason = "failed", "change vanished"
                    continue
                if trial.status == "applying":
                    if change.status == "applied":
                        trial.status = "verifying"
                        trial.applied_ms = now_ms
                        trial.verify_after_ms = now_ms + int(self.options.verify_s * 1000)
                    elif change.status not in ("approved", "applying"):
                        # the change workflow restored the switches it reached; the switch
                        # priority is held off like a rollback (``_held_off``)
                        trial.status = "failed"
                        trial.reason = f"change {change.id} {change.status}: {change.reason}"[:500]
                        trial.verify_after_ms = now_ms
                        metrics.TUNER_ROLLED_BACK.inc()
                        report.rolled_back += 1
                        report.errors.append(f"tuner {trial.reason}"[:500])
                    continue
                if now_ms < trial.verify_after_ms:
                    continue
                gone = _change_gone(session, change, trial.priority)
                if gone:  # a switch reloaded or reconfigured meanwhile: nothing to judge
                    trial.status, trial.reason = "failed", gone[:500]
                    trial.verify_after_ms = now_ms
                    report.errors.append(f"tuner change {change.id}: {gone}"[:500])
                    continue
                why, after, outcome = self._verdict(session, trial, now_ms)
                trial.kpis_after = {**after, "outcome": outcome}
                if why:
                    trial.status, trial.reason = "rolling_back", why
                else:
                    trial.status = "kept"
                    report.kept += 1
            session.commit()
            to_roll = [(t.id, t.change_id, t.reason) for t in trials if t.status == "rolling_back"]
            switch_ids = {t.id: list(t.switch_ids) for t in trials}
            kept = [t for t in trials if t.status == "kept" and (t.kpis_after or {}).get("outcome")]
            kept_outcomes = [(t.profile, t.kpis_after["outcome"]) for t in kept if t.kpis_after]
        for profile, outcome in kept_outcomes:
            try:
                _observe(self.models.optimiser, profile, outcome)
            except Exception as exc:
                report.errors.append(f"optimiser update: {exc}")
        for trial_id, change_id, reason in to_roll:
            try:
                self._rolled_back_now.update(int(s) for s in switch_ids[trial_id])
                self.changes.start_rollback(change_id, "tuner")
                status = "rolled_back"
            except ChangeError as exc:
                status, reason = "failed", f"{reason}; rollback refused: {exc}"
            with self.factory() as session:
                row = session.get(TunerTrial, trial_id)
                if row is not None:
                    row.status, row.reason = status, reason[:500]
                    if status == "rolled_back":
                        _remember_rollback(session, row)
                session.commit()
            metrics.TUNER_ROLLED_BACK.inc()
            report.rolled_back += 1
            log.warning("tuner change %s rolled back: %s", change_id, reason)

    def _verdict(self, session: Session, trial: TunerTrial, now_ms: int
                 ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """Compare the trial's ports before and after; a reason string means regression."""
        # the settling never takes more than half the verification window (a short
        # ``verify_s`` would otherwise leave no telemetry to judge by)
        settle_s = min(self.options.settle_s, self.options.verify_s / 2)
        start = trial.applied_ms + int(settle_s * 1000)
        switches = {s.id: s for s in session.scalars(select(Switch).where(
            Switch.id.in_(trial.switch_ids)).options(selectinload(Switch.interfaces)))}
        proposals = session.scalars(select(Proposal).where(
            Proposal.id.in_(trial.proposal_ids))).all()
        wanted = {(p.switch_id, name) for p in proposals for name in p.interfaces}
        series = load_windows(session, start_ms=start, end_ms=now_ms + 1,
                              priorities=[trial.priority], switch_ids=trial.switch_ids)
        windows: list[PortWindow] = []
        names: list[str] = []
        features: list[np.ndarray] = []
        for (sid, iid, _prio), data in series.items():
            iface = next((i for i in switches[sid].interfaces if i.id == iid), None)
            if iface is None or (sid, iface.name) not in wanted:
                continue
            names.append(f"{switches[sid].name}/{iface.name}")
            window = PortWindow(speed_gbps=float(iface.speed_gbps),
                                buffer_bytes=switches[sid].buffer_bytes, cable_m=iface.cable_m,
                                **{k: v for k, v in data.items() if k != "ts_ms"})
            windows.append(window)
            proposed = proposals[0].proposed
            features.append(port_features(window, Waterline(**proposed)))
        after = kpis_of(windows, names)
        before = trial.kpis_before
        tol = self.options.tolerance
        outcome = None
        if features:
            feats = np.median(np.vstack(features), axis=0)
            try:
                objective = float(self.models.optimiser.estimate_objective(trial.profile, feats))
                outcome = {"features": [float(x) for x in feats], "objective": objective,
                           "waterlines": proposals[0].proposed, **_context(switches)}
            except Exception as exc:
                log.warning("objective estimate failed: %s", exc)
        if not windows:
            return "no telemetry after the change", after, None
        if all((p.explanation or {}).get("way_back") for p in proposals):
            # back to the set before a probe: judged before it, not against the probe's
            # window (``tuning.optimiser.way_back``)
            return "", after, outcome
        # a change past every static reference must buy its longer queue in throughput
        deeper = any(deeper_than_references(Waterline(**p.current), Waterline(**p.proposed),
                                            speed)
                     for p in proposals if (speed := _slowest_speed(p, switches)))
        return verdict(before, after, tol, deeper=deeper), after, outcome


def _waterlines_of(observed_qos: dict[str, Any] | None) -> dict[int, Waterline]:
    if not observed_qos:
        return {}
    config = QosConfig.model_validate(observed_qos)
    return {p: waterline_of(w) for p, w in config.waterlines.items()}


def _change_gone(session: Session, change: ChangeSet, priority: int) -> str:
    """Why a change's waterlines at ``priority`` are no longer on a switch it verified: the
    config last read from the switch differs from what Waterline last set there as the switch
    shows it (the "desired" rows the change stored: its expected read-back, device rounding
    included), or "". A verdict on telemetry of a config the switch no longer runs would keep
    a change that is not there."""
    fields = ("kmin_bytes", "kmax_bytes", "pmax", "xoff_bytes", "xon_bytes", "headroom_bytes",
              "alpha")
    for result in change.results:
        if result.state != "verified":
            continue
        switch = session.get(Switch, result.switch_id)
        if switch is None or not switch.observed_qos:
            continue
        desired = session.scalars(select(QosWaterline).where(
            QosWaterline.switch_id == switch.id, QosWaterline.kind == "desired",
            QosWaterline.interface_name == "", QosWaterline.priority == priority)).first()
        if desired is None:
            continue
        set_to = Waterline(**{f: getattr(desired, f) for f in fields})
        now = _waterlines_of(switch.observed_qos).get(priority)
        if now != set_to:
            shown = "none" if now is None else \
                f"{now.kmin_bytes} / {now.kmax_bytes} / {now.pmax:g}"
            return (f"{switch.name} no longer carries the change at priority {priority} "
                    f"(reads back {shown}; the change set {set_to.kmin_bytes} / "
                    f"{set_to.kmax_bytes} / {set_to.pmax:g})")
    return ""


def _remember_rollback(session: Session, trial: TunerTrial) -> None:
    """A rolled-back change's waterlines go on each switch's avoid list (``TrafficTracker.
    note_rolled_back``): not proposed there again for a while."""
    for p in session.scalars(select(Proposal).where(Proposal.id.in_(trial.proposal_ids))):
        track = session.get(ProfileTrack, (p.switch_id, trial.priority))
        switch = session.get(Switch, p.switch_id)
        speed = (p.explanation or {}).get("speed_gbps")
        if track is None or switch is None or speed is None:
            continue
        ctx = PortContext(int(speed), int(switch.buffer_bytes),
                          float((p.explanation or {}).get("cable_m", 3.0)))
        tracker = TrafficTracker.from_state(track.state)
        tracker.note_rolled_back(clip_coords(to_coords(Waterline(**p.proposed), ctx), ctx),
                                 clip_coords(to_coords(Waterline(**p.current), ctx), ctx))
        track.state = tracker.state()


def _slowest_speed(proposal: Proposal, switches: dict[int, Switch]) -> float | None:
    """The speed of the slowest port a proposal sets (Gb/s; its recorded speed when none is
    found): a switch's group of 100G and 400G ports is set in its fastest port's context,
    where a ramp can sit within the 400G references and past every 100G one. A change is
    judged against the references of each port it serves, so the slowest's."""
    switch = switches.get(proposal.switch_id)
    names = set(proposal.interfaces or ())
    speeds = [int(i.speed_gbps) for i in (switch.interfaces if switch else ())
              if i.name in names and i.speed_gbps]
    if speeds:
        return float(min(speeds))
    recorded = (proposal.explanation or {}).get("speed_gbps")
    return float(recorded) if recorded else None


def _context(switches: dict[int, Switch]) -> dict[str, Any]:
    """What bounds the trial's switches' waterlines: fastest port, smallest buffer, longest
    cable (the optimiser's context of an outcome)."""
    itfs = [i for s in switches.values() for i in s.interfaces]
    if not switches or not itfs:
        return {}
    return {"speed_gbps": max(int(i.speed_gbps) for i in itfs),
            "buffer_bytes": min(int(s.buffer_bytes) for s in switches.values()),
            "cable_m": max(float(i.cable_m) for i in itfs)}


def _observe(optimiser: Any, profile: str, outcome: dict[str, Any]) -> None:
    optimiser.observe(profile, np.asarray(outcome["features"], dtype=float),
                      Waterline(**outcome["waterlines"]), float(outcome["objective"]),
                      speed_gbps=outcome.get("speed_gbps"),
                      buffer_bytes=outcome.get("buffer_bytes"), cable_m=outcome.get("cable_m"))


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    import json

    return dict(json.loads(json.dumps(meta, default=str)))
