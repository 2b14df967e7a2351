"""Request and response schemas (Create / Update / Public), sharing the inventory's validators."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.drivers.base import KNOWN_DRIVERS
from app.inventory import (
    CREDENTIALS_REF_PATTERN,
    MAX_BUFFER_BYTES,
    PEER_PATTERN,
    InterfaceEntry,
    MgmtHost,
    SwitchEntry,
    coerce_speed_gbps,
)
from app.timestamps import UtcDatetime

SwitchCreate = SwitchEntry
InterfaceCreate = InterfaceEntry


class SwitchUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["spine", "leaf", "tor"] | None = None
    pod: Annotated[int, Field(strict=True, ge=0, le=100_000)] | None = None
    mgmt_host: MgmtHost | None = None
    mgmt_port: Annotated[int, Field(strict=True, ge=1, le=65535)] | None = None
    driver: str | None = None
    model: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9 ._()/+-]*$")] | None = None
    asic: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9 ._()/+-]*$")] | None = None
    buffer_bytes: Annotated[int, Field(strict=True, gt=0, le=MAX_BUFFER_BYTES)] | None = None
    credentials_ref: Annotated[str, Field(pattern=CREDENTIALS_REF_PATTERN)] | None = None
    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    enabled: Annotated[bool, Field(strict=True)] | None = None
    poll_interval_s: Annotated[float, Field(ge=1, le=3600)] | None = None

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        if value is not None and value not in KNOWN_DRIVERS:
            raise ValueError(f"unknown driver {value!r}; known: {', '.join(KNOWN_DRIVERS)}")
        return value


class InterfaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speed_gbps: int | None = None
    peer: Annotated[str, Field(pattern=PEER_PATTERN)] | None = None
    cable_m: Annotated[float, Field(ge=0, le=10_000)] | None = None

    @field_validator("speed_gbps", mode="before")
    @classmethod
    def _speed(cls, value: object) -> object:
        if value is None:
            return None
        return coerce_speed_gbps(value)


class InterfacePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    speed_gbps: int
    peer: str
    cable_m: float


class SwitchPublic(BaseModel):
    """A switch as the API shows it: the credentials reference is never returned."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    pod: int | None
    mgmt_host: str
    mgmt_port: int
    driver: str
    model: str
    asic: str
    buffer_bytes: int
    username: str
    enabled: bool
    poll_interval_s: float | None
    health: str
    health_reason: str
    last_poll_at: UtcDatetime | None
    last_ok_at: UtcDatetime | None
    has_credentials: bool
    interface_count: int


class SwitchDetail(SwitchPublic):
    interfaces: list[InterfacePublic]


class SwitchList(BaseModel):
    total: int
    items: list[SwitchPublic]
