"""The driver contract, run over every driver: ``mock`` (in-process fabric), and ``hp_comware``
and ``sonic`` through netmiko over real SSH to virtual switches (``fabricsim.ssh``).

Each driver gets a small fabric (1 spine, 1 leaf, 1 TOR with two hosts; every port carries
allreduce traffic) with simulated time (``live=False``): tests move time with
``fabric.advance`` so that counter deltas are deterministic. The switch under test is the
TOR; faults are injected on the leaf.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.drivers import mock
from app.drivers.base import Driver, SwitchTarget, get_driver
from app.drivers.errors import (
    AuthFailed,
    CommitFailed,
    ConnectionFailed,
    DriverTimeout,
    ParseError,
    ValidationFailed,
)
from app.drivers.models import COUNTER_FIELDS, QosConfig, QueueSample, Waterlines
from app.drivers.vendor_common import qos_differences
from fabricsim.fabric import VirtualFabric
from fabricsim.topology import FabricParams, generate_fabric

PASSWORD = "contract-pw"
SWITCH = "tor-p1-1"
FAULTY = "leaf-p1-1"
LOSSLESS = (3, 4)
SCENARIO = {"default": {"profile": "allreduce", "params": {"flows": 8}}}
# Lines the switch rejects in the rejected-line test: a line in the middle of the rendered
# change, so that part of the change has been applied when the switch refuses.
REJECT = {"sonic": r"^config mmu ", "hp_comware": r"ingress-buffer dynamic",
          "mock": r"."}


def small_inventory(driver: str) -> dict[str, Any]:
    return generate_fabric(FabricParams(pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1,
                                        hosts_per_tor=2, driver=driver))


@dataclass
class Rig:
    """One driver under test and the fabric behind it."""

    name: str
    inventory: dict[str, Any]
    fabric: VirtualFabric
    lab: Any = None  # fabricsim.ssh.Lab for the SSH drivers
    state: mock.MockFabric | None = None

    def interfaces(self, switch: str) -> tuple[str, ...]:
        sw = next(s for s in self.inventory["switches"] if s["name"] == switch)
        return tuple(str(i["name"]) for i in sw["interfaces"])

    def target(self, switch: str = SWITCH, *, password: str = PASSWORD, timeout_s: float = 5.0,
               interfaces: tuple[str, ...] | None = None) -> SwitchTarget:
        port = self.lab.port_of(switch) if self.lab is not None else 22
        return SwitchTarget(name=switch, host="127.0.0.1", port=port, username="admin",
                            password=password, secret=password,
                            interfaces=self.interfaces(switch) if interfaces is None else interfaces,
                            timeout_s=timeout_s)

    def driver(self, switch: str = SWITCH, **kwargs: Any) -> Driver:
        return get_driver(self.name, self.target(switch, **kwargs))

    def config_lines(self, switch: str) -> list[str]:
        """Configuration lines the switch has received so far."""
        if self.lab is not None:
            return list(self.lab.config_lines(switch))
        assert self.state is not None
        return list(self.state.command_log.get(switch, []))

    def fault(self, switch: str, kind: str, *, seconds: float = 3.0) -> None:
        if self.lab is None:
            assert self.state is not None
            self.state.faults[switch] = {"hang": "timeout"}.get(kind, kind)
            return
        faults = self.lab.faults
        if kind == "unreachable":
            faults.unreachable(switch)
        elif kind == "auth":
            faults.wrong_password(switch)
        elif kind == "hang":
            faults.hang(switch, seconds)
        elif kind == "garbage":
            faults.garbage(switch, on=r"^(show|display) ")
        elif kind == "reject":
            faults.reject(switch, on=REJECT[self.name])
        else:  # pragma: no cover
            raise ValueError(kind)

    def clear(self, switch: str) -> None:
        if self.lab is None:
            assert self.state is not None
            self.state.faults.pop(switch, None)
        else:
            self.lab.faults.clear(switch)


@pytest.fixture(scope="module", params=[
    "mock",
    pytest.param("hp_comware", marks=pytest.mark.ssh),
    pytest.param("sonic", marks=pytest.mark.ssh),
])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    name = request.param
    if name == "mock":
        inventory = small_inventory("mock")
        state = mock.install(inventory, seed=3, scenario=SCENARIO, live=False)
        yield Rig(name, inventory, state.fabric, state=state)
        mock.uninstall()
        return
    from fabricsim.ssh import start_lab

    lab = start_lab(small_inventory(name), password=PASSWORD, seed=3, scenario=SCENARIO,
                    live=False)
    try:
        yield Rig(name, lab.inventory, lab.fabric, lab=lab)
    finally:
        lab.stop()


@pytest.fixture
def drv(rig: Rig) -> Iterator[Driver]:
    d = rig.driver()
    d.open()
    yield d
    d.close()


def by_key(samples: list[QueueSample]) -> dict[tuple[str, int], QueueSample]:
    return {(s.interface, s.priority): s for s in samples}


def lower_waterlines(config: QosConfig) -> QosConfig:
    """``config`` with other ECN thresholds (HPCC-like 50 KB / 400 KB / 20 %)."""
    waterlines = {p: w.model_copy(update={"kmin_bytes": 51200, "kmax_bytes": 409600, "pmax": 0.2})
                  for p, w in config.waterlines.items()}
    return config.model_copy(update={"waterlines": waterlines})


def marks_per_packet(rig: Rig, d: Driver, seconds: float = 20.0) -> float:
    a = by_key(d.get_telemetry())
    rig.fabric.advance(seconds)
    b = by_key(d.get_telemetry())
    marks = packets = 0
    for key, s in b.items():
        if key[1] in LOSSLESS and key in a:
            marks += (s.ecn_marked_packets or 0) - (a[key].ecn_marked_packets or 0)
            packets += (s.tx_packets or 0) - (a[key].tx_packets or 0)
    assert packets > 0
    return marks / packets


# ------------------------------------------------------------------------------------------
# Getters
# ------------------------------------------------------------------------------------------


def test_open_and_facts(rig: Rig, drv: Driver) -> None:
    facts = drv.get_facts()
    assert facts.hostname == SWITCH
    assert facts.interfaces == list(rig.interfaces(SWITCH))
    assert facts.os_version and facts.vendor


def test_telemetry_every_lossless_entry_and_monotonic(rig: Rig, drv: Driver) -> None:
    first = by_key(drv.get_telemetry())
    rig.fabric.advance(5)
    second = by_key(drv.get_telemetry())
    wanted = {(i, p) for i in rig.interfaces(SWITCH) for p in LOSSLESS}
    assert wanted <= set(first) and wanted <= set(second)
    moved = 0
    for key in wanted:
        a, b = first[key], second[key]
        for name in COUNTER_FIELDS:
            va, vb = getattr(a, name), getattr(b, name)
            if va is not None and vb is not None:
                assert vb >= va, (key, name, va, vb)
        assert b.tx_packets is not None and a.tx_packets is not None
        moved += b.tx_packets > a.tx_packets
        assert b.occupancy_bytes is not None and b.occupancy_bytes >= 0
        assert b.watermark_bytes is not None and b.watermark_bytes >= 0
    assert moved == len(wanted)  # every port carries traffic in this scenario


# ------------------------------------------------------------------------------------------
# Config: candidate, compare, commit, read back, physics, rollback
# ------------------------------------------------------------------------------------------


def test_commit_reads_back_expected(rig: Rig, drv: Driver) -> None:
    before = drv.get_qos_config()
    assert before.pfc_priorities == LOSSLESS and before.ecn_queues == LOSSLESS
    candidate = lower_waterlines(before)
    sent = len(rig.config_lines(SWITCH))
    drv.load_candidate(candidate)
    diff = drv.compare()
    assert diff and len(rig.config_lines(SWITCH)) == sent  # load/compare touch nothing
    drv.commit()
    readback = drv.get_qos_config()
    assert qos_differences(drv.expected_readback(candidate), readback) == []
    assert readback == drv.expected_readback(candidate)
    # what commit sent is exactly what compare showed
    new_lines = rig.config_lines(SWITCH)[sent:]
    shown = diff.splitlines()
    if rig.name == "sonic":
        assert new_lines[0].startswith("config checkpoint waterline-")
        new_lines = new_lines[1:]
    if rig.name == "hp_comware":  # view changes are not configuration lines in the log
        shown = [line for line in shown if line not in ("quit", "return")]
    assert new_lines == shown
    drv.rollback()
    assert drv.get_qos_config() == before


def test_physics_follows_a_threshold_change(rig: Rig, drv: Driver) -> None:
    before = drv.get_qos_config()
    ratio_before = marks_per_packet(rig, drv)
    drv.load_candidate(lower_waterlines(before))
    drv.commit()
    try:
        ratio_after = marks_per_packet(rig, drv)
    finally:
        drv.rollback()
    assert ratio_before > 0 and ratio_after > 0
    # ECN marks per packet move by far more than the load profile's wobble
    assert abs(math.log(ratio_after / ratio_before)) > math.log(1.5), (ratio_before, ratio_after)
    assert drv.get_qos_config() == before


def test_rollback_restores_exactly(rig: Rig, drv: Driver) -> None:
    before = drv.get_qos_config()
    changed = lower_waterlines(before)
    w = changed.waterlines[3]
    changed = changed.model_copy(update={
        "pfc_priorities": (3,),
        "ecn_queues": (3,),
        "waterlines": {3: w.model_copy(update={"alpha": 0.5})},
    })
    drv.load_candidate(changed)
    drv.commit()
    assert drv.get_qos_config() == drv.expected_readback(changed)
    drv.rollback()
    assert drv.get_qos_config() == before
    with pytest.raises(CommitFailed):
        drv.rollback()  # only the session's last commit can be rolled back


def test_restore_from_a_fresh_session(rig: Rig) -> None:
    """The change workflow's recovery: a new session loads the old config with restore=True."""
    first = rig.driver()
    first.open()
    before = first.get_qos_config()
    first.load_candidate(lower_waterlines(before))
    first.commit()
    first.close()
    second = rig.driver()
    second.open()
    try:
        second.load_candidate(before, restore=True)
        second.commit()
        assert qos_differences(second.expected_readback(before), second.get_qos_config()) == []
        assert second.get_qos_config() == before
    finally:
        second.close()


def test_discard_sends_nothing(rig: Rig, drv: Driver) -> None:
    before = drv.get_qos_config()
    sent = len(rig.config_lines(SWITCH))
    drv.load_candidate(lower_waterlines(before))
    drv.discard()
    assert drv.compare() == ""
    drv.commit()
    assert len(rig.config_lines(SWITCH)) == sent
    assert drv.get_qos_config() == before


# ------------------------------------------------------------------------------------------
# Refused before anything is sent
# ------------------------------------------------------------------------------------------


def _w(**kw: Any) -> Waterlines:
    base = {"kmin_bytes": 51200, "kmax_bytes": 409600, "pmax": 0.2}
    base.update(kw)
    return Waterlines.model_construct(**base)  # bypass pydantic: the renderer must refuse


BAD_VALUES = {
    "kmin>=kmax": _w(kmin_bytes=409600, kmax_bytes=409600),
    "kmin>kmax": _w(kmin_bytes=500000),
    "negative": _w(kmin_bytes=-1),
    "absurd": _w(kmax_bytes=10**15),
    "pmax>1": _w(pmax=5.0),
    "pmax=0": _w(pmax=0.0),
    "nan": _w(pmax=float("nan")),
    "alpha not 2^n": _w(alpha=0.3),
    "xon>=xoff": _w(xoff_bytes=1000, xon_bytes=2000),
    "text with newline": _w(kmin_bytes="5000\nconfig reload -y"),
    "text with ;": _w(kmax_bytes="409600;reboot"),
    "text with |": _w(kmin_bytes="5000|sh"),
    "control char": _w(kmin_bytes="5000\x1b[2J"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_refused_before_sending(rig: Rig, drv: Driver, case: str) -> None:
    good = drv.get_qos_config()
    waterlines = {p: BAD_VALUES[case] for p in good.waterlines}
    bad = QosConfig.model_construct(pfc_priorities=good.pfc_priorities,
                                    ecn_queues=good.ecn_queues, waterlines=waterlines)
    sent = len(rig.config_lines(SWITCH))
    with pytest.raises(ValidationFailed):
        drv.load_candidate(bad)
    drv.commit()  # nothing loaded: nothing to send
    assert len(rig.config_lines(SWITCH)) == sent
    assert drv.get_qos_config() == good


@pytest.mark.parametrize("priorities", [(9,), (-1,), ("3;reboot",)])
def test_bad_priorities_refused(rig: Rig, drv: Driver, priorities: tuple[Any, ...]) -> None:
    good = drv.get_qos_config()
    bad = QosConfig.model_construct(pfc_priorities=priorities, ecn_queues=good.ecn_queues,
                                    waterlines=good.waterlines)
    sent = len(rig.config_lines(SWITCH))
    with pytest.raises(ValidationFailed):
        drv.load_candidate(bad)
    assert len(rig.config_lines(SWITCH)) == sent


BAD_INTERFACES = ["Ethernet0\nconfig reload -y", "Ethernet0;reboot", "Ethernet0|sh",
                  "Ethernet0\x00", "HundredGigE1/0/1\r\nundo ssh server enable", "Ethernet0 3 on"]


@pytest.mark.parametrize("name", BAD_INTERFACES)
def test_bad_interface_names_refused(rig: Rig, drv: Driver, name: str) -> None:
    if rig.name == "mock":
        pytest.skip("the mock renders no per-interface lines")
    good = drv.get_qos_config()
    changed = lower_waterlines(good).model_copy(update={"pfc_priorities": (3,)})
    d = rig.driver(interfaces=(*rig.interfaces(SWITCH), name))
    sent = len(rig.config_lines(SWITCH))
    try:
        with pytest.raises(ValidationFailed):
            d.load_candidate(changed)
        d.commit()
    finally:
        d.close()
    assert len(rig.config_lines(SWITCH)) == sent
    assert drv.get_qos_config() == good


# ------------------------------------------------------------------------------------------
# Faults surface as the right exception
# ------------------------------------------------------------------------------------------


@pytest.fixture
def faulty(rig: Rig) -> Iterator[str]:
    yield FAULTY
    rig.clear(FAULTY)


def test_unreachable(rig: Rig, faulty: str) -> None:
    rig.fault(faulty, "unreachable")
    d = rig.driver(faulty, timeout_s=2)
    with pytest.raises(ConnectionFailed) as err:
        d.open()
    assert not isinstance(err.value, AuthFailed)
    assert err.value.switch == faulty


def test_wrong_password(rig: Rig, faulty: str) -> None:
    rig.fault(faulty, "auth")
    d = rig.driver(faulty, timeout_s=3)
    with pytest.raises(AuthFailed):
        d.open()


def test_hang_times_out(rig: Rig, faulty: str) -> None:
    d = rig.driver(faulty, timeout_s=1.0)
    d.open()
    try:
        rig.fault(faulty, "hang", seconds=4)
        with pytest.raises(DriverTimeout):
            d.get_telemetry()
    finally:
        d.close()


def test_garbage_is_a_parse_error(rig: Rig, faulty: str) -> None:
    d = rig.driver(faulty)
    d.open()
    try:
        rig.fault(faulty, "garbage")
        with pytest.raises(ParseError):
            d.get_telemetry()
        with pytest.raises(ParseError):
            d.get_qos_config()
    finally:
        d.close()


def test_rejected_line_fails_commit_and_rollback_keeps_old_config(rig: Rig, faulty: str) -> None:
    d = rig.driver(faulty)
    d.open()
    try:
        before = d.get_qos_config()
        candidate = lower_waterlines(before)
        candidate = candidate.model_copy(update={"waterlines": {
            p: w.model_copy(update={"alpha": 0.5}) for p, w in candidate.waterlines.items()}})
        d.load_candidate(candidate)
        rig.fault(faulty, "reject")
        with pytest.raises(CommitFailed) as err:
            d.commit()
        assert "rejected" in str(err.value)
        rig.clear(faulty)
        try:
            d.rollback()
        except CommitFailed:
            assert rig.name == "mock"  # the mock refuses before changing anything
        assert d.get_qos_config() == before
    finally:
        d.close()
