"""Reading the last window of every port back from the database (what the daemon does each
cycle): grouping, time order, missing values and the range, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.db.models import Switch
from app.telemetry import WINDOW_COLUMNS, load_window_rows, load_windows
from app.telemetry_blocks import BLOCK_COLUMNS, pack_block, unpack_block
from collectors.ingest import Ingestor
from tests.collectors.helpers import interface_ids, load_fabric
from tests.conftest import Database

T0 = 1_700_000_000_000


def sample(switch_id: int, iface_id: int, priority: int, k: int, **over: Any) -> dict[str, Any]:
    row = {"switch_id": switch_id, "interface_id": iface_id, "priority": priority,
           "ts_ms": T0 + k * 10_000, "interval_s": 10.0, "tx_bytes": k * 1000,
           "tx_packets": k, "ecn_marked_packets": 0, "rx_pause_frames": 0,
           "tx_pause_frames": 0, "drop_packets": 0, "occupancy_bytes": 100 * k + priority,
           "watermark_bytes": 1000 + k, "tx_bytes_per_s": 1e6 * (k + 1) + iface_id,
           "tx_packets_per_s": 500.0 + k, "ecn_marked_packets_per_s": 3.0 * k,
           "rx_pause_frames_per_s": 0.0, "tx_pause_frames_per_s": 0.5 * k,
           "drop_packets_per_s": 0.0, "utilisation": 0.5}
    row.update(over)
    return row


def test_every_port_window_comes_back_stacked_in_time_order(db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1)
    tor1, tor2 = switches["tor-p1-1"].id, switches["tor-p1-2"].id
    a = interface_ids(db, "tor-p1-1")["Ethernet0"]
    b = interface_ids(db, "tor-p1-2")["Ethernet4"]
    rows = [sample(tor1, a, 3, k) for k in (4, 0, 2, 1, 3)]  # stored out of order
    rows += [sample(tor1, a, 4, k, watermark_bytes=None) for k in range(3)]  # not reported
    rows += [sample(tor2, b, 3, k) for k in range(2)]
    rows += [sample(tor2, b, 3, 9)]  # after the window
    rows += [sample(tor2, b, 5, k) for k in range(4)]  # not a priority asked for
    assert Ingestor(db.engine).write(rows).error is None
    with db.session() as s:
        got = load_window_rows(s, start_ms=T0, end_ms=T0 + 50_000, priorities=[3, 4])
        old = load_windows(s, start_ms=T0, end_ms=T0 + 50_000, priorities=[3, 4],
                           switch_ids=[tor1])
    keys = [(tor1, a, 3), (tor1, a, 4), (tor2, b, 3)]
    assert sorted(got.keys) == sorted(keys)
    i = {k: n for n, k in enumerate(got.keys)}
    assert got.counts.tolist() == [5 if k == keys[0] else 3 if k == keys[1] else 2
                                   for k in got.keys]
    assert got.fields["tx_bytes_per_s"].shape == (3, 5)
    first = got.fields["tx_bytes_per_s"][i[keys[0]]]
    assert first.tolist() == [1e6 * (k + 1) + a for k in range(5)]  # in time order
    assert got.ts_ms[i[keys[0]]].tolist() == [T0 + k * 10_000 for k in range(5)]
    assert got.fields["occupancy_bytes"][i[keys[1]]][:3].tolist() == [4.0, 104.0, 204.0]
    assert np.isnan(got.fields["watermark_bytes"][i[keys[1]]]).all()  # missing: NaN
    short = got.fields["ecn_marked_packets_per_s"][i[keys[2]]]
    assert short[:2].tolist() == [0.0, 3.0] and np.isnan(short[2:]).all()  # padded
    # the per-key view: the same values, each as long as its samples, one switch only
    assert set(old) == {keys[0], keys[1]}
    assert old[keys[1]]["tx_pause_frames_per_s"].tolist() == [0.0, 0.5, 1.0]
    assert all(len(old[keys[0]][c]) == 5 for c in (*WINDOW_COLUMNS, "ts_ms"))
    assert math.isnan(old[keys[1]]["watermark_bytes"][0])
    # the same samples written again, in blocks of 2 (each series split across blocks):
    # every sample counts once, the first written
    again = [dict(r, tx_bytes_per_s=-1.0) for r in rows]
    assert Ingestor(db.engine, batch_rows=2).write(again).error is None
    with db.session() as s:
        twice = load_window_rows(s, start_ms=T0, end_ms=T0 + 50_000, priorities=[3, 4])
    assert twice.keys == got.keys and twice.counts.tolist() == got.counts.tolist()
    for name in WINDOW_COLUMNS:
        assert np.array_equal(twice.fields[name], got.fields[name], equal_nan=True), name


def test_a_window_holds_only_interfaces_that_exist_on_their_switch(db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1)
    tor1, tor2 = switches["tor-p1-1"].id, switches["tor-p1-2"].id
    a = interface_ids(db, "tor-p1-1")["Ethernet0"]
    b = interface_ids(db, "tor-p1-2")["Ethernet4"]
    rows = [sample(tor1, a, 3, k) for k in range(3)] + [sample(tor2, b, 3, k) for k in range(3)]
    assert Ingestor(db.engine).write(rows).error is None
    with db.session() as s:
        assert sorted(load_window_rows(s, start_ms=T0, end_ms=T0 + 50_000,
                                       priorities=[3]).keys) == [(tor1, a, 3), (tor2, b, 3)]
        s.delete(s.get(Switch, tor2))
        s.commit()
    with db.session() as s:  # the samples went with the switch; so does its part of the blocks
        got = load_window_rows(s, start_ms=T0, end_ms=T0 + 50_000, priorities=[3])
        assert got.keys == [(tor1, a, 3)] and got.counts.tolist() == [3]
        assert load_window_rows(s, start_ms=T0, end_ms=T0 + 50_000, priorities=[3],
                                switch_ids=[tor2]).keys == []


def test_an_empty_range_reads_as_no_windows(db: Database) -> None:
    load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1)
    with db.session() as s:
        got = load_window_rows(s, start_ms=T0, end_ms=T0 + 1, priorities=[3])
        assert got.keys == [] and load_windows(s, start_ms=T0, end_ms=T0 + 1,
                                               priorities=[3]) == {}


_VALUE = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False),
                   st.integers(-(2**53), 2**53))
_ID = st.integers(0, 2**31)


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(_ID, _ID, st.integers(0, 7), st.integers(0, 2**42),
                               st.lists(_VALUE | st.sampled_from([math.inf, -math.inf]),
                                        min_size=len(WINDOW_COLUMNS),
                                        max_size=len(WINDOW_COLUMNS))),
                     min_size=1, max_size=30))
def test_a_block_reads_back_exactly_with_nan_for_missing(rows: list[Any]) -> None:
    """Whatever numbers a batch holds come back from its block as the same float64 values
    (ids and times exact); None, and an infinity (no reading either), as NaN."""
    columns: dict[str, list[Any]] = {c: [] for c in BLOCK_COLUMNS}
    for a, b, c, d, vals in rows:
        for name, v in zip(BLOCK_COLUMNS, (a, b, c, d, *vals), strict=True):
            columns[name].append(v)
    n, low, high, payload = pack_block(columns)
    assert (n, low, high) == (len(rows), min(r[3] for r in rows), max(r[3] for r in rows))
    got = unpack_block(payload, n)
    want = np.array([[np.nan if v is None or (isinstance(v, float) and math.isinf(v))
                      else float(v) for v in (a, b, c, d, *vals)] for a, b, c, d, vals in rows])
    assert np.array_equal(got, want, equal_nan=True)
    with pytest.raises(ValueError, match="needs"):
        unpack_block(payload[:-1], n)
    with pytest.raises(ValueError, match="needs"):
        unpack_block(payload, n + 1)


@given(bad=st.sampled_from([None, 1.5, math.nan, math.inf, 2**54 + 1]))
def test_a_block_refuses_ids_that_are_not_exact_integers(bad: Any) -> None:
    columns: dict[str, list[Any]] = {c: [1] for c in BLOCK_COLUMNS}
    columns["interface_id"] = [bad]
    with pytest.raises(ValueError, match="integers"):
        pack_block(columns)
