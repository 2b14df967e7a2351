"""`waterline parse` / `waterline headroom` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.drivers.cli import UnknownCommand, app, find_parser, parse_output

RECORDED = Path(__file__).parent / "recorded"
runner = CliRunner()


def test_parse_file_prints_rows() -> None:
    result = runner.invoke(app, ["parse", "--nos", "sonic", "--command", "show pfc counters",
                                 str(RECORDED / "sonic/show_pfc_counters.txt")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"interface": "Ethernet0", "priority": 3, "rx_pause_frames": 1_482_117,
            "tx_pause_frames": 2_210} in rows
    assert len(rows) == 32


def test_parse_stdin_comware_interface_command() -> None:
    text = (RECORDED / "comware/display_qos_queue_statistics.txt").read_text()
    result = runner.invoke(app, ["parse", "--nos", "comware", "--command",
                                 "display qos queue-statistics interface HundredGigE1/0/1 outbound"],
                           input=text)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[3] == {"interface": "HundredGigE1/0/1", "priority": 3, "tx_packets": 4000,
                       "tx_bytes": 4_096_000, "drop_packets": 3, "drop_bytes": 4500}
    assert set(rows[0]) <= {"interface", "priority", "tx_packets", "tx_bytes", "drop_packets",
                            "drop_bytes", "ecn_marked_packets", "ecn_marked_bytes",
                            "rx_pause_frames", "tx_pause_frames", "wred_drop_packets",
                            "wred_drop_bytes", "occupancy_bytes", "watermark_bytes"}


def test_parse_config_command_prints_structure() -> None:
    result = runner.invoke(app, ["parse", "--nos", "sonic", "--command", "show ecn",
                                 str(RECORDED / "sonic/show_ecn.txt")])
    assert result.exit_code == 0, result.output
    profiles = json.loads(result.stdout)
    assert profiles[0]["name"] == "AZURE_LOSSLESS"
    assert profiles[0]["green_max_threshold"] == 2_097_152


@pytest.mark.parametrize(
    ("nos", "command", "parser"),
    [
        ("sonic", "show  pfc   counters", "parse_pfc_counters"),
        ("sonic", "sh pfc cou", "parse_pfc_counters"),
        ("sonic", "show queue counters Ethernet4", "parse_queue_counters"),
        ("sonic", "show queue wredcounters", "parse_queue_wredcounters"),
        ("sonic", "show queue watermark unicast", "parse_queue_watermark"),
        ("sonic", "show queue persistent-watermark unicast", "parse_queue_watermark"),
        ("sonic", "show priority-group watermark headroom", "parse_pg_watermark"),
        ("sonic", "show buffer configuration", "parse_buffer_configuration"),
        ("sonic", "show buffer profile", "parse_buffer_configuration"),
        ("sonic", "ecnconfig -q 0,1,2,3,4,5,6,7", "parse_ecn_queue_status"),
        ("sonic", "show pfc priority", "parse_pfc_priority"),
        ("comware", "display priority-flow-control interface", "parse_pfc_interface"),
        ("comware", "dis priority-flow-control int HundredGigE 1/0/1", "parse_pfc_interface"),
        ("comware", "display qos queue-statistics interface hge1/0/1 outbound",
         "parse_queue_statistics"),
        ("comware", "display qos wred table name WATERLINE", "parse_wred_table"),
        ("comware", "display buffer usage interface HundredGigE1/0/1 verbose",
         "parse_buffer_usage"),
        ("comware", "display current-configuration interface HundredGigE1/0/1",
         "parse_current_configuration"),
    ],
)
def test_command_lookup(nos: str, command: str, parser: str) -> None:
    handler = find_parser(nos, command)
    assert parser in handler.__code__.co_names


@pytest.mark.parametrize(
    ("nos", "command"),
    [("sonic", "show interfaces status"), ("sonic", ""), ("juniper", "show pfc counters"),
     ("sonic", "show queue"), ("comware", "display qos queue-statistics interface HGE1/0/1"),
     ("sonic", "show pfc counters extra words here")],
)
def test_unknown_or_ambiguous_commands(nos: str, command: str) -> None:
    with pytest.raises(UnknownCommand):
        find_parser(nos, command)
    result = runner.invoke(app, ["parse", "--nos", nos, "--command", command], input="x\n")
    assert result.exit_code == 2
    assert "error:" in result.stderr


def test_parse_error_exit_2_names_command_and_line() -> None:
    text = (RECORDED / "sonic/show_pfc_counters.txt").read_text().replace("1,482,117", "1,4x2,117")
    result = runner.invoke(app, ["parse", "--nos", "sonic", "--command", "show pfc counters"],
                           input=text)
    assert result.exit_code == 2
    assert "show pfc counters" in result.stderr and "1,4x2,117" in result.stderr
    assert result.stdout == ""
    empty = runner.invoke(app, ["parse", "--nos", "comware", "--command",
                                "display priority-flow-control interface"], input="")
    assert empty.exit_code == 2


def test_parse_binary_and_missing_file() -> None:
    result = runner.invoke(app, ["parse", "--nos", "sonic", "--command", "show ecn"],
                           input=b"\xff\xfe\x00garbage")
    assert result.exit_code == 2 and "UTF-8" in result.stderr
    result = runner.invoke(app, ["parse", "--nos", "sonic", "--command", "show ecn",
                                 "/nonexistent/file.txt"])
    assert result.exit_code == 2


def test_parse_output_function() -> None:
    text = (RECORDED / "sonic/show_pfc_priority.txt").read_text()
    assert parse_output("sonic", "show pfc priority", text)[0] == {
        "interface": "Ethernet0", "priorities": (3, 4)}


def test_headroom_json() -> None:
    result = runner.invoke(app, ["headroom", "--speed-gbps", "100", "--cable-m", "40",
                                 "--mtu", "9100", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"xoff_bytes": 92_160, "xon_bytes": 18_432,
                                         "size_bytes": 110_592}
    result = runner.invoke(app, ["headroom", "--speed-gbps", "100", "--cable-m", "40",
                                 "--mtu", "9216", "--cell-bytes", "256", "--lossless-mtu",
                                 "9216", "--json"])
    assert json.loads(result.stdout)["xoff_bytes"] == 171_008
    human = runner.invoke(app, ["headroom", "--speed-gbps", "400", "--cable-m", "5",
                                "--mtu", "9100"])
    assert human.exit_code == 0 and "xoff" in human.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--speed-gbps", "33", "--cable-m", "5", "--mtu", "9100"],
        ["--speed-gbps", "100", "--cable-m", "-1", "--mtu", "9100"],
        ["--speed-gbps", "100", "--cable-m", "5", "--mtu", "0"],
        ["--speed-gbps", "100", "--cable-m", "5", "--mtu", "9100", "--cell-bytes", "0"],
    ],
)
def test_headroom_bad_input(args: list[str]) -> None:
    result = runner.invoke(app, ["headroom", *args, "--json"])
    assert result.exit_code == 2
    assert "error:" in result.stderr
