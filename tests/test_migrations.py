"""Alembic owns the schema: upgrade to head and downgrade to base on both databases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def _backfill(engine) -> None:  # type: ignore[no-untyped-def]
    """Upgrading to 0008 packs the last hour of raw samples into telemetry blocks: the window
    reads see the same samples right after the upgrade (and nothing older than the hour)."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from app.telemetry import load_window_rows

    migrate.upgrade(engine, "0007")
    t0 = 1_800_000_000_000
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO switches (id, name, role, mgmt_host, mgmt_port, driver, model, asic, "
            "buffer_bytes, credentials_ref, username, enabled, health, health_reason, "
            "created_at, updated_at) VALUES (7, 'tor-1', 'tor', '10.0.0.1', 22, 'mock', '', '', "
            "33554432, '', 'admin', true, 'ok', '', '2026-12-08', '2026-12-08')"))
        conn.execute(text("INSERT INTO interfaces (id, switch_id, name, speed_gbps, peer, "
                          "cable_m) VALUES (70, 7, 'Ethernet0', 100, '', 3)"))
        for k in range(-3, 4):  # three samples over an hour before the newest, four within
            ts = t0 + k * 1_000_000
            conn.execute(text(
                "INSERT INTO telemetry_samples (switch_id, interface_id, priority, ts_ms, "
                "tx_bytes_per_s, occupancy_bytes, watermark_bytes) "
                "VALUES (7, 70, 3, :ts, :rate, :occ, NULL)"),
                {"ts": ts, "rate": 1e9 + k, "occ": 1000 * (k + 3)})
    migrate.upgrade(engine)
    with Session(engine) as session:
        got = load_window_rows(session, start_ms=0, end_ms=t0 + 10**9, priorities=[3])
    assert got.keys == [(7, 70, 3)] and got.counts.tolist() == [4]
    assert got.ts_ms[0].tolist() == [t0 + k * 1_000_000 for k in range(4)]
    assert got.fields["tx_bytes_per_s"][0].tolist() == [1e9 + k for k in range(4)]
    assert got.fields["occupancy_bytes"][0].tolist() == [3000.0, 4000.0, 5000.0, 6000.0]
    assert np.isnan(got.fields["watermark_bytes"][0]).all()
    assert np.isnan(got.fields["drop_packets_per_s"][0]).all()


def test_sqlite_upgrade_packs_the_last_hour_into_blocks(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    _backfill(engine)
    engine.dispose()


@pytest.mark.postgres
def test_postgres_upgrade_packs_the_last_hour_into_blocks() -> None:
    engine, schema = new_pg_schema("wl_blk")
    try:
        _backfill(engine)
    finally:
        engine.dispose()
        drop_pg_schema(schema)


@pytest.mark.postgres
def test_postgres_port_profiles_leave_room_for_in_place_updates() -> None:
    from sqlalchemy import text

    engine, schema = new_pg_schema("wl_ff")
    try:
        migrate.upgrade(engine)
        query = text("SELECT reloptions FROM pg_class WHERE relname = 'port_profiles' AND "
                     "relnamespace = (SELECT oid FROM pg_namespace "
                     "WHERE nspname = current_schema())")
        with engine.connect() as conn:
            assert conn.execute(query).scalar() == ["fillfactor=60"]
        migrate.downgrade(engine, "0008")
        with engine.connect() as conn:
            assert conn.execute(query).scalar() is None
    finally:
        engine.dispose()
        drop_pg_schema(schema)
