"""SQLAlchemy 2 typed models. Alembic (migrations/) owns the schema; never `create_all` in the app.

Times are stored timezone-aware in UTC. Byte and packet counters are BigInteger.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("spine", "leaf", "tor")
TOKEN_ROLES = ("viewer", "operator", "admin")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Fabric(Base):
    """The fabric's RoCE intent (one row): which priorities are lossless, where CNPs go."""

    __tablename__ = "fabric"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    lossless_priorities: Mapped[list[Any]] = mapped_column(JSON)
    cnp_priority: Mapped[int] = mapped_column(SmallInteger)


class Switch(Base):
    __tablename__ = "switches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), index=True)
    pod: Mapped[int | None] = mapped_column(Integer, index=True)
    mgmt_host: Mapped[str] = mapped_column(String(255))
    mgmt_port: Mapped[int] = mapped_column(Integer, default=22)
    driver: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64), default="")
    asic: Mapped[str] = mapped_column(String(64), default="")
    buffer_bytes: Mapped[int] = mapped_column(BigInteger)
    # A reference such as "env:SWITCH_PASSWORD" or "file:/etc/waterline/sw.pass"; never a secret.
    credentials_ref: Mapped[str] = mapped_column(String(255), default="")
    username: Mapped[str] = mapped_column(String(64), default="admin")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    poll_interval_s: Mapped[float | None] = mapped_column(Float)
    health: Mapped[str] = mapped_column(String(16), default="unknown")
    health_reason: Mapped[str] = mapped_column(String(500), default="")
    last_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_ok_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The RoCE QoS config last read from the switch (QosConfig as JSON) and when.
    observed_qos: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    observed_qos_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    interfaces: Mapped[list[Interface]] = relationship(
        back_populates="switch",
        cascade="all, delete-orphan",
        order_by="Interface.id",
    )


class Interface(Base):
    __tablename__ = "interfaces"
    __table_args__ = (UniqueConstraint("switch_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    switch_id: Mapped[int] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    speed_gbps: Mapped[int] = mapped_column(Integer)
    peer: Mapped[str] = mapped_column(String(128), default="")
    cable_m: Mapped[float] = mapped_column(Float, default=5.0)

    switch: Mapped[Switch] = relationship(back_populates="interfaces")


class Link(Base):
    __tablename__ = "links"
    __table_args__ = (UniqueConstraint("a_interface_id"), UniqueConstraint("b_interface_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    a_interface_id: Mapped[int] = mapped_column(ForeignKey("interfaces.id", ondelete="CASCADE"))
    b_interface_id: Mapped[int] = mapped_column(ForeignKey("interfaces.id", ondelete="CASCADE"))

    a_interface: Mapped[Interface] = relationship(foreign_keys=[a_interface_id])
    b_interface: Mapped[Interface] = relationship(foreign_keys=[b_interface_id])


class _RawColumns:
    """Counters as the switch reports them (monotonic) and the queue gauges."""

    tx_packets: Mapped[int | None] = mapped_column(BigInteger)
    tx_bytes: Mapped[int | None] = mapped_column(BigInteger)
    ecn_marked_packets: Mapped[int | None] = mapped_column(BigInteger)
    rx_pause_frames: Mapped[int | None] = mapped_column(BigInteger)
    tx_pause_frames: Mapped[int | None] = mapped_column(BigInteger)
    drop_packets: Mapped[int | None] = mapped_column(BigInteger)
    occupancy_bytes: Mapped[int | None] = mapped_column(BigInteger)
    watermark_bytes: Mapped[int | None] = mapped_column(BigInteger)


class TelemetrySample(_RawColumns, Base):
    """One poll of one interface x priority: raw counters and rates derived from the previous
    poll (None after a gap, a wrap we could not resolve, or a reset).

    ``ts_ms`` is Unix time in milliseconds: integer buckets (``ts_ms / 60000``) work the same on
    SQLite and PostgreSQL, which keeps rollups and step queries in SQL.
    """

    __tablename__ = "telemetry_samples"
    __table_args__ = (
        UniqueConstraint("switch_id", "interface_id", "priority", "ts_ms"),
        Index("ix_telemetry_samples_ts_ms", "ts_ms"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    switch_id: Mapped[int] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"))
    interface_id: Mapped[int] = mapped_column(ForeignKey("interfaces.id", ondelete="CASCADE"))
    priority: Mapped[int] = mapped_column(SmallInteger)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    interval_s: Mapped[float | None] = mapped_column(Float)
    # Derived per-second rates over interval_s.
    tx_bytes_per_s: Mapped[float | None] = mapped_column(Float)
    tx_packets_per_s: Mapped[float | None] = mapped_column(Float)
    ecn_marked_packets_per_s: Mapped[float | None] = mapped_column(Float)
    rx_pause_frames_per_s: Mapped[float | None] = mapped_column(Float)
    tx_pause_frames_per_s: Mapped[float | None] = mapped_column(Float)
    drop_packets_per_s: Mapped[float | None] = mapped_column(Float)
    utilisation: Mapped[float | None] = mapped_column(Float)


class QosWaterline(Base):
    """Observed (read from the switch) or desired (intent) waterlines per switch x priority;
    ``interface_name`` is "" for the switch-wide value, else a per-interface override."""

    __tablename__ = "qos_waterlines"
    __table_args__ = (UniqueConstraint("switch_id", "interface_name", "priority", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    switch_id: Mapped[int] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"))
    interface_name: Mapped[str] = mapped_column(String(64), default="")
    priority: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[str] = mapped_column(String(16))  # observed | desired
    kmin_bytes: Mapped[int] = mapped_column(BigInteger)
    kmax_bytes: Mapped[int] = mapped_column(BigInteger)
    pmax: Mapped[float] = mapped_column(Float)
    xoff_bytes: Mapped[int | None] = mapped_column(BigInteger)
    xon_bytes: Mapped[int | None] = mapped_column(BigInteger)
    headroom_bytes: Mapped[int | None] = mapped_column(BigInteger)
    alpha: Mapped[float | None] = mapped_column(Float)
    pfc_enabled: Mapped[bool | None] = mapped_column(Boolean)
    ecn_enabled: Mapped[bool | None] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class ChangeSet(Base):
    __tablename__ = "change_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32), default="api")  # api | daemon | proposal
    description: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(24), default="planned", index=True)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)
    intent: Mapped[dict[str, Any]] = mapped_column(JSON)
    wave_size: Mapped[int] = mapped_column(Integer, default=10)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str | None] = mapped_column(String(128))  # process applying it (crash recovery)
    heartbeat_ms: Mapped[int | None] = mapped_column(BigInteger)
    on_failure: Mapped[str] = mapped_column(String(16), default="stop", server_default="stop")

    results: Mapped[list[ChangeResult]] = relationship(
        back_populates="change", cascade="all, delete-orphan", order_by="ChangeResult.id"
    )


class ChangeResult(Base):
    """Per-switch state of a change: its wave, the rendered diff, before/after configs."""

    __tablename__ = "change_results"
    __table_args__ = (UniqueConstraint("change_id", "switch_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id", ondelete="CASCADE"))
    switch_id: Mapped[int] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"))
    wave: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(24), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")
    diff: Mapped[str] = mapped_column(Text, default="")
    # True once the apply has read the switch and stored ``before`` and may send lines: only
    # reached switches are ever restored (a plan-time read is not a rollback point).
    reached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    change: Mapped[ChangeSet] = relationship(back_populates="results")


class SwitchLock(Base):
    """One row per locked switch: the primary key makes a second lock impossible."""

    __tablename__ = "switch_locks"

    switch_id: Mapped[int] = mapped_column(
        ForeignKey("switches.id", ondelete="CASCADE"), primary_key=True
    )
    change_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id", ondelete="CASCADE"))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Proposal(Base):
    __tablename__ = "proposals"
    __table_args__ = (Index("ix_proposals_switch_id_created_at", "switch_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    switch_id: Mapped[int] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"))
    priority: Mapped[int] = mapped_column(SmallInteger)
    interfaces: Mapped[list[Any]] = mapped_column(JSON)
    profile: Mapped[str] = mapped_column(String(32))
    probability: Mapped[float] = mapped_column(Float)
    current: Mapped[dict[str, Any]] = mapped_column(JSON)
    proposed: Mapped[dict[str, Any]] = mapped_column(JSON)
    predicted: Mapped[dict[str, Any]] = mapped_column(JSON)
    confidence: Mapped[float] = mapped_column(Float)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    change_id: Mapped[int | None] = mapped_column(
        ForeignKey("change_sets.id", ondelete="SET NULL")
    )


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_change_id_ts", "change_id", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    change_id: Mapped[int | None] = mapped_column(Integer)
    switch_name: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32), default="ok")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("kind", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # classifier | optimiser
    version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # sha256 of the token: tokens are 256-bit random, so a fast hash is not brute-forceable.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class TelemetryBlock(Base):
    """One ingest batch's samples packed for the window reads (``app.telemetry_blocks``):
    ``rows`` x BLOCK_COLUMNS little-endian float64 in ``payload``, the batch's sample times
    spanning ``ts_min_ms``..``ts_max_ms``."""

    __tablename__ = "telemetry_blocks"
    __table_args__ = (Index("ix_telemetry_blocks_ts_max_ms", "ts_max_ms"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    ts_min_ms: Mapped[int] = mapped_column(BigInteger)
    ts_max_ms: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class TelemetryLatest(_RawColumns, Base):
    """The newest raw sample of every series: what /metrics exports without touching switches."""

    __tablename__ = "telemetry_latest"

    switch_id: Mapped[int] = mapped_column(
        ForeignKey("switches.id", ondelete="CASCADE"), primary_key=True
    )
    interface_id: Mapped[int] = mapped_column(
        ForeignKey("interfaces.id", ondelete="CASCADE"), primary_key=True
    )
    priority: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)


class _RollupColumns:
    """Per-bucket aggregates of the raw samples: averages of rates, peaks of gauges."""

    switch_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interface_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    priority: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    samples: Mapped[int] = mapped_column(Integer)
    tx_bytes_per_s: Mapped[float | None] = mapped_column(Float)
    tx_packets_per_s: Mapped[float | None] = mapped_column(Float)
    ecn_marked_packets_per_s: Mapped[float | None] = mapped_column(Float)
    rx_pause_frames_per_s: Mapped[float | None] = mapped_column(Float)
    tx_pause_frames_per_s: Mapped[float | None] = mapped_column(Float)
    drop_packets_per_s: Mapped[float | None] = mapped_column(Float)
    utilisation: Mapped[float | None] = mapped_column(Float)
    occupancy_bytes: Mapped[float | None] = mapped_column(Float)
    watermark_bytes: Mapped[float | None] = mapped_column(Float)


class TelemetryRollup1m(_RollupColumns, Base):
    __tablename__ = "telemetry_rollup_1m"


class TelemetryRollup1h(_RollupColumns, Base):
    __tablename__ = "telemetry_rollup_1h"


class RollupState(Base):
    """How far each rollup (and retention) has processed the raw samples."""

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    done_until_ms: Mapped[int] = mapped_column(BigInteger)


class PollError(Base):
    __tablename__ = "poll_errors"
    __table_args__ = (Index("ix_poll_errors_switch_id_ts_ms", "switch_id", "ts_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    switch_id: Mapped[int] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(500))


class CollectorLease(Base):
    """Which collector worker polls a switch, until when (PostgreSQL scale-out)."""

    __tablename__ = "collector_leases"

    switch_id: Mapped[int] = mapped_column(
        ForeignKey("switches.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str | None] = mapped_column(String(128), index=True)
    expires_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class CollectorWorker(Base):
    __tablename__ = "collector_workers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    heartbeat_ms: Mapped[int] = mapped_column(BigInteger)
    started_ms: Mapped[int] = mapped_column(BigInteger)


class TunerState(Base):
    """The auto-tuning daemon's settings and progress (one row): restart-safe."""

    __tablename__ = "tuner_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), default="propose")  # off|observe|propose|auto
    freeze_windows: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_cycle_ms: Mapped[int | None] = mapped_column(BigInteger)
    cycles: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    # the daemon process whose cycles run (a lease: one tuner at a time over one database),
    # and until when its lease holds unless renewed (its own clock and interval decide)
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger)


class PortProfile(Base):
    """The classifier's latest verdict per port x priority (every row rewritten each cycle:
    on PostgreSQL the table keeps 40 % of each page free for in-place updates, migration
    0009)."""

    __tablename__ = "port_profiles"

    switch_id: Mapped[int] = mapped_column(
        ForeignKey("switches.id", ondelete="CASCADE"), primary_key=True
    )
    interface_id: Mapped[int] = mapped_column(
        ForeignKey("interfaces.id", ondelete="CASCADE"), primary_key=True
    )
    priority: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    profile: Mapped[str] = mapped_column(String(32))
    probability: Mapped[float] = mapped_column(Float)
    since_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ProfileTrack(Base):
    """What the tuner has seen of a switch x lossless priority over its cycles
    (``tuning.tracker.TrafficTracker.state``): profile evidence, traffic descriptors."""

    __tablename__ = "profile_tracks"

    switch_id: Mapped[int] = mapped_column(
        ForeignKey("switches.id", ondelete="CASCADE"), primary_key=True
    )
    priority: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class TunerTrial(Base):
    """A tuner change under verification: KPIs before, when to judge, and the verdict."""

    __tablename__ = "tuner_trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id", ondelete="CASCADE"))
    proposal_ids: Mapped[list[Any]] = mapped_column(JSON)
    profile: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(SmallInteger)
    switch_ids: Mapped[list[Any]] = mapped_column(JSON)
    kpis_before: Mapped[dict[str, Any]] = mapped_column(JSON)
    kpis_after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    applied_ms: Mapped[int] = mapped_column(BigInteger)
    verify_after_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="applying", index=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
