"""The `mock` driver: a first-class driver backed by the in-process virtual fabric (fabricsim).

The process holds one :class:`MockFabric`: a :class:`fabricsim.fabric.VirtualFabric` built from
the inventory, plus the QoS config each simulated switch "stores" (the driver contract's
``QosConfig``). Committing a config changes the switch's thresholds in the physics, so the
telemetry that follows reflects it. Faults can be injected per switch for tests and drills
(unreachable, auth, timeout, garbage, reject).

Waterline's PFC fields follow SONiC's buffer-profile meaning (see ``app.drivers.models``): the
physics takes ``headroom_bytes`` (the PG headroom) and ``alpha`` (the dynamic threshold that
triggers pause); ``xoff``/``xon`` are stored as configured and reported back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.drivers.base import SwitchTarget, register
from app.drivers.errors import (
    AuthFailed,
    CommitFailed,
    ConnectionFailed,
    DriverError,
    DriverTimeout,
    ParseError,
)
from app.drivers.models import Facts, QosConfig, QueueSample, Waterlines
from app.drivers.vendor_common import check_qos_shape
from fabricsim.fabric import VirtualFabric
from fabricsim.physics import Thresholds
from tuning.headroom import compute_headroom

FAULTS = ("unreachable", "auth", "timeout", "garbage", "reject", "commit_timeout")


@dataclass
class MockFabric:
    """The virtual fabric of this process and what each of its switches stores."""

    fabric: VirtualFabric
    inventory: dict[str, Any]
    config: dict[str, QosConfig] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    command_log: dict[str, list[str]] = field(default_factory=dict)
    # A commit to a gated switch waits until the gate opens (tests of locking and crashes).
    gates: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def switch(self, name: str) -> dict[str, Any]:
        for sw in self.inventory.get("switches") or []:
            if sw["name"] == name:
                return dict(sw)
        raise KeyError(name)

    def log(self, switch: str, line: str) -> None:
        self.command_log.setdefault(switch, []).append(line)


_FABRIC: MockFabric | None = None
_INSTALL_LOCK = threading.Lock()
_PROVIDER: Callable[[], dict[str, Any]] | None = None


def _initial_config(fabric: VirtualFabric, sw: dict[str, Any]) -> QosConfig:
    qos = fabric.get_qos(sw["name"])
    interfaces = sw.get("interfaces") or []
    speed = max((int(i["speed_gbps"]) for i in interfaces), default=100)
    cable = max((float(i.get("cable_m", 5)) for i in interfaces), default=5.0)
    need = compute_headroom(speed, cable, 9100)
    waterlines = {}
    for priority, th in qos.thresholds.items():
        # The fabric's ECN defaults, with the PG headroom of SONiC's formula for the switch's
        # fastest port and longest cable (alpha None: the NOS default).
        waterlines[priority] = Waterlines(
            kmin_bytes=th.kmin_bytes, kmax_bytes=th.kmax_bytes, pmax=th.pmax,
            xoff_bytes=need.xoff_bytes, xon_bytes=need.xon_bytes,
            headroom_bytes=need.size_bytes, alpha=th.alpha,
        )
    return QosConfig(pfc_priorities=qos.pfc_priorities, ecn_queues=qos.ecn_queues,
                     waterlines=waterlines).normalised()


def install(inventory: dict[str, Any], *, seed: int = 0, scenario: Any = None,
            carry: MockFabric | None = None, **fabric_kwargs: Any) -> MockFabric:
    """(Re)build the process's virtual fabric from an inventory dict (the file format).

    ``carry``: a previous fabric whose switches keep the config they had (an inventory that
    grows does not undo the changes applied so far)."""
    global _FABRIC
    mock_switches = [s for s in inventory.get("switches") or [] if s.get("driver") == "mock"]
    names = {s["name"] for s in mock_switches}
    links = [link for link in inventory.get("links") or []
             if link["a_switch"] in names and link["b_switch"] in names]
    mock_inventory = {**inventory, "switches": mock_switches, "links": links}
    live = bool(fabric_kwargs.pop("live", True))
    # Built stopped: the start-up config is pushed before any traffic is simulated (so no
    # traffic class is simulated twice), then the clock starts.
    fabric = VirtualFabric.from_inventory(mock_inventory, seed=seed, scenario=scenario,
                                          live=False, **fabric_kwargs)
    state = MockFabric(fabric=fabric, inventory=mock_inventory)
    for sw in mock_switches:
        config = _initial_config(fabric, sw)
        if carry is not None and sw["name"] in carry.config:
            config = carry.config[sw["name"]]
            if carry.faults.get(sw["name"]):
                state.faults[sw["name"]] = carry.faults[sw["name"]]
        state.config[sw["name"]] = config
        _push(state, sw["name"], config)
    fabric.live = live
    with _INSTALL_LOCK:
        _FABRIC = state
    return state


def set_inventory_provider(provider: Callable[[], dict[str, Any]] | None) -> None:
    """Where to read the inventory when a switch is asked for that the fabric does not have
    (the app registers the database export)."""
    global _PROVIDER
    _PROVIDER = provider


def current() -> MockFabric | None:
    return _FABRIC


def uninstall() -> None:
    global _FABRIC
    with _INSTALL_LOCK:
        _FABRIC = None


def _fabric_for(switch: str) -> MockFabric:
    state = _FABRIC
    if state is not None and switch in state.config:
        return state
    if _PROVIDER is not None:
        inventory = _PROVIDER()
        if any(s["name"] == switch for s in inventory.get("switches") or []):
            seed = state.fabric.seed if state is not None else 0
            return install(inventory, seed=seed,
                           scenario=state.fabric.scenario if state is not None else None,
                           carry=state)
    raise ConnectionFailed("not a switch of the virtual fabric", switch=switch)


def _push(state: MockFabric, switch: str, config: QosConfig) -> None:
    """Make the physics follow a committed config (only what changed)."""
    fabric = state.fabric
    qos = fabric.get_qos(switch)
    if tuple(qos.pfc_priorities) != config.pfc_priorities:
        fabric.set_pfc_priorities(switch, config.pfc_priorities)
    if tuple(qos.ecn_queues) != config.ecn_queues:
        fabric.set_ecn_queues(switch, config.ecn_queues)
    for priority, w in config.waterlines.items():
        wanted = Thresholds(kmin_bytes=w.kmin_bytes, kmax_bytes=w.kmax_bytes, pmax=w.pmax,
                            headroom_bytes=w.headroom_bytes, alpha=w.alpha)
        if qos.thresholds.get(priority) != wanted:
            fabric.set_thresholds(switch, priority, wanted)


def render_lines(current: QosConfig, desired: QosConfig) -> list[str]:
    """The mock NOS's own config lines for a diff (one line per changed value)."""
    lines: list[str] = []
    a, b = current.normalised(), desired.normalised()
    if a.pfc_priorities != b.pfc_priorities:
        lines.append("pfc priorities " + ",".join(map(str, b.pfc_priorities)))
    if a.ecn_queues != b.ecn_queues:
        lines.append("ecn queues " + ",".join(map(str, b.ecn_queues)))
    for priority in sorted(set(a.waterlines) | set(b.waterlines)):
        old, new = a.waterlines.get(priority), b.waterlines.get(priority)
        if new is None:
            lines.append(f"no waterlines priority {priority}")
            continue
        for name, value in new.model_dump().items():
            if old is None or getattr(old, name) != value:
                lines.append(f"waterlines priority {priority} {name} {value}")
    return lines


class MockDriver:
    """One session to a simulated switch."""

    def __init__(self, target: SwitchTarget) -> None:
        self.name = target.name
        self.target = target
        self._state: MockFabric | None = None
        self._candidate: QosConfig | None = None
        self._restore = False
        self._previous: QosConfig | None = None

    def _fault(self) -> str | None:
        return self._state.faults.get(self.name) if self._state else None

    def _session(self) -> MockFabric:
        if self._state is None:
            raise ConnectionFailed("session is not open", switch=self.name)
        now = _FABRIC
        if now is not None and now is not self._state and self.name in now.config:
            # the process's fabric was rebuilt (a mock switch added): this switch lives on in
            # the new one, with its config carried over; a session kept open on the old one
            # would read telemetry nobody changes any more
            self._state = now
        fault = self._fault()
        if fault == "unreachable":
            raise ConnectionFailed("connection refused", switch=self.name)
        if fault == "timeout":
            raise DriverTimeout("no answer", switch=self.name)
        return self._state

    def open(self) -> None:
        state = _fabric_for(self.name)
        fault = state.faults.get(self.name)
        if fault == "unreachable":
            raise ConnectionFailed("connection refused", switch=self.name)
        if fault == "auth":
            raise AuthFailed("authentication failed", switch=self.name)
        self._state = state

    def close(self) -> None:
        self._state = None

    def get_facts(self) -> Facts:
        state = self._session()
        sw = state.switch(self.name)
        return Facts(hostname=self.name, vendor="Waterline", model=sw.get("model") or "virtual",
                     os_version="fabricsim", serial_number=f"VF-{abs(hash(self.name)) % 10**8:08d}",
                     interfaces=[str(i["name"]) for i in sw.get("interfaces") or []])

    def get_telemetry(self) -> list[QueueSample]:
        state = self._session()
        if self._fault() == "garbage":
            raise ParseError("telemetry", "unexpected output", line="\x1b[31m#@!garbage")
        with state.lock:
            rows = state.fabric.read_counters(self.name)
        return [QueueSample(
            interface=r.interface, priority=r.priority, tx_packets=r.tx_packets,
            tx_bytes=r.tx_bytes, ecn_marked_packets=r.ecn_marked_packets,
            ecn_marked_bytes=r.ecn_marked_bytes, rx_pause_frames=r.rx_pause_frames,
            tx_pause_frames=r.tx_pause_frames, drop_packets=r.drop_packets,
            drop_bytes=r.drop_bytes, wred_drop_packets=r.wred_drop_packets,
            wred_drop_bytes=r.wred_drop_bytes, occupancy_bytes=r.occupancy_bytes,
            watermark_bytes=r.watermark_bytes) for r in rows]

    def get_qos_config(self) -> QosConfig:
        state = self._session()
        if self._fault() == "garbage":
            raise ParseError("qos", "unexpected output", line="%%garbage%%")
        with state.lock:
            return state.config[self.name]

    def expected_readback(self, config: QosConfig) -> QosConfig:
        return config.normalised()

    def load_candidate(self, config: QosConfig, *, restore: bool = False) -> None:
        sw = _fabric_for(self.name).switch(self.name)
        check_qos_shape(config, buffer_bytes=int(sw["buffer_bytes"]), strict=not restore)
        self._candidate = config.normalised()
        self._restore = restore

    def compare(self) -> str:
        if self._candidate is None:
            return ""
        state = self._session()
        with state.lock:
            return "\n".join(render_lines(state.config[self.name], self._candidate))

    def commit(self) -> None:
        state = self._session()
        if self._candidate is None:
            return
        gate = state.gates.get(self.name)
        if gate is not None:
            gate.wait(60)
        fault = self._fault()
        with state.lock:
            lines = render_lines(state.config[self.name], self._candidate)
            for line in lines:
                state.log(self.name, line)
            if fault == "reject" and lines:
                raise CommitFailed(f"line rejected: {lines[0]!r}: % Invalid input",
                                   switch=self.name)
            if fault == "commit_timeout":
                # Half of the lines took effect before the session hung.
                half = self._partial(state.config[self.name], self._candidate)
                state.config[self.name] = half
                _push(state, self.name, half)
                raise DriverTimeout("no answer during commit", switch=self.name)
            self._previous = state.config[self.name]
            state.config[self.name] = self._candidate
            _push(state, self.name, self._candidate)
        self._candidate = None

    @staticmethod
    def _partial(current: QosConfig, desired: QosConfig) -> QosConfig:
        waterlines = dict(current.waterlines)
        keys = sorted(desired.waterlines)
        for p in keys[: max(1, len(keys) // 2)]:
            old = current.waterlines.get(p)
            new = desired.waterlines[p]
            if old is None:
                waterlines[p] = new
            else:  # the ECN line went through, the buffer line did not
                waterlines[p] = old.model_copy(update={"kmin_bytes": new.kmin_bytes,
                                                       "kmax_bytes": new.kmax_bytes,
                                                       "pmax": new.pmax})
        return QosConfig(pfc_priorities=current.pfc_priorities, ecn_queues=current.ecn_queues,
                         waterlines=waterlines).normalised()

    def discard(self) -> None:
        self._candidate = None

    def rollback(self) -> None:
        state = self._session()
        if self._previous is None:
            raise CommitFailed("nothing to roll back in this session", switch=self.name)
        with state.lock:
            for line in render_lines(state.config[self.name], self._previous):
                state.log(self.name, line)
            state.config[self.name] = self._previous
            _push(state, self.name, self._previous)
        self._previous = None


@register("mock")
def _factory(target: SwitchTarget) -> MockDriver:
    return MockDriver(target)


__all__ = ["FAULTS", "DriverError", "MockDriver", "MockFabric", "install"]
