"""The `waterline` CLI: generate, import/export, tokens, settings errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app
from app.db.models import ApiToken
from app.inventory import parse_inventory
from tests.conftest import Database

runner = CliRunner()


@pytest.fixture
def env_db(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("WATERLINE_DATABASE_URL", db.url)
    return db


def test_generate_import_export_round_trip(env_db: Database, tmp_path: Path) -> None:
    inv_file = tmp_path / "fabric.yaml"
    r = runner.invoke(app, ["fabric", "generate", "--pods", "3", "--access-speed-gbps", "200",
                            "--driver", "sonic", "-o", str(inv_file)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["inventory", "import", str(inv_file)])
    assert r.exit_code == 0, r.output
    assert "14 switches created" in r.output
    r = runner.invoke(app, ["inventory", "export"])
    assert r.exit_code == 0
    # same content once both are read through the validator (defaults filled in)
    assert parse_inventory(r.stdout) == parse_inventory(inv_file.read_text())
    assert yaml.safe_load(r.stdout)["switches"][0]["name"] == "spine-1"


def test_bad_import_names_entry_and_exits_2(env_db: Database, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("switches:\n  - name: s1\n    role: core\n    mgmt_host: h\n"
                   "    driver: mock\n    buffer_bytes: 1000\n")
    r = runner.invoke(app, ["inventory", "import", str(bad)])
    assert r.exit_code == 2
    assert "switches[0] (s1) > role" in r.stderr
    r = runner.invoke(app, ["inventory", "import", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "missing.yaml" in r.stderr


def test_token_create_prints_once_stores_hash(env_db: Database) -> None:
    r = runner.invoke(app, ["token", "create", "--role", "operator", "--name", "ops-bot"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert token.startswith("wl_")
    with env_db.session() as s:
        row = s.scalars(select(ApiToken)).one()
        assert row.role == "operator" and row.token_hash != token
    listing = runner.invoke(app, ["token", "list"])
    assert "ops-bot" in listing.stdout and token not in listing.stdout
    r = runner.invoke(app, ["token", "create", "--role", "god", "--name", "x"])
    assert r.exit_code == 2 and "unknown role" in r.stderr


def test_unknown_setting_stops_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATERLINE_PROT", "9000")
    r = runner.invoke(app, ["inventory", "export"])
    assert r.exit_code == 2 and "WATERLINE_PROT" in r.stderr


def test_entry_point_help() -> None:
    out = subprocess.run([sys.executable, "-m", "app.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("serve", "migrate", "fabric", "inventory", "token"):
        assert command in out


def test_a_missing_unmigrated_or_unreachable_database_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No traceback, no database created at a mistyped path, no password shown."""
    missing = tmp_path / "nowhere" / "x.db"
    monkeypatch.setenv("WATERLINE_DATABASE_URL", f"sqlite:///{missing}")
    for args in (["token", "list"], ["inventory", "export"], ["daemon", "--once"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert "no database at" in r.output and "run `waterline migrate`" in r.output, r.output
    assert not missing.parent.exists()
    old = tmp_path / "old.db"
    monkeypatch.setenv("WATERLINE_DATABASE_URL", f"sqlite:///{old}")
    assert runner.invoke(app, ["migrate", "0005"]).exit_code == 0
    r = runner.invoke(app, ["token", "list"])
    assert r.exit_code == 2 and "is at schema 0005" in r.output, r.output
    monkeypatch.setenv("WATERLINE_DATABASE_URL",
                       "postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/x")
    r = runner.invoke(app, ["token", "list"])
    assert r.exit_code == 2 and "unreachable" in r.output and "s3cret" not in r.output, r.output
