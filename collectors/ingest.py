"""Bulk ingest of normalised samples, the latest-snapshot table, rollups and retention.

Writes are idempotent on (switch, interface, priority, ts_ms): SQLite uses one executemany of
`INSERT ... ON CONFLICT DO NOTHING`; PostgreSQL COPYs the batch into a temporary table and moves
it with `INSERT ... SELECT ... ON CONFLICT DO NOTHING`. If the database is down the rows wait in
a bounded in-memory buffer and are retried on the next write; what does not fit is counted in
`waterline_ingest_buffer_overflow_total` and dropped oldest-first. Nothing here raises to the
poller: a failed write is logged and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, Table, delete, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError

from app import metrics
from app.db.models import (
    RollupState,
    TelemetryBlock,
    TelemetryLatest,
    TelemetryRollup1h,
    TelemetryRollup1m,
    TelemetrySample,
)
from app.db.session import upsert_insert
from app.telemetry_blocks import MAX_WINDOW_S, pack_block
from collectors.normalise import SAMPLE_COLUMNS, SampleBatch

log = logging.getLogger("waterline.ingest")

SERIES_KEY = ("switch_id", "interface_id", "priority")
LATEST_COLUMNS: tuple[str, ...] = (
    "switch_id", "interface_id", "priority", "ts_ms",
    "tx_packets", "tx_bytes", "ecn_marked_packets", "rx_pause_frames", "tx_pause_frames",
    "drop_packets", "occupancy_bytes", "watermark_bytes",
)
RATE_COLUMNS: tuple[str, ...] = (
    "tx_bytes_per_s", "tx_packets_per_s", "ecn_marked_packets_per_s", "rx_pause_frames_per_s",
    "tx_pause_frames_per_s", "drop_packets_per_s", "utilisation",
)

SAMPLES = cast(Table, TelemetrySample.__table__)
LATEST = cast(Table, TelemetryLatest.__table__)
BLOCKS = cast(Table, TelemetryBlock.__table__)
ROLLUP_1M = cast(Table, TelemetryRollup1m.__table__)
ROLLUP_1H = cast(Table, TelemetryRollup1h.__table__)


def write_samples(conn: Connection, batch: SampleBatch) -> None:
    """Insert a batch (idempotently), refresh the latest-snapshot table and store the batch as
    one telemetry block (``app.telemetry_blocks``), in ``conn``'s transaction."""
    if not len(batch):
        return
    rows, ts_min_ms, ts_max_ms, payload = pack_block(batch.columns)
    if conn.dialect.name == "postgresql":
        _write_postgres(conn, batch)
    else:
        _write_sqlite(conn, batch)
    conn.execute(insert(BLOCKS).values(rows=rows, ts_min_ms=ts_min_ms, ts_max_ms=ts_max_ms,
                                       payload=payload))


def _latest_tuples(batch: SampleBatch) -> list[tuple[Any, ...]]:
    """The newest row of each series in the batch, as LATEST_COLUMNS tuples."""
    newest: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in batch.tuples(LATEST_COLUMNS):
        key = row[:3]
        current = newest.get(key)
        if current is None or row[3] >= current[3]:
            newest[key] = row
    return list(newest.values())


_SQLITE_INSERT = (
    f"INSERT INTO telemetry_samples ({', '.join(SAMPLE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SAMPLE_COLUMNS))}) "
    "ON CONFLICT (switch_id, interface_id, priority, ts_ms) DO NOTHING"
)
_SQLITE_LATEST = (
    f"INSERT INTO telemetry_latest ({', '.join(LATEST_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(LATEST_COLUMNS))}) "
    "ON CONFLICT (switch_id, interface_id, priority) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in LATEST_COLUMNS if c not in SERIES_KEY)
    + " WHERE telemetry_latest.ts_ms <= excluded.ts_ms"
)


def _write_sqlite(conn: Connection, batch: SampleBatch) -> None:
    # The DB-API cursor directly: SQLAlchemy's per-row parameter processing would cost more
    # than SQLite's own insert.
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.executemany(_SQLITE_INSERT, batch.tuples())
        cursor.executemany(_SQLITE_LATEST, _latest_tuples(batch))
    finally:
        cursor.close()


def _write_postgres(conn: Connection, batch: SampleBatch) -> None:
    columns = ", ".join(SAMPLE_COLUMNS)
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS wl_ingest "
        "(LIKE telemetry_samples INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(  # type: ignore[attr-defined]
        f"COPY wl_ingest ({columns}) FROM STDIN"
    ) as copy:
        for row in batch.tuples():
            copy.write_row(row)
    conn.exec_driver_sql(
        f"INSERT INTO telemetry_samples ({columns}) SELECT {columns} FROM wl_ingest "
        "ON CONFLICT (switch_id, interface_id, priority, ts_ms) DO NOTHING"
    )
    latest_cols = ", ".join(LATEST_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in LATEST_COLUMNS if c not in SERIES_KEY)
    conn.exec_driver_sql(
        f"INSERT INTO telemetry_latest ({latest_cols}) "
        f"SELECT DISTINCT ON (switch_id, interface_id, priority) {latest_cols} FROM wl_ingest "
        "ORDER BY switch_id, interface_id, priority, ts_ms DESC "
        f"ON CONFLICT (switch_id, interface_id, priority) DO UPDATE SET {updates} "
        "WHERE telemetry_latest.ts_ms <= EXCLUDED.ts_ms"
    )
    conn.exec_driver_sql("TRUNCATE wl_ingest")


def _is_data_error(exc: BaseException) -> bool:
    """The database refused the data itself (not the connection): integrity or range."""
    if isinstance(exc, IntegrityError | DataError | OverflowError | ValueError | TypeError):
        return True
    return type(exc).__name__ in ("IntegrityError", "DataError", "ForeignKeyViolation",
                                  "NumericValueOutOfRange", "UniqueViolation")


@dataclass
class IngestResult:
    written: int = 0
    rejected: int = 0
    buffered: int = 0
    dropped: int = 0
    error: str | None = None


class Ingestor:
    """Thread-safe buffered writer. ``write`` never raises because of the database."""

    def __init__(self, engine: Engine, *, buffer_limit: int = 1_000_000, batch_rows: int = 50_000):
        self.engine = engine
        self.buffer_limit = buffer_limit
        self.batch_rows = batch_rows
        self._buffer: deque[SampleBatch] = deque()
        self._depth = 0
        self._lock = threading.Lock()
        self.overflow_total = 0
        self.last_error: str | None = None

    @property
    def depth(self) -> int:
        return self._depth

    def write(self, rows: SampleBatch | Sequence[dict[str, Any]]) -> IngestResult:
        batch = rows if isinstance(rows, SampleBatch) else SampleBatch.from_rows(list(rows))
        with self._lock:
            result = IngestResult()
            if len(batch):
                self._buffer.append(batch)
                self._depth += len(batch)
            self._drop_overflow(result)
            while self._buffer:
                chunk = self._take(self.batch_rows)
                try:
                    written, rejected = self._write_chunk(chunk)
                except Exception as exc:  # the database is down: keep the rows for later
                    self._buffer.appendleft(chunk)
                    self._depth += len(chunk)
                    self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    result.error = self.last_error
                    metrics.INGEST_ERRORS.inc()
                    log.warning("ingest failed, %d samples buffered: %s",
                                self._depth, self.last_error)
                    break
                result.written += written
                result.rejected += rejected
                metrics.SAMPLES_INGESTED.inc(written)
            result.buffered = self._depth
            metrics.INGEST_BUFFER_DEPTH.set(self._depth)
            return result

    def _write_chunk(self, chunk: SampleBatch) -> tuple[int, int]:
        """Write a chunk; rows the database refuses as data (a deleted interface, a value out
        of range) are isolated by bisection and dropped, so one bad row never blocks the
        rest. Connection-level errors propagate (the caller buffers)."""
        try:
            with self.engine.begin() as conn:
                write_samples(conn, chunk)
            return len(chunk), 0
        except Exception as exc:
            if not _is_data_error(exc):
                raise
            if len(chunk) == 1:
                metrics.INGEST_REJECTED.inc()
                log.warning("dropped a sample the database refused: %s",
                            str(exc).splitlines()[0][:200])
                return 0, 1
        head, tail = chunk.split(len(chunk) // 2)
        a = self._write_chunk(head)
        b = self._write_chunk(tail)
        return a[0] + b[0], a[1] + b[1]

    def _take(self, limit: int) -> SampleBatch:
        """Up to ``limit`` rows from the front of the buffer, as one batch."""
        out = SampleBatch.empty()
        while self._buffer and len(out) < limit:
            head = self._buffer.popleft()
            room = limit - len(out)
            if len(head) > room:
                head, rest = head.split(room)
                self._buffer.appendleft(rest)
            out.extend(head)
        self._depth -= len(out)
        return out

    def _drop_overflow(self, result: IngestResult) -> None:
        overflow = self._depth - self.buffer_limit
        if overflow <= 0:
            return
        dropped = 0
        while dropped < overflow and self._buffer:  # oldest first
            head = self._buffer.popleft()
            if len(head) > overflow - dropped:
                _, rest = head.split(overflow - dropped)
                self._buffer.appendleft(rest)
                dropped = overflow
            else:
                dropped += len(head)
        self._depth -= dropped
        self.overflow_total += dropped
        result.dropped = dropped
        metrics.INGEST_BUFFER_OVERFLOW.inc(dropped)
        log.warning("ingest buffer full: dropped %d oldest samples", dropped)

    def flush(self) -> IngestResult:
        return self.write(SampleBatch.empty())


# --- rollups and retention ---------------------------------------------------------------------

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
# Buckets this close to now may still receive samples; they are recomputed on the next run.
ROLLUP_LAG_MS = 30_000


def _rollup_select(source: Table, bucket_ms: int, start_ms: int, end_ms: int) -> Any:
    time_col = source.c.ts_ms if source is SAMPLES else source.c.bucket_ms
    bucket = (time_col // bucket_ms) * bucket_ms
    count = func.count() if source is SAMPLES else func.sum(source.c.samples)
    columns = [
        source.c.switch_id, source.c.interface_id, source.c.priority,
        bucket.label("bucket_ms"), count.label("samples"),
        *[func.avg(source.c[c]).label(c) for c in RATE_COLUMNS],
        func.avg(source.c.occupancy_bytes).label("occupancy_bytes"),
        func.max(source.c.watermark_bytes).label("watermark_bytes"),
    ]
    return (
        select(*columns)
        .where(time_col >= start_ms, time_col < end_ms)
        .group_by(source.c.switch_id, source.c.interface_id, source.c.priority, bucket)
    )


def _upsert_rollup(conn: Connection, target: Table, query: Any) -> None:
    names = ["switch_id", "interface_id", "priority", "bucket_ms", "samples", *RATE_COLUMNS,
             "occupancy_bytes", "watermark_bytes"]
    stmt = upsert_insert(conn.dialect.name, target).from_select(names, query)
    stmt = stmt.on_conflict_do_update(
        index_elements=["switch_id", "interface_id", "priority", "bucket_ms"],
        set_={n: stmt.excluded[n] for n in names[4:]},
    )
    conn.execute(stmt)


def _state(conn: Connection, name: str) -> int | None:
    return conn.execute(
        select(RollupState.done_until_ms).where(RollupState.name == name)
    ).scalar_one_or_none()


def _set_state(conn: Connection, name: str, value: int) -> None:
    stmt = upsert_insert(conn.dialect.name, cast(Table, RollupState.__table__)).values(
        name=name, done_until_ms=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                            set_={"done_until_ms": value}))


def run_rollups(engine: Engine, now_ms: int | None = None) -> dict[str, int]:
    """Aggregate complete buckets: raw -> 1 min, 1 min -> 1 h. Re-running is harmless.

    Samples that arrive late (a collector flushing its outage buffer after the minute was
    rolled up) are found through the sample ids written since the last run, and their buckets
    are recomputed too."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    done: dict[str, int] = {}
    with engine.begin() as conn:
        last_id = _state(conn, "rollup_1m_id") or 0
        newest_id = conn.execute(select(func.max(SAMPLES.c.id))).scalar() or 0
        late = conn.execute(select(func.min(SAMPLES.c.ts_ms)).where(
            SAMPLES.c.id > last_id)).scalar()
        recomputed_from: int | None = None
        for name, source, target, width in (
            ("rollup_1m", SAMPLES, ROLLUP_1M, MINUTE_MS),
            ("rollup_1h", ROLLUP_1M, ROLLUP_1H, HOUR_MS),
        ):
            end = (now_ms - ROLLUP_LAG_MS) // width * width
            previous = _state(conn, name)
            if previous is None:
                first_col = source.c.ts_ms if source is SAMPLES else source.c.bucket_ms
                oldest = conn.execute(select(func.min(first_col))).scalar()
                if oldest is None:
                    continue
                previous = int(oldest) // width * width
            # Recompute the last bucket too, and any bucket that received late samples.
            start = max(0, previous - width)
            dirty = late if source is SAMPLES else recomputed_from
            if dirty is not None:
                start = min(start, int(dirty) // width * width)
            if end > start:
                _upsert_rollup(conn, target, _rollup_select(source, width, start, end))
                _set_state(conn, name, end)
                done[name] = end
                if source is SAMPLES:
                    recomputed_from = start
        _set_state(conn, "rollup_1m_id", int(newest_id))
    return done


def apply_retention(
    engine: Engine, *, raw_days: float, rollup_1m_days: float, now_ms: int | None = None
) -> dict[str, int]:
    """Delete raw samples and minute rollups older than their retention (never the 1 h rollup
    data newer than a year), and telemetry blocks older than the longest window or the raw
    retention. Returns rows deleted per table."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    deleted = {"raw": 0, "rollup_1m": 0, "blocks": 0}
    with engine.begin() as conn:
        # Only raw data that the minute rollup has already covered may go.
        covered = _state(conn, "rollup_1m") or 0
        raw_cutoff = min(now_ms - int(raw_days * 86_400_000), covered)
        result = conn.execute(delete(SAMPLES).where(SAMPLES.c.ts_ms < raw_cutoff))
        deleted["raw"] = result.rowcount or 0
        covered_1h = _state(conn, "rollup_1h") or 0
        cutoff_1m = min(now_ms - int(rollup_1m_days * 86_400_000), covered_1h)
        result = conn.execute(delete(ROLLUP_1M).where(ROLLUP_1M.c.bucket_ms < cutoff_1m))
        deleted["rollup_1m"] = result.rowcount or 0
        blocks_cutoff = now_ms - int(min(raw_days * 86_400, MAX_WINDOW_S) * 1000)
        result = conn.execute(delete(BLOCKS).where(BLOCKS.c.ts_max_ms < blocks_cutoff))
        deleted["blocks"] = result.rowcount or 0
    return deleted


def analyse(engine: Engine) -> None:
    """Refresh planner statistics after a bulk load (PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE telemetry_samples"))
