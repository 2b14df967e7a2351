"""The virtual SONiC switch over SSH: prompts, sudo, sonic-utilities output (parsed by the
app's parsers), configuration lines, errors, checkpoints, the command log, exec requests."""

from __future__ import annotations

from collections.abc import Iterator

import paramiko
import pytest

from app.drivers.errors import ParseError
from app.drivers.sonic import parsers as P
from fabricsim.ssh import Lab

from .conftest import PASSWORD, Shell

pytestmark = pytest.mark.ssh
SW = "tor-p1-1"


@pytest.fixture
def sh(sonic_lab: Lab) -> Iterator[Shell]:
    shell = Shell(sonic_lab.port_of(SW), SW)
    yield shell
    shell.close()


@pytest.fixture
def root(sh: Shell) -> Shell:
    sh.chan.send("sudo -s\n")
    sh.read_until(r"\[sudo\] password for admin: $")
    assert sh.cmd(PASSWORD) == ""
    return sh


def test_prompts_and_sudo(sh: Shell) -> None:
    assert "SONiC" in sh.greeting
    assert sh.prompt() == f"admin@{SW}:~$ "
    sh.chan.send("sudo -s\n")
    out = sh.read_until(r"\[sudo\] password for admin: $")
    assert out.endswith("[sudo] password for admin: ")
    sh.chan.send("wrong\n")
    out = sh.read_until(r"password for admin: $")
    assert "Sorry, try again." in out and "wrong" not in out  # no echo at the password prompt
    sh.chan.send(PASSWORD + "\n")
    out = sh.read_until(sh.prompt_re)
    assert out.rstrip("\r\n ").endswith(f"root@{SW}:/home/admin#")
    assert sh.cmd("whoami") == "root"
    assert sh.cmd("exit") == "exit"
    assert sh.prompt() == f"admin@{SW}:~$ "


def test_unknown_and_malformed_commands(sh: Shell) -> None:
    assert sh.cmd("foo --bar") == "-bash: foo: command not found"
    out = sh.cmd("show foo")
    assert out.splitlines()[0] == "Usage: show [OPTIONS] COMMAND [ARGS]..."
    assert out.splitlines()[-1] == 'Error: No such command "foo".'
    assert sh.cmd("config checkpoint x") == "Root privileges are required for this operation"
    assert sh.cmd("ecnconfig -q 3 off") == "Root privileges required for this operation"


def test_config_errors_change_nothing(sonic_lab: Lab, root: Shell) -> None:
    before = root.cmd("show ecn"), root.cmd("show buffer configuration")
    out = root.cmd("ecnconfig -p AZURE_LOSSLESS -gmin 300000 -gmax 200000")
    assert "Invalid gmin (300000) and gmax (200000)" in out
    assert out.splitlines()[-1].startswith("Exception caught:")
    out = root.cmd("config buffer profile set pg_lossless_400000_40m_profile --xon abc")
    assert out.startswith("Usage: config buffer profile set")
    assert 'Error: Invalid value for "--xon": abc is not a valid integer' in out
    assert "doesn't exist" in root.cmd("config buffer profile set nosuch --xon 1")
    assert "is not in the valid range of -8 to 8" in root.cmd(
        "config mmu -p pg_lossless_400000_40m_profile -a 9")
    assert "Interface name Ethernet99 is invalid" in root.cmd(
        "config interface pfc priority Ethernet99 3 on")
    assert 'No such command "frobnicate"' in root.cmd("config frobnicate")
    assert (root.cmd("show ecn"), root.cmd("show buffer configuration")) == before
    received = sonic_lab.config_lines(SW)  # logged as configuration lines, refused
    for line in ("ecnconfig -p AZURE_LOSSLESS -gmin 300000 -gmax 200000",
                 "config mmu -p pg_lossless_400000_40m_profile -a 9", "config frobnicate"):
        assert line in received


def test_show_output_parses(sonic_lab: Lab, root: Shell) -> None:
    sonic_lab.fabric.advance(3)
    ports = [i["name"] for i in sonic_lab.switch(SW).interfaces]
    pfc = P.parse_pfc_counters(root.cmd("show pfc counters"))
    assert {(s.interface, s.priority) for s in pfc} == {(p, q) for p in ports for q in range(8)}
    queue = P.parse_queue_counters(root.cmd("show queue counters"))
    assert any((s.tx_packets or 0) > 0 for s in queue if s.priority == 3)
    wred = P.parse_queue_wredcounters(root.cmd("show queue wredcounters"))
    assert any((s.ecn_marked_packets or 0) > 0 for s in wred)
    occ = P.parse_queue_watermark(root.cmd("show queue watermark unicast"),
                                  field="occupancy_bytes")
    assert any((s.occupancy_bytes or 0) > 0 for s in occ)
    assert root.cmd("sonic-clear queue watermark unicast") == ""
    # after the clear the watermark restarts from the current occupancy
    cleared = P.parse_queue_watermark(root.cmd("show queue watermark unicast"))
    occ_now = {(s.interface, s.priority): s.occupancy_bytes for s in occ}
    assert all((s.watermark_bytes or 0) <= (occ_now[(s.interface, s.priority)] or 0)
               for s in cleared)
    persistent = P.parse_queue_watermark(root.cmd("show queue persistent-watermark unicast"))
    assert sum(s.watermark_bytes or 0 for s in persistent) > sum(s.watermark_bytes or 0
                                                                  for s in cleared)
    P.parse_pg_watermark(root.cmd("show priority-group watermark shared"))
    P.parse_pg_watermark(root.cmd("show priority-group watermark headroom"))
    prio = P.parse_pfc_priority(root.cmd("show pfc priority"))
    assert [r.interface for r in prio] == ports
    status = P.parse_ecn_queue_status(root.cmd("ecnconfig -q 0,1,2,3,4,5,6,7"))
    assert [s.queue for s in status if s.enabled] == [3, 4]
    profiles = P.parse_ecn(root.cmd("show ecn"))
    assert profiles[0].name == "AZURE_LOSSLESS"
    buffer = P.parse_buffer_configuration(root.cmd("show buffer configuration"))
    assert buffer.profile("pg_lossless_400000_40m_profile") is not None
    P.parse_buffer_configuration(root.cmd("show buffer information"))
    assert "SONiC Software Version: " in root.cmd("show version")


def test_config_reaches_the_physics_and_checkpoints_roll_back(sonic_lab: Lab, root: Shell) -> None:
    sw = sonic_lab.switch(SW)
    profile = "pg_lossless_400000_40m_profile"
    assert "Checkpoint created successfully." in root.cmd("config checkpoint before-test")
    for line in ("ecnconfig -p AZURE_LOSSLESS -gmin 51200 -gmax 409600 -gdrop 20",
                 f"config buffer profile set {profile} --xoff 200704 --size 219136",
                 f"config mmu -p {profile} -a -2", "ecnconfig -q 4 off",
                 "config interface pfc priority Ethernet0 4 off"):
        assert root.cmd(line) == "", line
    sw.flush()
    qos = sonic_lab.fabric.get_qos(SW)
    th = qos.thresholds[3]
    assert (th.kmin_bytes, th.kmax_bytes, th.pmax) == (51200, 409600, 0.2)
    assert (th.headroom_bytes, th.alpha) == (219136, 0.25)
    assert qos.ecn_queues == (3,) and qos.pfc_priorities == (3,)
    status = P.parse_ecn_queue_status(root.cmd("ecnconfig -q 3,4"))
    assert [(s.queue, s.enabled) for s in status] == [(3, True), (4, False)]
    out = root.cmd("config rollback before-test")
    assert out.splitlines()[-1] == "Config rolled back successfully."
    sw.flush()
    qos = sonic_lab.fabric.get_qos(SW)
    assert qos.thresholds[3].kmin_bytes == 1048576 and qos.ecn_queues == (3, 4)
    assert qos.pfc_priorities == (3, 4)
    assert "does not exist" in root.cmd("config rollback nosuch")


def test_command_log(sonic_lab: Lab, sh: Shell) -> None:
    sonic_lab.clear_log(SW)
    sh.cmd("show ecn")
    sh.chan.send("sudo -s\n")
    sh.read_until(r"password for admin: $")
    sh.cmd(PASSWORD)
    sh.cmd("ecnconfig -q 3 on")
    log = sonic_lab.command_log(SW)
    lines = [(r.line, r.view, r.config) for r in log if r.line]
    assert lines == [("show ecn", "user", False), ("sudo -s", "user", False),
                     ("<password>", "sudo-password", False),
                     ("ecnconfig -q 3 on", "root", True)]
    assert all(PASSWORD not in r.line for r in log)
    assert len({r.session for r in log}) == 1 and log[0].time <= log[-1].time
    assert sonic_lab.config_lines(SW) == ["ecnconfig -q 3 on"]


def test_exec_request(sonic_lab: Lab) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=sonic_lab.port_of(SW), username="admin", password=PASSWORD,
                   look_for_keys=False, allow_agent=False)
    try:
        _, stdout, _ = client.exec_command("show pfc priority")
        rows = P.parse_pfc_priority(stdout.read().decode())
        assert stdout.channel.recv_exit_status() == 0
        assert rows[0].priorities == (3, 4)
        _, stdout, _ = client.exec_command("nosuch")
        assert "command not found" in stdout.read().decode()
        assert stdout.channel.recv_exit_status() == 1
    finally:
        client.close()


def test_garbage_and_reject_faults(sonic_lab: Lab, root: Shell) -> None:
    sonic_lab.faults.garbage(SW, on=r"^show pfc")
    try:
        with pytest.raises(ParseError):
            P.parse_pfc_counters(root.cmd("show pfc counters"))
        P.parse_ecn(root.cmd("show ecn"))  # other commands answer normally
    finally:
        sonic_lab.faults.clear(SW)
    before = root.cmd("show ecn")
    sonic_lab.faults.reject(SW, on=r"^ecnconfig -p")
    try:
        out = root.cmd("ecnconfig -p AZURE_LOSSLESS -gmin 1000 -gmax 2000")
        assert out.startswith("Exception caught:")
        assert root.cmd("show ecn") == before
    finally:
        sonic_lab.faults.clear(SW)
