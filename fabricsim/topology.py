"""Spine/Leaf/TOR fabric generator and the plain inventory data it produces.

The inventory is a plain dict (what `waterline inventory import` reads as YAML):

    fabric:   {name, lossless_priorities, cnp_priority}
    switches: [{name, role, pod, mgmt_host, mgmt_port, driver, model, asic, buffer_bytes,
                credentials_ref, enabled, interfaces: [{name, speed_gbps, peer, cable_m}]}]
    links:    [{a_switch, a_interface, b_switch, b_interface}]

fabricsim imports nothing else of the project, so this module is the one place that knows how a
realistic fabric is laid out; the app's inventory validates what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UPLINK_SPEED_GBPS = 400
ACCESS_SPEEDS_GBPS = (100, 200)
# Typical cable lengths per tier (SONiC's cable_length defaults are of this order).
HOST_CABLE_M = 3
TOR_LEAF_CABLE_M = 40
LEAF_SPINE_CABLE_M = 100


@dataclass(frozen=True)
class DeviceModel:
    model: str
    asic: str
    buffer_bytes: int


MIB = 1024 * 1024

# Buffer sizes of real ASIC classes (REFERENCE.md: Trident 3 32 MB, Tomahawk 2 42 MB,
# Spectrum-2 42 MB, Spectrum-3 64 MB, Trident 4 82-132 MB).
_MODELS: dict[tuple[str, str, int], DeviceModel] = {
    ("comware", "tor", 100): DeviceModel("H3C S6850-56HF", "Trident 3", 32 * MIB),
    ("comware", "tor", 200): DeviceModel("H3C S9825-64D", "Trident 4", 82 * MIB),
    ("comware", "leaf", 400): DeviceModel("H3C S9825-64D", "Trident 4", 82 * MIB),
    ("comware", "spine", 400): DeviceModel("H3C S12500R", "Jericho 2", 132 * MIB),
    ("sonic", "tor", 100): DeviceModel("Mellanox SN3700", "Spectrum-2", 42 * MIB),
    ("sonic", "tor", 200): DeviceModel("Mellanox SN4700", "Spectrum-3", 64 * MIB),
    ("sonic", "leaf", 400): DeviceModel("Mellanox SN4700", "Spectrum-3", 64 * MIB),
    ("sonic", "spine", 400): DeviceModel("Arista 7060DX5-64S", "Tomahawk 4", 113 * MIB),
}


def nos_family(driver: str) -> str:
    return "comware" if driver == "hp_comware" else "sonic"


def device_model(driver: str, role: str, speed_gbps: int) -> DeviceModel:
    key = (nos_family(driver), role, speed_gbps if role == "tor" else UPLINK_SPEED_GBPS)
    return _MODELS[key]


def interface_name(driver: str, index: int, speed_gbps: int) -> str:
    """Port name in the NOS's own style; index counts from 0."""
    if nos_family(driver) == "comware":
        prefix = {100: "HundredGigE", 200: "TwoHundredGigE", 400: "FourHundredGigE"}[speed_gbps]
        return f"{prefix}1/0/{index + 1}"
    return f"Ethernet{index * 4}"


@dataclass(frozen=True)
class FabricParams:
    pods: int = 2
    tors_per_pod: int = 2
    leaves_per_pod: int = 2
    spines: int = 2
    hosts_per_tor: int = 8
    access_speed_gbps: int = 100
    driver: str = "mock"
    name: str = "demo"
    mgmt_host: str = "127.0.0.1"
    mgmt_port_base: int = 0
    credentials_ref: str = "env:SWITCH_PASSWORD"

    def validate(self) -> None:
        if self.access_speed_gbps not in ACCESS_SPEEDS_GBPS:
            raise ValueError(f"access_speed_gbps must be one of {ACCESS_SPEEDS_GBPS}")
        for field in ("pods", "tors_per_pod", "leaves_per_pod", "spines", "hosts_per_tor"):
            value = getattr(self, field)
            if not 1 <= value <= 512:
                raise ValueError(f"{field} must be between 1 and 512, got {value}")


def generate_fabric(params: FabricParams) -> dict[str, Any]:
    """Build a Spine/Leaf/TOR inventory: TORs with GPU hosts, leaves per pod, shared spines."""
    params.validate()
    switches: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    next_port: dict[str, int] = {}
    by_name: dict[str, dict[str, Any]] = {}
    mgmt_index = 0

    def add_switch(name: str, role: str, pod: int | None, speed_gbps: int) -> dict[str, Any]:
        nonlocal mgmt_index
        mgmt_index += 1
        dm = device_model(params.driver, role, speed_gbps)
        mgmt_port = params.mgmt_port_base + mgmt_index if params.mgmt_port_base else 22
        switch: dict[str, Any] = {
            "name": name,
            "role": role,
            "pod": pod,
            "mgmt_host": params.mgmt_host,
            "mgmt_port": mgmt_port,
            "driver": params.driver,
            "model": dm.model,
            "asic": dm.asic,
            "buffer_bytes": dm.buffer_bytes,
            # The in-process virtual fabric needs no password.
            "credentials_ref": "" if params.driver == "mock" else params.credentials_ref,
            "enabled": True,
            "interfaces": [],
        }
        switches.append(switch)
        by_name[name] = switch
        next_port[name] = 0
        return switch

    def add_port(switch: str, speed_gbps: int, peer: str, cable_m: float) -> str:
        index = next_port[switch]
        next_port[switch] = index + 1
        name = interface_name(params.driver, index, speed_gbps)
        by_name[switch]["interfaces"].append(
            {"name": name, "speed_gbps": speed_gbps, "peer": peer, "cable_m": cable_m}
        )
        return name

    def connect(a: str, b: str, speed_gbps: int, cable_m: float) -> None:
        a_if = add_port(a, speed_gbps, b, cable_m)
        b_if = add_port(b, speed_gbps, a, cable_m)
        links.append({"a_switch": a, "a_interface": a_if, "b_switch": b, "b_interface": b_if})

    spines = [add_switch(f"spine-{s + 1}", "spine", None, UPLINK_SPEED_GBPS)["name"]
              for s in range(params.spines)]
    for p in range(1, params.pods + 1):
        leaves = [add_switch(f"leaf-p{p}-{i + 1}", "leaf", p, UPLINK_SPEED_GBPS)["name"]
                  for i in range(params.leaves_per_pod)]
        for t in range(1, params.tors_per_pod + 1):
            tor = add_switch(f"tor-p{p}-{t}", "tor", p, params.access_speed_gbps)["name"]
            for h in range(1, params.hosts_per_tor + 1):
                add_port(tor, params.access_speed_gbps, f"gpu-p{p}-t{t}-h{h}", HOST_CABLE_M)
            for leaf in leaves:
                connect(tor, leaf, UPLINK_SPEED_GBPS, TOR_LEAF_CABLE_M)
        for leaf in leaves:
            for spine in spines:
                connect(leaf, spine, UPLINK_SPEED_GBPS, LEAF_SPINE_CABLE_M)

    return {
        "fabric": {"name": params.name, "lossless_priorities": [3, 4], "cnp_priority": 6},
        "switches": switches,
        "links": links,
    }
