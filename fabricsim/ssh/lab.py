"""The lab: a VirtualFabric behind virtual SSH switches, with fault injection and command logs.

    from fabricsim.ssh import start_lab
    with start_lab(nos="sonic", switches=3, password="pw", live=False) as lab:
        lab.inventory            # inventory dict: driver, mgmt_host 127.0.0.1, mgmt_port, ...
        lab.port_of("spine-1")   # the switch's SSH port
        lab.fabric.advance(10)   # move simulated time (live=False: only advance() moves it)
        lab.faults.hang("spine-1", 5)
        lab.command_log("spine-1")  # [CommandRecord(time, session, line, view, config), ...]

Lab sizes (``lab_inventory``): a Spine/Leaf/TOR fabric from ``generate_fabric`` whose sizes
give at least N switches, cut to exactly N in generation order (spines, then each pod's
leaves and TORs); links to removed switches are dropped, their ports then face "hosts".
"""

from __future__ import annotations

import copy
import math
import re
import secrets
import time
from dataclasses import replace
from typing import Any

from fabricsim.fabric import VirtualFabric
from fabricsim.topology import FabricParams, generate_fabric

from .comware import ComwareSwitch
from .device import CommandRecord, EmulatedSwitch, SwitchFaults
from .server import SshServer, host_key
from .sonic import SonicSwitch

NOS_DRIVER = {"comware": "hp_comware", "sonic": "sonic"}
DRIVER_NOS = {v: k for k, v in NOS_DRIVER.items()}


def lab_params(n: int, nos: str, *, name: str = "lab", hosts_per_tor: int = 8,
               credentials_ref: str = "env:SWITCH_PASSWORD") -> FabricParams:
    """Fabric sizes that give at least ``n`` switches (see the module docstring)."""
    if n < 1:
        raise ValueError("a lab needs at least one switch")
    if nos not in NOS_DRIVER:
        raise ValueError(f"nos must be one of {', '.join(NOS_DRIVER)}")
    if n <= 3:
        spines, leaves, tors = 1, 1, 1
    elif n < 12:
        spines, leaves, tors = 1, 1, max(1, n - 2)
    else:
        spines, leaves, tors = (2, 2, 4) if n < 50 else (4, 2, 8)
    pods = max(1, math.ceil((n - spines) / (leaves + tors)))
    return FabricParams(pods=pods, tors_per_pod=tors, leaves_per_pod=leaves, spines=spines,
                        hosts_per_tor=hosts_per_tor, driver=NOS_DRIVER[nos], name=name,
                        credentials_ref=credentials_ref)


def lab_inventory(n: int, nos: str, *, prefix: str = "", hosts_per_tor: int = 8,
                  credentials_ref: str = "env:SWITCH_PASSWORD", name: str = "lab") -> dict[str, Any]:
    """An inventory of exactly ``n`` switches of one NOS (names prefixed with ``prefix``)."""
    inv = generate_fabric(lab_params(n, nos, name=name, hosts_per_tor=hosts_per_tor,
                                     credentials_ref=credentials_ref))
    keep = inv["switches"][:n]
    names = {s["name"] for s in keep}
    links = [link for link in inv["links"]
             if link["a_switch"] in names and link["b_switch"] in names]
    if prefix:
        rename = {s["name"]: prefix + s["name"] for s in keep}
        for s in keep:
            s["name"] = rename[s["name"]]
            for itf in s["interfaces"]:
                itf["peer"] = rename.get(itf["peer"], itf["peer"])
        for link in links:
            link["a_switch"] = rename[link["a_switch"]]
            link["b_switch"] = rename[link["b_switch"]]
    return {"fabric": inv["fabric"], "switches": keep, "links": links}


def merge_inventories(*inventories: dict[str, Any]) -> dict[str, Any]:
    """One inventory from several (e.g. a Comware half and a SONiC half of a lab)."""
    out: dict[str, Any] = {"fabric": dict(inventories[0]["fabric"]), "switches": [], "links": []}
    for inv in inventories:
        out["switches"] += copy.deepcopy(inv["switches"])
        out["links"] += copy.deepcopy(inv["links"])
    return out


class Faults:
    """Fault injection per switch. Patterns are regular expressions searched in each line the
    switch receives. ``clear(switch)`` (or ``clear()``) restores normal behaviour."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def _sw(self, switch: str) -> EmulatedSwitch:
        return self._lab.switch(switch)

    def wrong_password(self, switch: str, on: bool = True) -> None:
        """Every password is refused (SSH authentication fails; sudo passwords too)."""
        sw = self._sw(switch)
        with sw.lock:
            sw.faults.auth = on

    def unreachable(self, switch: str, on: bool = True) -> None:
        """Close the switch's port (connections are refused) and drop its sessions."""
        sw = self._sw(switch)
        with sw.lock:
            sw.faults.unreachable = on
        if on:
            self._lab.server.close_port(switch)
        else:
            self._lab.server.open_port(switch)

    def hang(self, switch: str, seconds: float, *, on: str | None = None) -> None:
        """Stop answering for ``seconds``: from now (``on=None``: every session, and new
        connections get no SSH banner), or from the next line matching ``on`` (one-shot, e.g.
        ``on=r"^ecnconfig -p"`` hangs mid-commit). A line held by a hang is processed after
        it ends, unless the session was closed meanwhile (then it is lost)."""
        sw = self._sw(switch)
        with sw.lock:
            if on is None:
                sw.faults.hang_until = time.monotonic() + seconds
            else:
                sw.faults.hang_on = re.compile(on)
                sw.faults.hang_s = seconds

    def garbage(self, switch: str, on: str = r".") -> None:
        """Commands matching ``on`` are answered with garbage (until cleared)."""
        sw = self._sw(switch)
        with sw.lock:
            sw.faults.garbage_on = re.compile(on)

    def reject(self, switch: str, on: str) -> None:
        """Configuration lines matching ``on`` are refused with the NOS's error and not
        applied (until cleared)."""
        sw = self._sw(switch)
        with sw.lock:
            sw.faults.reject_on = re.compile(on)

    def close(self, switch: str, on: str = r".") -> None:
        """Drop the connection when a line matching ``on`` arrives (one-shot)."""
        sw = self._sw(switch)
        with sw.lock:
            sw.faults.close_on = re.compile(on)

    def clear(self, switch: str | None = None) -> None:
        names = [switch] if switch is not None else list(self._lab.switches)
        for name in names:
            sw = self._sw(name)
            was_unreachable = sw.faults.unreachable
            with sw.lock:
                sw.faults = SwitchFaults()
            if was_unreachable:
                self._lab.server.open_port(name)

    def __getitem__(self, switch: str) -> SwitchFaults:
        return self._sw(switch).snapshot_faults()


class Lab:
    """Running virtual switches (see the module docstring). Use as a context manager or call
    :meth:`stop`."""

    def __init__(self, inventory: dict[str, Any], fabric: VirtualFabric, server: SshServer,
                 switches: dict[str, EmulatedSwitch], *, username: str, password: str) -> None:
        self.inventory = inventory
        self.fabric = fabric
        self.server = server
        self.switches = switches
        self.username = username
        self.password = password
        self.faults = Faults(self)

    def switch(self, name: str) -> EmulatedSwitch:
        try:
            return self.switches[name]
        except KeyError:
            raise KeyError(f"no switch {name!r} in this lab") from None

    def names(self) -> list[str]:
        return list(self.switches)

    def nos_of(self, name: str) -> str:
        return self.switch(name).nos

    def port_of(self, switch: str) -> int:
        self.switch(switch)
        return self.server.port_of(switch)

    def command_log(self, switch: str) -> list[CommandRecord]:
        """Every line ``switch`` received (time, session, line, view, config flag)."""
        return self.switch(switch).command_log()

    def config_lines(self, switch: str) -> list[str]:
        """The configuration lines ``switch`` received (accepted or not)."""
        return [r.line for r in self.command_log(switch) if r.config]

    def clear_log(self, switch: str | None = None) -> None:
        for name in [switch] if switch is not None else list(self.switches):
            sw = self.switch(name)
            with sw.lock:
                sw.log.clear()

    def stop(self) -> None:
        self.server.stop()
        for sw in self.switches.values():
            sw.stop()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_lab(
    inventory: dict[str, Any] | FabricParams | None = None,
    *,
    nos: str | None = None,
    switches: int | None = None,
    password: str | None = None,
    username: str = "admin",
    seed: int = 0,
    live: bool = True,
    scenario: Any = None,
    host: str = "127.0.0.1",
    base_port: int = 0,
    credentials_ref: str = "env:SWITCH_PASSWORD",
    hosts_per_tor: int = 8,
    prepare: bool = True,
    **fabric_kwargs: Any,
) -> Lab:
    """Start virtual SSH switches for an inventory (a dict in the inventory file format, or
    FabricParams), or for ``switches`` switches of ``nos`` (``lab_inventory``).

    ``nos`` (comware|sonic) overrides the switches' drivers; otherwise each switch's driver
    (hp_comware|sonic) picks its NOS. Ports: ``base_port + i`` for the i-th switch, or free
    ports when ``base_port`` is 0; the returned inventory carries the ports, ``mgmt_host``,
    ``username`` and ``credentials_ref``. ``password`` defaults to a random one
    (``lab.password``). ``prepare`` simulates every traffic class up front, so that the first
    poll is not slowed by the physics.
    """
    if isinstance(inventory, FabricParams):
        params = inventory
        if nos is not None:
            params = replace(params, driver=NOS_DRIVER[nos])
        inv = generate_fabric(params)
    elif inventory is None:
        if switches is None or nos is None:
            raise ValueError("give an inventory, FabricParams, or switches= and nos=")
        inv = lab_inventory(switches, nos, hosts_per_tor=hosts_per_tor,
                            credentials_ref=credentials_ref)
    else:
        inv = copy.deepcopy(inventory)
    password = password if password is not None else secrets.token_urlsafe(12)
    entries = list(inv.get("switches") or [])
    for i, sw in enumerate(entries):
        kind = nos or DRIVER_NOS.get(str(sw.get("driver")))
        if kind not in NOS_DRIVER:
            raise ValueError(f"switch {sw['name']}: driver {sw.get('driver')!r} has no virtual "
                             "NOS; pass nos='comware' or nos='sonic'")
        sw["driver"] = NOS_DRIVER[kind]
        sw["mgmt_host"] = host
        sw["mgmt_port"] = base_port + i if base_port else 0
        sw["credentials_ref"] = credentials_ref
        sw["username"] = username
    fabric = VirtualFabric.from_inventory(inv, seed=seed, scenario=scenario, live=live,
                                          **fabric_kwargs)
    emulated: dict[str, EmulatedSwitch] = {}
    for sw in entries:
        cls = ComwareSwitch if sw["driver"] == "hp_comware" else SonicSwitch
        emulated[sw["name"]] = cls(sw, fabric, username=username, password=password)
    if prepare:  # before this lab starts threads: the fabric may fork worker processes
        fabric.prepare()
    server = SshServer(host_key())
    try:
        for sw in entries:
            sw["mgmt_port"] = server.add(emulated[sw["name"]], host, int(sw["mgmt_port"]))
    except BaseException:
        server.stop()
        raise
    return Lab(inv, fabric, server, emulated, username=username, password=password)
