"""The virtual Comware switch over SSH: views and prompts, errors with the caret line,
display output (parsed by the app's parsers), configuration lines reaching the physics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.drivers.comware import parsers as P
from fabricsim.ssh import Lab

from .conftest import Shell

pytestmark = pytest.mark.ssh
SW = "tor-p1-1"
PORT = "HundredGigE1/0/1"


@pytest.fixture
def sh(comware_lab: Lab) -> Iterator[Shell]:
    shell = Shell(comware_lab.port_of(SW), SW)
    yield shell
    shell.close()


def test_views_and_prompts(sh: Shell) -> None:
    assert "H3C" in sh.greeting
    assert sh.prompt() == f"<{SW}>"
    assert sh.cmd("screen-length disable") == ""
    assert sh.cmd("system-view") == "System View: return to User View with Ctrl+Z."
    assert sh.prompt() == f"[{SW}]"
    sh.cmd("qos wred queue table WATERLINE")
    assert sh.prompt() == f"[{SW}-qos-wred-table-WATERLINE]"
    sh.cmd(f"interface {PORT}")  # system-view commands work from a nested view
    assert sh.prompt() == f"[{SW}-{PORT}]"
    sh.cmd("quit")
    assert sh.prompt() == f"[{SW}]"
    sh.cmd("interface hundredgige 1/0/2")
    assert sh.prompt() == f"[{SW}-HundredGigE1/0/2]"
    sh.cmd("return")
    assert sh.prompt() == f"<{SW}>"


def test_errors_point_at_the_token_and_change_nothing(comware_lab: Lab, sh: Shell) -> None:
    config = sh.cmd("display current-configuration")
    out = sh.cmd("display nonsense")
    caret, message = out.splitlines()
    assert message == " % Unrecognized command found at '^' position."
    assert caret.index("^") == len(f"<{SW}>") + len("display ")
    assert sh.cmd("display").splitlines()[-1] == " % Incomplete command found at '^' position."
    sh.cmd("system-view")
    assert "Unrecognized command" in sh.cmd("screen-length disable")  # user view only
    sh.cmd("qos wred queue table WATERLINE")
    out = sh.cmd("queue 3 drop-level 0 low-limit 10 high-limit 999999999 discard-probability 5")
    caret, message = out.splitlines()
    assert message == " % Wrong parameter found at '^' position."
    assert caret.index("^") == len(f"[{SW}-qos-wred-table-WATERLINE]") + len(
        "queue 3 drop-level 0 low-limit 10 high-limit ")
    assert "Wrong parameter" in sh.cmd("queue 9 ecn")
    assert "Incomplete command" in sh.cmd("queue 3 drop-level 0 low-limit")
    assert "Too many parameters" in sh.cmd("queue 3 ecn now")
    sh.cmd(f"interface {PORT}")
    assert "Wrong parameter" in sh.cmd("priority-flow-control dot1p 3 ingress-buffer dynamic 101")
    assert "Unrecognized command" in sh.cmd("priority-flow-control frobnicate")
    assert "Wrong parameter" in sh.cmd("interface HundredGigE9/9/9")
    sh.cmd("return")
    assert sh.cmd("display current-configuration") == config
    received = comware_lab.config_lines(SW)
    assert "queue 9 ecn" in received and "system-view" in received


def test_display_output_parses(comware_lab: Lab, sh: Shell) -> None:
    comware_lab.fabric.advance(3)
    ports = [i["name"] for i in comware_lab.switch(SW).interfaces]
    units = P.ComwareUnits(cell_bytes=256)  # Trident 3 (S6850)
    pfc = P.parse_pfc_interface(sh.cmd("display priority-flow-control interface"))
    assert {(s.interface, s.priority) for s in pfc} == {(p, q) for p in ports for q in range(8)}
    stats = P.parse_queue_statistics(sh.cmd("display qos queue-statistics interface outbound"),
                                     units=units)
    assert any((s.ecn_marked_packets or 0) > 0 for s in stats)
    assert any((s.tx_packets or 0) > 0 for s in stats if s.priority == 3)
    one = P.parse_queue_statistics(sh.cmd(f"display qos queue-statistics interface {PORT} "
                                          "outbound"), units=units)
    assert {s.interface for s in one} == {PORT}
    usage = P.parse_buffer_usage(sh.cmd("display buffer usage interface verbose"), units=units)
    assert {s.interface for s in usage} == set(ports)
    assert all((s.watermark_bytes or 0) >= (s.occupancy_bytes or 0) for s in usage)
    assert any((s.watermark_bytes or 0) > 0 for s in usage)
    tables = P.parse_wred_table(sh.cmd("display qos wred table"))
    assert tables[0].name == "WATERLINE" and tables[0].queues[3].ecn
    running = P.parse_current_configuration(sh.cmd("display current-configuration"))
    cfg = P.build_qos_config(running, interfaces=ports, units=units)
    assert cfg.pfc_priorities == (3, 4) and cfg.ecn_queues == (3, 4)
    assert cfg.waterlines[3].kmin_bytes == 1048576
    version = sh.cmd("display version")
    assert "H3C S6850-56HF uptime is" in version


def test_config_lines_reach_the_physics(comware_lab: Lab, sh: Shell) -> None:
    sw = comware_lab.switch(SW)
    sh.cmd("system-view")
    sh.cmd("qos wred queue table WATERLINE")
    for q in (3, 4):
        assert sh.cmd(f"queue {q} low-limit 200 high-limit 1600 discard-probability 20") == ""
    sh.cmd("quit")
    for port in [i["name"] for i in sw.interfaces]:
        sh.cmd(f"interface {port}")
        assert sh.cmd("priority-flow-control dot1p 3 ingress-buffer dynamic 20") == ""
        assert sh.cmd("priority-flow-control no-drop dot1p 3") == ""
        sh.cmd("quit")
    sh.cmd("return")
    sw.flush()
    qos = comware_lab.fabric.get_qos(SW)
    assert (qos.thresholds[3].kmin_bytes, qos.thresholds[3].kmax_bytes) == (200 * 256, 1600 * 256)
    assert qos.thresholds[3].pmax == 0.2 and qos.thresholds[3].alpha == 0.25
    assert qos.pfc_priorities == (3,)
    # restore the lab's initial state for the other tests
    sh.cmd("system-view")
    sh.cmd("qos wred queue table WATERLINE")
    for q in (3, 4):
        sh.cmd(f"queue {q} low-limit 4096 high-limit 8192 discard-probability 5")
    sh.cmd("quit")
    for port in [i["name"] for i in sw.interfaces]:
        sh.cmd(f"interface {port}")
        sh.cmd("priority-flow-control dot1p 3 ingress-buffer dynamic 11")
        sh.cmd("priority-flow-control no-drop dot1p 3 4")
        sh.cmd("quit")
    sh.cmd("return")
    sw.flush()
    assert comware_lab.fabric.get_qos(SW).pfc_priorities == (3, 4)


def test_quit_from_user_view_ends_the_session(sh: Shell) -> None:
    sh.chan.send("quit\n")
    sh.read_until(r"quit")
    sh.chan.settimeout(2)
    assert sh.chan.recv(100) in (b"", b"\r\n")
