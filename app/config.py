"""Settings from `WATERLINE_*` environment variables (pydantic-settings).

Unknown `WATERLINE_*` variables and invalid values stop start-up with a message naming the
variable, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.telemetry_blocks import MAX_WINDOW_S

ENV_PREFIX = "WATERLINE_"
# Variables of the test harness and CI, read by the tests rather than by the service.
_NON_SETTINGS = ("WATERLINE_TEST_", "WATERLINE_REQUIRE_POSTGRES")

DEFAULT_DATABASE_URL = "sqlite:///./var/waterline.db"


class SettingsError(Exception):
    """Start-up refused because of the environment; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg://... in production",
    )
    host: str = Field("127.0.0.1", description="Bind address of the API")
    port: int = Field(8000, ge=1, le=65535, description="Bind port of the API")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    admin_token_file: str = Field(
        "./var/admin.token",
        description="Where `make run` writes a bootstrap admin token (mode 0600) if none exists",
    )
    fabric_metrics: bool = Field(
        True,
        description="Export fabric telemetry on the API's /metrics (turn off when collector "
        "processes export it, to avoid duplicate series)",
    )
    embedded_collector: Literal["all", "mock", "off"] = Field(
        "all",
        description="What `waterline serve` polls itself: all switches (single process), only "
        "the virtual fabric's mock switches (when `waterline collector` processes poll the rest), "
        "or nothing",
    )
    poll_interval_s: float = Field(10.0, ge=1, le=3600, description="Default poll interval")
    poll_timeout_s: float = Field(10.0, ge=0.5, le=300, description="Per-switch poll timeout")
    poll_concurrency: int = Field(32, ge=1, le=1024, description="Switches polled at once")
    raw_retention_days: float = Field(7.0, gt=0, le=3650, description="Raw sample retention")
    rollup_1m_retention_days: float = Field(
        90.0, gt=0, le=3650, description="1-minute rollup retention (hourly is kept)"
    )
    embedded_daemon: bool = Field(
        True, description="`waterline serve` also runs the auto-tuning daemon"
    )
    tuner_mode: Literal["off", "observe", "propose", "auto"] = Field(
        "propose", description="The daemon's mode on first start (then kept in the database)"
    )
    tuner_interval_s: float = Field(60.0, ge=1, le=86_400, description="Daemon cycle period")
    tuner_window_s: float = Field(120.0, ge=10, le=MAX_WINDOW_S, description="Telemetry window")
    tuner_verify_s: float = Field(
        120.0, ge=5, le=86_400, description="How long a tuner change is watched before kept"
    )
    sim_seed: int = Field(0, ge=0, description="Seed of the virtual fabric behind mock switches")
    sim_scenario: str = Field(
        "", description="YAML traffic scenario for the virtual fabric (file path; empty: mix)"
    )
    credentials_env_prefixes: str = Field(
        "SWITCH_", description="Comma-separated prefixes a credentials reference env:NAME must "
        "start with"
    )
    secrets_dir: str = Field(
        "/etc/waterline/secrets", description="Where credentials references file:/path may point"
    )
    demo_switches: bool = Field(
        True, description="Load the demo virtual fabric when the inventory is empty"
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+pysqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://") or value.startswith("postgresql+psycopg2"):
            # psycopg 3 is the driver we ship.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("embedded_collector", mode="before")
    @classmethod
    def _collector_bool(cls, value: object) -> object:
        # true/false read as all/off
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return "all"
        if isinstance(value, str) and value.lower() in ("false", "0", "no"):
            return "off"
        if isinstance(value, bool):
            return "all" if value else "off"
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def _unknown_variables(environ: dict[str, str]) -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        key
        for key in environ
        if key.upper().startswith(ENV_PREFIX)
        and key.upper() not in known
        and not key.upper().startswith(_NON_SETTINGS)
    )


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise SettingsError naming the offending variable."""
    env = dict(os.environ if environ is None else environ)
    unknown = _unknown_variables(env)
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]} (known: "
                            + ", ".join(ENV_PREFIX + n.upper() for n in Settings.model_fields)
                            + ")")
    values = {
        name: env[ENV_PREFIX + name.upper()]
        for name in Settings.model_fields
        if ENV_PREFIX + name.upper() in env
    }
    try:
        # Values are passed explicitly (not read from the process environment again) so that
        # a caller-supplied mapping is honoured exactly.
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise SettingsError(f"invalid {ENV_PREFIX}{field.upper()}: {first['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
