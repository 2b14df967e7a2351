"""Alembic owns the schema: upgrade to head and downgrade to base on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from app.db import migrate
from app.db.models import Base
from app.db.session import make_engine
from tests.conftest import drop_pg_schema, new_pg_schema

EXPECTED_TABLES = {t.name for t in Base.metadata.sorted_tables}


def _roundtrip(engine) -> None:  # type: ignore[no-untyped-def]
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert tables >= EXPECTED_TABLES
    # The migrated schema matches the models (indexes included): what autogenerate would add
    # is empty.
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set()
    migrate.upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES


def test_sqlite_upgrade_downgrade(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    _roundtrip(engine)
    engine.dispose()


@pytest.mark.postgres
def test_postgres_upgrade_downgrade() -> None:
    engine, schema = new_pg_schema("wl_mig")
    try:
        _roundtrip(engine)
    finally:
        engine.dispose()
        drop_pg_schema(schema)


def test_telemetry_index_serves_time_range_per_interface(db) -> None:  # type: ignore[no-untyped-def]
    indexes = inspect(db.engine).get_indexes("telemetry_samples")
    uniques = inspect(db.engine).get_unique_constraints("telemetry_samples")
    columns = [tuple(i["column_names"]) for i in indexes] + [
        tuple(u["column_names"]) for u in uniques
    ]
    assert ("switch_id", "interface_id", "priority", "ts_ms") in columns


def test_readyz_wants_the_schema_at_head(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from app.api.main import create_app
    from app.config import Settings

    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0004")
    app = create_app(Settings.model_validate({"database_url": url}), engine=engine)
    with TestClient(app) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and "waterline migrate" in r.text
        migrate.upgrade(engine)
        assert client.get("/readyz").status_code == 200
    engine.dispose()
