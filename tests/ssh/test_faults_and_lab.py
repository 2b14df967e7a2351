"""Faults of the virtual switches as the drivers see them, persistent sessions, and the lab
(inventory sizes, ``waterline lab up``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from app.drivers.base import SwitchTarget, get_driver
from app.drivers.errors import AuthFailed, ConnectionFailed, DriverTimeout
from app.drivers.models import QosConfig
from app.inventory import parse_inventory
from fabricsim.ssh import Lab, lab_inventory, merge_inventories

from .conftest import PASSWORD, Shell

pytestmark = pytest.mark.ssh


def target(lab: Lab, name: str, **kw: object) -> SwitchTarget:
    sw = lab.switch(name)
    args: dict[str, object] = {
        "name": name, "host": "127.0.0.1", "port": lab.port_of(name), "password": PASSWORD,
        "secret": PASSWORD, "interfaces": tuple(sw.port_names()), "timeout_s": 3.0}
    args.update(kw)
    return SwitchTarget(**args)  # type: ignore[arg-type]


def driver_name(lab: Lab, name: str) -> str:
    return "hp_comware" if lab.nos_of(name) == "comware" else "sonic"


@pytest.fixture(params=["sonic_lab", "comware_lab"])
def lab(request: pytest.FixtureRequest) -> Lab:
    lab: Lab = request.getfixturevalue(request.param)
    return lab


def test_connection_closed_mid_command_is_connection_failed(lab: Lab) -> None:
    name = "spine-1"
    d = get_driver(driver_name(lab, name), target(lab, name, timeout_s=10))
    d.open()
    try:
        d.get_telemetry()
        lab.faults.close(name, on=r"^(show|display) ")
        started = time.monotonic()
        with pytest.raises(ConnectionFailed):
            d.get_telemetry()
        assert time.monotonic() - started < 5  # noticed at once, not after the timeout
        assert d.get_telemetry()  # the driver opens a new session by itself
    finally:
        lab.faults.clear(name)
        d.close()


def test_hang_at_connect_is_a_timeout(lab: Lab) -> None:
    name = "spine-1"
    lab.faults.hang(name, 3)
    try:
        d = get_driver(driver_name(lab, name), target(lab, name, timeout_s=1))
        with pytest.raises(DriverTimeout):
            d.open()
    finally:
        lab.faults.clear(name)


def test_wrong_password_and_unreachable_then_back(lab: Lab) -> None:
    name = "spine-1"
    with pytest.raises(AuthFailed):
        get_driver(driver_name(lab, name), target(lab, name, password="nope")).open()
    port = lab.port_of(name)
    lab.faults.unreachable(name)
    try:
        with pytest.raises(ConnectionFailed):
            get_driver(driver_name(lab, name), target(lab, name)).open()
    finally:
        lab.faults.clear(name)
    assert lab.port_of(name) == port
    d = get_driver(driver_name(lab, name), target(lab, name))
    d.open()
    assert d.get_facts().hostname == name
    d.close()


def test_sonic_sudo_with_a_wrong_secret_is_auth_failed(sonic_lab: Lab) -> None:
    d = get_driver("sonic", target(sonic_lab, "spine-1", secret="wrong", timeout_s=1))
    d.open()
    try:
        assert d.get_qos_config().ecn_queues == (3, 4)  # reading needs no root
        with pytest.raises(AuthFailed):
            d.get_telemetry()  # the watermark clear does
    finally:
        d.close()


def test_hang_mid_commit_leaves_the_lines_before_it(lab: Lab) -> None:
    name = "leaf-p1-1"
    d = get_driver(driver_name(lab, name), target(lab, name, timeout_s=1))
    d.open()
    before = d.get_qos_config()
    waterlines = {p: w.model_copy(update={"kmin_bytes": 51200, "kmax_bytes": 409600,
                                          "pmax": 0.2, "alpha": 0.5})
                  for p, w in before.waterlines.items()}
    candidate = before.model_copy(update={"waterlines": waterlines})
    d.load_candidate(candidate)
    lab.faults.hang(name, 1.6, on=r"ingress-buffer dynamic|^config mmu")
    with pytest.raises(DriverTimeout):
        d.commit()
    time.sleep(1.7)
    lab.faults.clear(name)
    after = get_driver(driver_name(lab, name), target(lab, name))
    after.open()
    try:
        half = after.get_qos_config()
        want = d.expected_readback(candidate).waterlines[3]
        assert half.waterlines[3].kmin_bytes == want.kmin_bytes  # the ECN line went through
        assert half.waterlines[3].alpha == before.waterlines[3].alpha  # the hung one did not
        after.load_candidate(before, restore=True)
        after.commit()
        assert after.get_qos_config() == before
    finally:
        after.close()
        d.close()


def test_sessions_are_persistent_and_concurrent(sonic_lab: Lab) -> None:
    name = "tor-p1-1"
    d1 = get_driver("sonic", target(sonic_lab, name))
    d2 = get_driver("sonic", target(sonic_lab, name))
    d1.open()
    d2.open()
    try:
        opened = sonic_lab.switch(name).sessions_opened
        for _ in range(3):
            assert isinstance(d1.get_qos_config(), QosConfig)
            assert d2.get_telemetry()
        assert sonic_lab.switch(name).sessions_opened == opened
    finally:
        d1.close()
        d2.close()


def test_two_shells_see_one_config(comware_lab: Lab) -> None:
    a = Shell(comware_lab.port_of("spine-1"), "spine-1")
    b = Shell(comware_lab.port_of("spine-1"), "spine-1")
    try:
        a.cmd("system-view")
        a.cmd("qos wred queue table OTHER")
        a.cmd("queue 5 ecn")
        a.cmd("return")
        assert "qos wred queue table OTHER" in b.cmd("display current-configuration")
        b.cmd("system-view")
        b.cmd("undo qos wred queue table OTHER")
        b.cmd("return")
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("n", [1, 2, 3, 7, 12, 100])
@pytest.mark.parametrize("nos", ["sonic", "comware"])
def test_lab_inventory_has_exactly_n_valid_switches(n: int, nos: str) -> None:
    inv = lab_inventory(n, nos)
    assert len(inv["switches"]) == n
    for i, sw in enumerate(inv["switches"]):
        sw["mgmt_port"] = 2200 + i
    parsed = parse_inventory(yaml.safe_dump(inv))
    assert {s.driver for s in parsed.switches} == {"hp_comware" if nos == "comware" else "sonic"}


def test_merged_inventories_keep_names_apart() -> None:
    inv = merge_inventories(lab_inventory(5, "comware", prefix="cw-"),
                            lab_inventory(5, "sonic", prefix="sn-"))
    for i, sw in enumerate(inv["switches"]):
        sw["mgmt_port"] = 2200 + i
    parsed = parse_inventory(yaml.safe_dump(inv))
    assert len(parsed.switches) == 10 and len(parsed.links) == 8


@pytest.mark.slow
def test_lab_up_cli(tmp_path: Path) -> None:
    out = tmp_path / "lab.yaml"
    env = {k: v for k, v in os.environ.items() if k != "LAB_TEST_PW"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "lab", "up", "--switches", "2", "--nos", "comware",
         "--inventory-out", str(out), "--hosts-per-tor", "1", "--password-env", "LAB_TEST_PW"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        text = "".join(lines)
        assert "waterline inventory import" in text, text
        password = next(line.split("'")[1] for line in lines if "export LAB_TEST_PW=" in line)
        inv = parse_inventory(out.read_text())
        assert len(inv.switches) == 2
        sw = inv.switches[0]
        assert sw.credentials_ref == "env:LAB_TEST_PW" and sw.driver == "hp_comware"
        d = get_driver("hp_comware", SwitchTarget(name=sw.name, host=sw.mgmt_host,
                                                  port=sw.mgmt_port, password=password))
        d.open()
        assert d.get_facts().hostname == sw.name
        d.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
