"""Inventory: the YAML file format, its validation, and import/export to the database.

Import is all-or-nothing: the whole file is validated (syntax, schema, cross references) before
a single row is written, and the writes happen in one transaction. Errors name the entry and
the field, e.g. ``switches[3] (tor-p1-2) > interfaces[1] (Ethernet4) > speed_gbps: ...``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, selectinload

from app.db.models import Fabric, Interface, Link, Switch
from app.drivers.base import KNOWN_DRIVERS

SWITCH_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
INTERFACE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9/.:-]{0,63}$"
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def check_mgmt_host(value: str) -> str:
    """A management address: an IPv4 or IPv6 address (brackets dropped) or a DNS name
    (RFC 1123 labels); a name of digits and dots only must be a valid IPv4 address."""
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if ":" in host:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv6 address") from None
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None
    labels = host.split(".")
    if not 0 < len(host) <= 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a host name or an IP address")
    return host


MgmtHost = Annotated[str, AfterValidator(check_mgmt_host)]
MAX_INTERFACES = 1024  # ports of one switch (breakouts included) an entry may list
# A reference to where the secret lives, never the secret itself.
CREDENTIALS_REF_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]{0,127}|file:/[A-Za-z0-9._/-]{1,250})?$"
PEER_PATTERN = r"^[A-Za-z0-9._:/ -]{0,128}$"
# The speeds the PFC headroom formula knows (IEEE 802.3 pause quanta in REFERENCE.md).
SPEEDS_GBPS = (10, 25, 40, 50, 100, 200, 400)
MAX_BUFFER_BYTES = 1 << 34  # 16 GiB: no switch ASIC comes close


def coerce_speed_gbps(value: object) -> int:
    """A port speed in Gbit/s: a number (or numeric string) among the speeds Ethernet has."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number of Gbit/s")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"must be a number of Gbit/s, got {value!r}") from None
    if number not in SPEEDS_GBPS:
        raise ValueError(f"must be one of {', '.join(map(str, SPEEDS_GBPS))} Gbit/s")
    return int(number)


# libyaml's C implementation when PyYAML has it (100x faster on big fabrics); same safe subset.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YamlDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class InventoryError(ValueError):
    """A bad inventory file; the message names the entry and the field."""


SwitchName = Annotated[str, Field(pattern=SWITCH_NAME_PATTERN)]
InterfaceName = Annotated[str, Field(pattern=INTERFACE_NAME_PATTERN)]


class InterfaceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: InterfaceName
    speed_gbps: int
    peer: Annotated[str, Field(pattern=PEER_PATTERN)] = ""
    cable_m: Annotated[float, Field(ge=0, le=10_000)] = 5.0

    @field_validator("speed_gbps", mode="before")
    @classmethod
    def _speed_number(cls, value: object) -> int:
        return coerce_speed_gbps(value)


class SwitchEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SwitchName
    role: Literal["spine", "leaf", "tor"]
    pod: Annotated[int, Field(strict=True, ge=0, le=100_000)] | None = None
    mgmt_host: MgmtHost
    mgmt_port: Annotated[int, Field(strict=True, ge=1, le=65535)] = 22
    driver: str
    model: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9 ._()/+-]*$")] = ""
    asic: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9 ._()/+-]*$")] = ""
    buffer_bytes: Annotated[int, Field(strict=True, gt=0, le=MAX_BUFFER_BYTES)]
    credentials_ref: Annotated[str, Field(pattern=CREDENTIALS_REF_PATTERN)] = ""
    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = "admin"
    enabled: Annotated[bool, Field(strict=True)] = True
    poll_interval_s: Annotated[float, Field(ge=1, le=3600)] | None = None
    interfaces: list[InterfaceEntry] = Field(default_factory=list, max_length=MAX_INTERFACES)

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value not in KNOWN_DRIVERS:
            raise ValueError(f"unknown driver {value!r}; known: {', '.join(KNOWN_DRIVERS)}")
        return value


class LinkEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    a_switch: SwitchName
    a_interface: InterfaceName
    b_switch: SwitchName
    b_interface: InterfaceName


class FabricEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=SWITCH_NAME_PATTERN)] = "fabric"
    lossless_priorities: list[Annotated[int, Field(ge=0, le=7)]] = Field(
        default_factory=lambda: [3]
    )
    cnp_priority: Annotated[int, Field(ge=0, le=7)] = 6


class InventoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fabric: FabricEntry = Field(default_factory=FabricEntry)
    switches: list[SwitchEntry] = Field(default_factory=list)
    links: list[LinkEntry] = Field(default_factory=list)


def _describe_path(raw: Any, loc: Sequence[int | str]) -> str:
    """Render a pydantic error location with the entries' names: switches[3] (tor-1) > role."""
    parts: list[str] = []
    node: Any = raw
    for step in loc:
        if isinstance(step, int):
            label = f"[{step}]"
            try:
                node = node[step]
            except (IndexError, KeyError, TypeError):
                node = None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                label += f" ({node['name']})"
            if parts:
                parts[-1] += label
            else:
                parts.append(label)
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    return " > ".join(parts) or "(file)"


def format_validation_error(raw: Any, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors()[:20]:
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{_describe_path(raw, error['loc'])}: {message}")
    return "; ".join(lines)


def parse_inventory(text: str) -> InventoryFile:
    """Parse and fully validate inventory YAML; raise InventoryError naming entry and field."""
    try:
        raw = yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(f"YAML syntax error{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InventoryError("(file): must be a mapping with fabric, switches and links")
    try:
        inventory = InventoryFile.model_validate(raw)
    except ValidationError as exc:
        raise InventoryError(format_validation_error(raw, exc)) from None
    check_references(inventory)
    return inventory


def check_references(inventory: InventoryFile) -> None:
    """Cross-entry checks: unique names, links between existing, unused interfaces."""
    interfaces: dict[str, set[str]] = {}
    for i, switch in enumerate(inventory.switches):
        if switch.name in interfaces:
            raise InventoryError(f"switches[{i}] ({switch.name}) > name: duplicate switch name")
        names: set[str] = set()
        for j, interface in enumerate(switch.interfaces):
            if interface.name in names:
                raise InventoryError(
                    f"switches[{i}] ({switch.name}) > interfaces[{j}] ({interface.name}) > name: "
                    "duplicate interface name"
                )
            names.add(interface.name)
        interfaces[switch.name] = names
    used: set[tuple[str, str]] = set()
    for k, link in enumerate(inventory.links):
        for side in ("a", "b"):
            sw = getattr(link, f"{side}_switch")
            ifname = getattr(link, f"{side}_interface")
            if sw not in interfaces:
                raise InventoryError(f"links[{k}] > {side}_switch: unknown switch {sw!r}")
            if ifname not in interfaces[sw]:
                raise InventoryError(
                    f"links[{k}] > {side}_interface: switch {sw!r} has no interface {ifname!r}"
                )
            if (sw, ifname) in used:
                raise InventoryError(
                    f"links[{k}] > {side}_interface: {sw}:{ifname} is already in another link"
                )
            used.add((sw, ifname))
        if (link.a_switch, link.a_interface) == (link.b_switch, link.b_interface):
            raise InventoryError(f"links[{k}]: a link cannot connect an interface to itself")


@dataclass(frozen=True)
class ImportSummary:
    switches_created: int
    switches_updated: int
    interfaces: int
    links: int


def apply_switch_entry(switch: Switch, entry: SwitchEntry) -> None:
    """Copy a validated entry onto a switch row, syncing its interfaces by name."""
    for field in ("role", "pod", "mgmt_host", "mgmt_port", "driver", "model", "asic",
                  "buffer_bytes", "credentials_ref", "username", "enabled", "poll_interval_s"):
        setattr(switch, field, getattr(entry, field))
    existing = {i.name: i for i in switch.interfaces}
    wanted = {i.name for i in entry.interfaces}
    for interface in list(switch.interfaces):
        if interface.name not in wanted:
            switch.interfaces.remove(interface)
    for item in entry.interfaces:
        row = existing.get(item.name)
        if row is None:
            row = Interface(name=item.name)
            switch.interfaces.append(row)
        row.speed_gbps = item.speed_gbps
        row.peer = item.peer
        row.cable_m = item.cable_m


def import_inventory(session: Session, inventory: InventoryFile) -> ImportSummary:
    """Upsert the validated inventory (switches by name, their interfaces, links, fabric).

    Switches absent from the file are left alone. The caller owns the transaction.
    """
    fabric = session.scalars(select(Fabric)).first()
    if fabric is None:
        fabric = Fabric(id=1)
        session.add(fabric)
    fabric.name = inventory.fabric.name
    fabric.lossless_priorities = sorted(set(inventory.fabric.lossless_priorities))
    fabric.cnp_priority = inventory.fabric.cnp_priority

    current = {
        s.name: s
        for s in session.scalars(select(Switch).options(selectinload(Switch.interfaces)))
    }
    created = updated = 0
    fresh: list[tuple[Switch, SwitchEntry]] = []
    for entry in inventory.switches:
        switch = current.get(entry.name)
        if switch is None:
            # New switches get their interfaces in one bulk insert below (the ORM's per-object
            # bookkeeping costs seconds on a fabric of a thousand switches).
            switch = Switch(name=entry.name)
            apply_switch_entry(switch, entry.model_copy(update={"interfaces": []}))
            session.add(switch)
            current[entry.name] = switch
            fresh.append((switch, entry))
            created += 1
        else:
            apply_switch_entry(switch, entry)
            updated += 1
    session.flush()
    if fresh:
        session.execute(insert(Interface), [
            {"switch_id": switch.id, "name": i.name, "speed_gbps": i.speed_gbps, "peer": i.peer,
             "cable_m": i.cable_m}
            for switch, entry in fresh for i in entry.interfaces])
        for switch, _ in fresh:
            session.expire(switch, ["interfaces"])

    touched = [current[e.name].id for e in inventory.switches]
    ids: dict[tuple[str, str], int] = {}
    if touched:
        iface_ids = select(Interface.id).where(Interface.switch_id.in_(touched))
        session.execute(
            delete(Link).where(
                Link.a_interface_id.in_(iface_ids) | Link.b_interface_id.in_(iface_ids)
            )
        )
        names = {current[e.name].id: e.name for e in inventory.switches}
        for iid, sid, iname in session.execute(
                select(Interface.id, Interface.switch_id, Interface.name)
                .where(Interface.switch_id.in_(touched))):
            ids[(names[sid], iname)] = iid
    if inventory.links:
        session.execute(insert(Link), [
            {"a_interface_id": ids[(link.a_switch, link.a_interface)],
             "b_interface_id": ids[(link.b_switch, link.b_interface)]}
            for link in inventory.links])
    session.flush()
    return ImportSummary(
        switches_created=created,
        switches_updated=updated,
        interfaces=sum(len(e.interfaces) for e in inventory.switches),
        links=len(inventory.links),
    )


def _interface(switch: Switch, name: str) -> Interface:
    for interface in switch.interfaces:
        if interface.name == name:
            return interface
    raise InventoryError(f"switch {switch.name!r} has no interface {name!r}")  # pragma: no cover


def export_inventory(session: Session, *, include_credentials_ref: bool = True) -> dict[str, Any]:
    """The inventory as a plain dict in the file format (round-trips through import)."""
    fabric = session.scalars(select(Fabric)).first()
    switches = session.scalars(
        select(Switch).options(selectinload(Switch.interfaces)).order_by(Switch.id)
    ).all()
    by_id: dict[int, tuple[str, str]] = {}
    out_switches: list[dict[str, Any]] = []
    for s in switches:
        entry: dict[str, Any] = {
            "name": s.name, "role": s.role, "pod": s.pod, "mgmt_host": s.mgmt_host,
            "mgmt_port": s.mgmt_port, "driver": s.driver, "model": s.model, "asic": s.asic,
            "buffer_bytes": s.buffer_bytes,
        }
        if include_credentials_ref:
            entry["credentials_ref"] = s.credentials_ref
        entry.update({"username": s.username, "enabled": s.enabled})
        if s.poll_interval_s is not None:
            entry["poll_interval_s"] = s.poll_interval_s
        entry["interfaces"] = [
            {"name": i.name, "speed_gbps": i.speed_gbps, "peer": i.peer, "cable_m": i.cable_m}
            for i in s.interfaces
        ]
        for i in s.interfaces:
            by_id[i.id] = (s.name, i.name)
        out_switches.append(entry)
    links = []
    for link in session.scalars(select(Link).order_by(Link.id)):
        a, b = by_id[link.a_interface_id], by_id[link.b_interface_id]
        links.append({"a_switch": a[0], "a_interface": a[1], "b_switch": b[0], "b_interface": b[1]})
    return {
        "fabric": {
            "name": fabric.name if fabric else "fabric",
            "lossless_priorities": list(fabric.lossless_priorities) if fabric else [3],
            "cnp_priority": fabric.cnp_priority if fabric else 6,
        },
        "switches": out_switches,
        "links": links,
    }


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_YamlDumper, sort_keys=False, default_flow_style=False)

