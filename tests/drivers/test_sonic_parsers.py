"""SONiC parsers against recorded sonic-utilities output (exact numbers) and malformed output."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.drivers.errors import ParseError
from app.drivers.models import QosConfig, Waterlines
from app.drivers.sonic import parsers as P

RECORDED = Path(__file__).parent / "recorded" / "sonic"


def rec(name: str) -> str:
    return (RECORDED / name).read_text()


def by_key(rows: list[P.QueueSample]) -> dict[tuple[str, int], dict[str, object]]:
    return {(r.interface, r.priority): r.present() for r in rows}


# ---------------------------------------------------------------------------------------------
# show pfc counters
# ---------------------------------------------------------------------------------------------


def test_pfc_counters_rx_and_tx_blocks_with_thousands_separators() -> None:
    rows = by_key(P.parse_pfc_counters(rec("show_pfc_counters.txt")))
    assert len(rows) == 4 * 8
    assert rows[("Ethernet0", 3)] == {
        "interface": "Ethernet0", "priority": 3,
        "rx_pause_frames": 1_482_117, "tx_pause_frames": 2_210,
    }
    assert rows[("Ethernet12", 7)]["rx_pause_frames"] == 3_049
    assert rows[("Ethernet12", 7)]["tx_pause_frames"] == 1_521
    assert rows[("Ethernet4", 0)]["rx_pause_frames"] == 1_000


def test_pfc_counters_multi_asic_indented_na_prompts_and_cached_time() -> None:
    rows = by_key(P.parse_pfc_counters(rec("show_pfc_counters_multiasic.txt")))
    assert len(rows) == 5 * 8
    assert rows[("Ethernet-BP4", 2)]["rx_pause_frames"] == 4_002
    assert rows[("Ethernet-BP4", 2)]["tx_pause_frames"] == 8_002
    # N/A is "not reported": the fields are absent, never 0.
    assert rows[("Ethernet-BP256", 3)] == {"interface": "Ethernet-BP256", "priority": 3}


def test_pfc_counters_row_wrapped_onto_next_line() -> None:
    text = rec("show_pfc_counters.txt").replace(
        "Ethernet12   1,500   1,503   1,506   5,210   1,512   1,515   1,518   1,521",
        "Ethernet12   1,500   1,503   1,506   5,210\n   1,512   1,515   1,518   1,521",
    )
    rows = by_key(P.parse_pfc_counters(text))
    assert rows[("Ethernet12", 7)]["tx_pause_frames"] == 1_521
    assert rows[("Ethernet12", 3)]["tx_pause_frames"] == 5_210


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("1,482,117", "1,48x,117", "not a counter"),
        ("1,482,117", "1,4821,17", "not a counter"),
        ("1,482,117", "-1482117", "not a counter"),
        ("1,482,117", "1482117.5", "not a counter"),
        ("  PFC3  ", "  PFC9  ", "PFC0..PFC7"),
        ("Ethernet4   1,000", "Ethernet4   1,000   7", "cells"),
    ],
)
def test_pfc_counters_garbage_is_loud(old: str, new: str, message: str) -> None:
    text = rec("show_pfc_counters.txt").replace(old, new, 1)
    assert text != rec("show_pfc_counters.txt")
    with pytest.raises(ParseError, match=message) as exc:
        P.parse_pfc_counters(text)
    assert "show pfc counters" in str(exc.value)


def test_pfc_counters_missing_tx_block_or_header() -> None:
    text = rec("show_pfc_counters.txt")
    with pytest.raises(ParseError, match="Port Tx"):
        P.parse_pfc_counters(text.split("\n\n")[0])
    with pytest.raises(ParseError, match="outside any table"):
        P.parse_pfc_counters(text.replace("   Port Tx ", "   Pont Tx "))
    for empty in ("", "\n\n", "admin@sonic:~$ show pfc counters\nadmin@sonic:~$\n"):
        with pytest.raises(ParseError):
            P.parse_pfc_counters(empty)


# ---------------------------------------------------------------------------------------------
# show queue counters / wredcounters
# ---------------------------------------------------------------------------------------------


def test_queue_counters_namespace_blocks_uc_only() -> None:
    rows = by_key(P.parse_queue_counters(rec("show_queue_counters.txt")))
    # UC0..UC7 of two ports; UC8/UC9, MC and ALL queues carry no priority.
    assert sorted(rows) == [(p, q) for p in ("Ethernet0", "Ethernet4") for q in range(8)]
    assert rows[("Ethernet4", 3)] == {
        "interface": "Ethernet4", "priority": 3, "tx_packets": 203_333,
        "tx_bytes": 208_212_992, "drop_packets": 6, "drop_bytes": 9_000,
    }


def test_queue_counters_cached_time_and_prompt() -> None:
    rows = by_key(P.parse_queue_counters(rec("show_queue_counters_cached.txt")))
    assert len(rows) == 8
    assert rows[("Ethernet8", 7)]["tx_bytes"] == 441_000


def test_queue_counters_reordered_and_extra_columns() -> None:
    rows = by_key(P.parse_queue_counters(rec("show_queue_counters_ecn_columns.txt")))
    assert rows[("Ethernet16", 7)] == {
        "interface": "Ethernet16", "priority": 7, "tx_packets": 14_000_000,
        "tx_bytes": 21_000_000_000, "ecn_marked_packets": 77, "ecn_marked_bytes": 78_848,
        "drop_packets": 21, "drop_bytes": 31_500,
    }
    assert "ecn_marked_packets" not in rows[("Ethernet16", 5)]  # N/A


def test_wredcounters_na_and_large_numbers() -> None:
    rows = by_key(P.parse_queue_wredcounters(rec("show_queue_wredcounters.txt")))
    assert rows[("Ethernet0", 7)] == {
        "interface": "Ethernet0", "priority": 7,
        "ecn_marked_packets": 7_229_117, "ecn_marked_bytes": 10_843_675_500,
    }
    rows = by_key(P.parse_queue_wredcounters(rec("show_queue_wredcounters_indented.txt")))
    assert rows[("Ethernet64", 6)]["wred_drop_bytes"] == 117_000
    assert rows[("Ethernet64", 6)]["ecn_marked_bytes"] == 295_336_835_078


def test_queue_counters_refuses_unknown_column_queue_and_duplicates() -> None:
    text = rec("show_queue_counters_cached.txt")
    with pytest.raises(ParseError, match="unknown queue counter column"):
        P.parse_queue_counters(text.replace("Drop/bytes", "Drop-bytes"))
    with pytest.raises(ParseError, match="not a queue name"):
        P.parse_queue_counters(text.replace("UC3", "XX3"))
    with pytest.raises(ParseError, match="listed twice"):
        P.parse_queue_counters(text.replace("UC4", "UC3"))


# ---------------------------------------------------------------------------------------------
# Watermarks
# ---------------------------------------------------------------------------------------------


def test_queue_watermark_title_and_na() -> None:
    rows = by_key(P.parse_queue_watermark(rec("show_queue_watermark_unicast.txt")))
    assert len(rows) == 3 * 8
    assert rows[("Ethernet4", 3)] == {"interface": "Ethernet4", "priority": 3,
                                      "watermark_bytes": 1_056_768}
    assert rows[("Ethernet8", 0)] == {"interface": "Ethernet8", "priority": 0}


def test_queue_watermark_header_with_a_stray_column_kind_is_refused() -> None:
    """UC3 damaged into MC3 (a valid name of another command's column): refused, not parsed
    with queue 3 silently missing (found by the corruption property test)."""
    text = rec("show_queue_watermark_unicast.txt").replace("  UC3 ", "  MC3 ", 1)
    with pytest.raises(ParseError, match="damaged watermark header"):
        P.parse_queue_watermark(text)


def test_queue_watermark_as_occupancy() -> None:
    rows = by_key(P.parse_queue_watermark(rec("show_queue_persistent_watermark_unicast.txt"),
                                          field="occupancy_bytes"))
    assert rows[("Ethernet4", 3)] == {"interface": "Ethernet4", "priority": 3,
                                      "occupancy_bytes": 3_145_728}


def test_pg_watermarks() -> None:
    shared = P.parse_pg_watermark(rec("show_pg_watermark_shared.txt"))
    assert P.PgWatermark("Ethernet4", 3, "shared", 46_592) in shared
    head = P.parse_pg_watermark(rec("show_pg_watermark_headroom.txt"))
    assert P.PgWatermark("Ethernet0", 3, "headroom", 18_432) in head
    assert P.PgWatermark("Ethernet4", 7, "headroom", None) in head


# ---------------------------------------------------------------------------------------------
# Configuration read-back
# ---------------------------------------------------------------------------------------------


def test_show_ecn_profiles_in_any_order() -> None:
    profiles = {p.name: p for p in P.parse_ecn(rec("show_ecn.txt"))}
    lossless = profiles["AZURE_LOSSLESS"]
    assert (lossless.green_min_threshold, lossless.green_max_threshold,
            lossless.green_drop_probability, lossless.ecn) == (1_048_576, 2_097_152, 5, "ecn_all")
    assert profiles["AZURE_LOSSY"].green_min_threshold == 524_288
    assert profiles["AZURE_LOSSY"].red_min_threshold is None
    (only,) = P.parse_ecn(rec("show_ecn_reordered.txt"))
    assert (only.green_min_threshold, only.green_max_threshold, only.green_drop_probability) == (
        102_400, 409_600, 20)


def test_show_ecn_garbage() -> None:
    text = rec("show_ecn_reordered.txt")
    with pytest.raises(ParseError, match="not an integer"):
        P.parse_ecn(text.replace("409600", "4096OO"))
    with pytest.raises(ParseError, match="not an integer"):
        P.parse_ecn(text.replace("409600", "409,600"))
    with pytest.raises(ParseError, match="field  value"):
        P.parse_ecn(text.replace("ecn                     ecn_all", "ecn"))
    with pytest.raises(ParseError, match="above 100"):
        P.parse_ecn(text.replace("probability  20", "probability  120"))
    with pytest.raises(ParseError, match="no 'Profile:'"):
        P.parse_ecn("")


def test_buffer_configuration_profiles_and_pools() -> None:
    cfg = P.parse_buffer_configuration(rec("show_buffer_configuration.txt"))
    prof = cfg.profile("pg_lossless_100000_40m_profile")
    assert prof is not None
    assert (prof.xon, prof.xoff, prof.size, prof.dynamic_th, prof.pool) == (
        2_288, 177_632, 179_920, -3, "ingress_lossless_pool")
    assert cfg.lossless_traffic_pattern == {"default_dynamic_th": "0", "over_subscribe_ratio": "2"}
    assert [p.name for p in cfg.pools] == ["egress_lossless_pool", "ingress_lossless_pool"]
    assert cfg.pools[1].xoff == 4_194_112
    info = P.parse_buffer_configuration(rec("show_buffer_information.txt"))
    prof = info.profile("pg_lossless_100000_40m_profile")
    assert prof is not None and prof.pool == "ingress_lossless_pool" and prof.xoff == 92_160


def test_buffer_configuration_garbage() -> None:
    text = rec("show_buffer_information.txt")
    with pytest.raises(ParseError, match="not an integer"):
        P.parse_buffer_configuration(text.replace("xoff        92160", "xoff        9216O"))
    with pytest.raises(ParseError, match="outside any block"):
        P.parse_buffer_configuration("xon 18432\n")


def test_pfc_priority_and_ecn_status() -> None:
    rows = {r.interface: r.priorities for r in P.parse_pfc_priority(rec("show_pfc_priority.txt"))}
    assert rows == {"Ethernet0": (3, 4), "Ethernet4": (3, 4), "Ethernet8": (3,),
                    "Ethernet12": (), "Ethernet16": ()}
    status = P.parse_ecn_queue_status(rec("ecnconfig_q.txt"))
    assert [s.queue for s in status if s.enabled] == [3, 4]
    verbose = "ECN status:\nEthernet0,Ethernet4 queue 3: on\n"
    assert P.parse_ecn_queue_status(verbose) == [P.EcnQueueStatus(3, True)]
    with pytest.raises(ParseError):
        P.parse_ecn_queue_status("ECN status:\nqueue 3: maybe\n")
    with pytest.raises(ParseError, match="bad priority list"):
        P.parse_pfc_priority(rec("show_pfc_priority.txt").replace("3,4", "3,9", 1))


def test_build_qos_config_from_read_back() -> None:
    cfg = P.build_qos_config(
        pfc_priority=P.parse_pfc_priority(rec("show_pfc_priority.txt")),
        ecn_status=P.parse_ecn_queue_status(rec("ecnconfig_q.txt")),
        wred_profiles=P.parse_ecn(rec("show_ecn.txt")),
        buffer=P.parse_buffer_configuration(rec("show_buffer_configuration.txt")),
        interfaces=["Ethernet0", "Ethernet4"],
        wred_profile="AZURE_LOSSLESS",
        buffer_profile="pg_lossless_100000_40m_profile",
    )
    w = Waterlines(kmin_bytes=1_048_576, kmax_bytes=2_097_152, pmax=0.05, xoff_bytes=177_632,
                   xon_bytes=2_288, headroom_bytes=179_920, alpha=0.125)
    assert cfg == QosConfig(pfc_priorities=(3, 4), ecn_queues=(3, 4), waterlines={3: w, 4: w})
    # A port without PFC on priority 4 removes it from the switch-wide set.
    cfg2 = P.build_qos_config(
        pfc_priority=P.parse_pfc_priority(rec("show_pfc_priority.txt")),
        ecn_status=[],
        wred_profiles=[],
        buffer=None,
        interfaces=["Ethernet0", "Ethernet8"],
        wred_profile="AZURE_LOSSLESS",
        buffer_profile=None,
    )
    assert cfg2 == QosConfig(pfc_priorities=(3,))


def test_mixed_thousands_separators_are_a_corrupted_digit() -> None:
    text = rec("show_queue_watermark_unicast.txt")
    with pytest.raises(ParseError, match="mixed thousands separators"):
        P.parse_queue_watermark(text.replace("1056768", "105,768"))


def test_switch_errors_are_reported_as_such() -> None:
    for text in ("Error: No such command \"counterz\".\n",
                 "Usage: show pfc [OPTIONS] COMMAND [ARGS]...\n",
                 "Traceback (most recent call last):\n  File \"/usr/local/bin/pfcstat\"\n"):
        with pytest.raises(ParseError, match="reported an error"):
            P.parse_pfc_counters(text)
    with pytest.raises(ParseError, match="reported an error"):
        P.parse_ecn("Error: ConfigDB not reachable\n")
