"""Shared fixtures: migrated databases (SQLite and PostgreSQL), the API client and tokens.

PostgreSQL: WATERLINE_TEST_DATABASE_URL (default: the local `test` database). Each test session
works in its own schema, migrated once with Alembic; each test starts from empty tables. When
WATERLINE_REQUIRE_POSTGRES=1 (CI), an unreachable PostgreSQL fails the tests instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import migrate
from app.db.models import Base
from app.db.session import make_engine, make_session_factory

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_URL = os.environ.get("WATERLINE_TEST_DATABASE_URL", DEFAULT_PG_URL)
REQUIRE_PG = os.environ.get("WATERLINE_REQUIRE_POSTGRES") == "1"


def pg_unavailable(reason: str) -> None:
    if REQUIRE_PG:
        pytest.fail(f"PostgreSQL is required (WATERLINE_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


def pg_schema_url(schema: str) -> str:
    """The test URL with the schema as search_path (psycopg passes `options` to libpq)."""
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options=-csearch_path%3D{schema}"


def new_pg_schema(prefix: str = "wl") -> tuple[Engine, str]:
    """A fresh, empty schema; returns an engine whose search_path is that schema."""
    try:
        admin = make_engine(PG_URL, pool_size=1, max_overflow=0)
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        pg_unavailable(f"{PG_URL.split('@')[-1]} did not answer ({type(exc).__name__})")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return make_engine(pg_schema_url(schema)), schema


def drop_pg_schema(schema: str) -> None:
    admin = make_engine(PG_URL, pool_size=1, max_overflow=0)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@dataclass
class Database:
    backend: str
    url: str
    engine: Engine
    factory: sessionmaker[Session]

    def session(self) -> Session:
        return self.factory()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "waterline.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_migrated() -> Iterator[tuple[Engine, str]]:
    engine, schema = new_pg_schema("wl_test")
    migrate.upgrade(engine)
    yield engine, schema
    engine.dispose()
    drop_pg_schema(schema)


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "waterline.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        yield Database("sqlite", url, engine, make_session_factory(engine))
        engine.dispose()
        return
    engine, _schema = request.getfixturevalue("_pg_migrated")
    _truncate_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    yield Database("postgres", url, engine, make_session_factory(engine))


@pytest.fixture
def sqlite_db(tmp_path: Path, _sqlite_template: Path) -> Iterator[Database]:
    """SQLite only, for tests whose subject is not the database."""
    path = tmp_path / "waterline.db"
    shutil.copy(_sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    yield Database("sqlite", url, engine, make_session_factory(engine))
    engine.dispose()


@dataclass
class Api:
    client: object  # fastapi.testclient.TestClient
    db: Database
    tokens: dict[str, str]

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str = "viewer", **kw: object):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers=self.headers(role), **kw)  # type: ignore[attr-defined]

    def post(self, path: str, role: str = "admin", **kw: object):  # type: ignore[no-untyped-def]
        return self.client.post(path, headers=self.headers(role), **kw)  # type: ignore[attr-defined]

    def patch(self, path: str, role: str = "admin", **kw: object):  # type: ignore[no-untyped-def]
        return self.client.patch(path, headers=self.headers(role), **kw)  # type: ignore[attr-defined]

    def put(self, path: str, role: str = "admin", **kw: object):  # type: ignore[no-untyped-def]
        return self.client.put(path, headers=self.headers(role), **kw)  # type: ignore[attr-defined]

    def delete(self, path: str, role: str = "admin", **kw: object):  # type: ignore[no-untyped-def]
        return self.client.delete(path, headers=self.headers(role), **kw)  # type: ignore[attr-defined]


def make_tokens(database: Database) -> dict[str, str]:
    from app.auth import create_token

    with database.session() as session:
        tokens = {role: create_token(session, name=f"test-{role}", role=role)
                  for role in ("viewer", "operator", "admin")}
        session.commit()
    return tokens


@pytest.fixture
def api(db: Database) -> Iterator[Api]:
    """The API over HTTP (TestClient) on a migrated database, with one token per role."""
    from fastapi.testclient import TestClient

    from app.api.main import create_app
    from app.config import Settings

    settings = Settings.model_validate({"database_url": db.url})
    app = create_app(settings, engine=db.engine)
    with TestClient(app) as client:
        yield Api(client, db, make_tokens(db))
