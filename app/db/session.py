"""Engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, select
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

STATEMENT_TIMEOUT_MS = 120_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def upsert_insert(dialect_name: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can take ``on_conflict_do_nothing`` / ``on_conflict_do_update``, for
    the two databases Waterline runs on."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def bulk_upsert(session: Session, table: Table, columns: Sequence[str],
                rows: Sequence[tuple[Any, ...]],
                updates: Callable[[Any, Any], dict[str, Any]]) -> None:
    """Insert ``rows`` (tuples of ``columns``; a JSON column's value as its JSON text) into
    ``table`` in one statement; a row whose primary key is there already is updated with
    ``updates(table, excluded)`` instead (``excluded``: the row offered). For the daemon's
    fleet-wide writes (128,000 port profiles a cycle): on PostgreSQL the rows are COPYed into
    a temporary table the statement reads (128,000 rows: 0.8 s, where one array parameter
    per column took 1.1 s and the driver's executemany ~3 s); on SQLite the statement is
    compiled once and run by the driver's executemany of the plain tuples (SQLAlchemy's
    per-row parameter handling cost 0.3 s)."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    upsert = upsert_insert(dialect.name, table)
    raw: Any = conn.connection.dbapi_connection
    staging = f"wl_new_{table.name}"
    if dialect.name == "postgresql":
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
                             f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with raw.cursor() as cursor, cursor.copy(
                f"COPY {staging} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        new = sql_table(staging, *(sql_column(c) for c in columns))
        upsert = upsert.from_select(list(columns), select(*(new.c[c] for c in columns)))
    statement = upsert.on_conflict_do_update(index_elements=list(table.primary_key.columns),
                                             set_=updates(table, upsert.excluded))
    if dialect.name == "postgresql":
        session.execute(statement)
        conn.exec_driver_sql(f"TRUNCATE {staging}")  # the next call in this transaction
        return
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    if compiled.positiontup != list(columns):  # the tuples' order is the statement's
        raise RuntimeError(f"{table.name} upsert binds {compiled.positiontup}")
    cursor = raw.cursor()
    try:
        cursor.executemany(str(compiled), rows)
    finally:
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite make the file's directory, enable foreign keys and WAL."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", 30)
        if database and database != ":memory:":
            # a connection per API worker thread (40) and the background loops: a burst of
            # requests waits on SQLite's write lock, not on the pool (5 + 10 by default)
            kwargs.setdefault("pool_size", 10)
            kwargs.setdefault("max_overflow", 50)
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    connect_args = dict(kwargs.pop("connect_args", {}))
    # A database that accepts connections but never answers must not hang the service.
    connect_args.setdefault("connect_timeout", 10)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _statement_timeout(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        cursor.close()
        dbapi_conn.commit()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
