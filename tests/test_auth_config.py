"""Token hashing and settings validation."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from app.auth import TokenError, authenticate, create_token
from app.config import SettingsError, load_settings
from app.db.models import ApiToken
from tests.conftest import Database


def test_token_stored_only_as_hash(db: Database) -> None:
    with db.session() as s:
        token = create_token(s, name="ops", role="operator")
        s.commit()
        row = s.scalars(select(ApiToken)).one()
    assert token.startswith("wl_") and len(token) > 40
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.token_hash, row.prefix, row.name)
    with db.session() as s:
        principal = authenticate(s, token)
        assert principal is not None and principal.role == "operator"
        assert principal.has("viewer") and principal.has("operator") and not principal.has("admin")
        assert authenticate(s, token + "x") is None
        assert authenticate(s, "not-a-token") is None


def test_revoked_token_refused(db: Database) -> None:
    with db.session() as s:
        token = create_token(s, name="old", role="admin")
        s.scalars(select(ApiToken)).one().revoked = True
        s.commit()
    with db.session() as s:
        assert authenticate(s, token) is None


def test_token_name_and_role_checked(sqlite_db: Database) -> None:
    with sqlite_db.session() as s:
        with pytest.raises(TokenError, match="unknown role"):
            create_token(s, name="x", role="root")
        with pytest.raises(TokenError, match="token name"):
            create_token(s, name="bad name;", role="viewer")
        create_token(s, name="dup", role="viewer")
        with pytest.raises(TokenError, match="already exists"):
            create_token(s, name="dup", role="viewer")


def test_settings_defaults() -> None:
    settings = load_settings({})
    assert settings.database_url.startswith("sqlite:///")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_unknown_setting_named() -> None:
    with pytest.raises(SettingsError, match="WATERLINE_DATABSE_URL"):
        load_settings({"WATERLINE_DATABSE_URL": "sqlite:///x.db"})


@pytest.mark.parametrize(
    "env,name",
    [
        ({"WATERLINE_PORT": "eighty"}, "WATERLINE_PORT"),
        ({"WATERLINE_PORT": "70000"}, "WATERLINE_PORT"),
        ({"WATERLINE_LOG_LEVEL": "chatty"}, "WATERLINE_LOG_LEVEL"),
        ({"WATERLINE_DATABASE_URL": "mysql://x"}, "WATERLINE_DATABASE_URL"),
    ],
)
def test_invalid_setting_named(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(env)


def test_test_harness_variables_allowed() -> None:
    load_settings({"WATERLINE_TEST_DATABASE_URL": "x", "WATERLINE_REQUIRE_POSTGRES": "1"})


def test_postgres_url_normalised() -> None:
    s = load_settings({"WATERLINE_DATABASE_URL": "postgresql://u@h/db"})
    assert s.database_url == "postgresql+psycopg://u@h/db"
