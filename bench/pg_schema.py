"""A PostgreSQL schema of its own for a benchmark, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from app.db.session import make_engine

PG_URL = os.environ.get("WATERLINE_BENCH_DATABASE_URL") or os.environ.get(
    "WATERLINE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Unavailable(RuntimeError):
    pass


@contextmanager
def bench_schema() -> Iterator[Engine]:
    """An engine on a fresh schema of PG_URL; raises Unavailable if PostgreSQL is not there."""
    schema = f"wl_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        raise Unavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    sep = "&" if "?" in PG_URL else "?"
    engine = make_engine(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
