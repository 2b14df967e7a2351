"""Change-set request and response schemas. Strict types: a number must be a JSON number, a
name must match the inventory's patterns, so nonsense is a 422 before any switch is touched."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from app.drivers.models import QosConfig, Waterlines
from app.inventory import INTERFACE_NAME_PATTERN, MAX_BUFFER_BYTES, SWITCH_NAME_PATTERN
from app.timestamps import UtcDatetime

Bytes = Annotated[StrictInt, Field(gt=0, le=MAX_BUFFER_BYTES)]
Priority = Annotated[int, Field(ge=0, le=7)]


class WaterlinesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kmin_bytes: Bytes
    kmax_bytes: Bytes
    pmax: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)]
    xoff_bytes: Bytes | None = None
    xon_bytes: Bytes | None = None
    headroom_bytes: Bytes | None = None
    alpha: Annotated[StrictFloat | StrictInt, Field(gt=0, le=8)] | None = None

    @field_validator("pmax")
    @classmethod
    def _whole_percent(cls, value: float) -> float:
        # Both NOSes take the marking probability as an integer percentage.
        if abs(value * 100 - round(value * 100)) > 1e-9 or round(value * 100) < 1:
            raise ValueError("must be a whole percent from 1 % (0.01 steps): switches take "
                             "an integer percentage")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> WaterlinesIn:
        if self.kmin_bytes >= self.kmax_bytes:
            raise ValueError(f"kmin_bytes ({self.kmin_bytes}) must be below kmax_bytes "
                             f"({self.kmax_bytes})")
        if self.xon_bytes is not None and self.xoff_bytes is not None \
                and self.xon_bytes >= self.xoff_bytes:
            raise ValueError(f"xon_bytes ({self.xon_bytes}) must be below xoff_bytes "
                             f"({self.xoff_bytes})")
        return self

    def to_model(self) -> Waterlines:
        return Waterlines(**{**self.model_dump(), "pmax": float(self.pmax),
                             "alpha": None if self.alpha is None else float(self.alpha)})


class TargetsIn(BaseModel):
    """Which switches: every given filter must match (switches AND roles AND pods); ``all``
    targets the whole fabric explicitly. ``interfaces`` limits the ports configured."""

    model_config = ConfigDict(extra="forbid")

    all: bool = False
    switches: list[Annotated[str, Field(pattern=SWITCH_NAME_PATTERN)]] = Field(
        default_factory=list, max_length=10_000)
    roles: list[Literal["spine", "leaf", "tor"]] = Field(default_factory=list)
    pods: list[Annotated[int, Field(ge=0, le=100_000)]] = Field(default_factory=list)
    interfaces: list[Annotated[str, Field(pattern=INTERFACE_NAME_PATTERN)]] = Field(
        default_factory=list, max_length=1024)

    @model_validator(mode="after")
    def _something(self) -> TargetsIn:
        if not (self.all or self.switches or self.roles or self.pods):
            raise ValueError("name switches, roles or pods (or set all: true)")
        return self


class BaselineIn(BaseModel):
    """The RoCE baseline: PFC on the lossless priorities, ECN on their queues."""

    model_config = ConfigDict(extra="forbid")

    pfc_priorities: list[Priority] = Field(min_length=1, max_length=8)
    ecn_queues: list[Priority] = Field(min_length=1, max_length=8)


class ChangeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: TargetsIn
    waterlines: dict[Priority, WaterlinesIn] = Field(default_factory=dict, max_length=8)
    baseline: BaselineIn | None = None
    wave_size: Annotated[int, Field(ge=1, le=500)] = 10
    on_failure: Literal["stop", "rollback_all"] = "stop"
    description: Annotated[str, Field(max_length=500, pattern=r"^[\x20-\x7e]*$")] = ""
    dry_run: bool = False

    @model_validator(mode="after")
    def _something_to_do(self) -> ChangeCreate:
        if not self.waterlines and self.baseline is None:
            raise ValueError("a change needs waterlines or a baseline")
        return self


class ChangeResultOut(BaseModel):
    switch: str
    wave: int
    state: str
    reason: str
    diff: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    updated_at: UtcDatetime


class ChangeOut(BaseModel):
    id: int
    status: str
    created_by: str
    created_at: UtcDatetime
    source: str
    description: str
    targets: dict[str, Any]
    intent: dict[str, Any]
    wave_size: int
    approved_by: str | None
    approved_at: UtcDatetime | None
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    reason: str
    results: list[ChangeResultOut]


class ChangeList(BaseModel):
    total: int
    items: list[ChangeOut]


def qos_to_json(config: QosConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def qos_from_json(data: dict[str, Any]) -> QosConfig:
    return QosConfig.model_validate(data)
