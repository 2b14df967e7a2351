"""The binary COPY decoder (``app.pg_copy``): any rows of float8, cut into blocks anywhere,
come back exactly; anything else is refused. The real stream from PostgreSQL is covered by
tests/collectors/test_windows.py."""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.pg_copy import SIGNATURE, float8_rows


def stream(rows: list[list[float]], extension: bytes = b"") -> bytes:
    """A binary COPY stream as PostgreSQL writes it (no OIDs)."""
    out = bytearray(SIGNATURE + struct.pack(">iI", 0, len(extension)) + extension)
    for row in rows:
        out += struct.pack(">h", len(row))
        for v in row:
            out += struct.pack(">id", 8, v)
    out += struct.pack(">h", -1)
    return bytes(out)


def blocks(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=200, deadline=None)
@given(width=st.integers(1, 13), data=st.data(),
       extension=st.binary(max_size=12), cuts=st.lists(st.integers(0, 10**6), max_size=12),
       chunk_rows=st.integers(1, 5))
def test_rows_come_back_exactly_however_the_stream_is_cut(
        width: int, data: st.DataObject, extension: bytes, cuts: list[int],
        chunk_rows: int) -> None:
    rows = data.draw(st.lists(st.lists(FLOATS, min_size=width, max_size=width), max_size=20))
    got = float8_rows(blocks(stream(rows, extension), cuts), width, chunk_rows)
    assert got.shape == (len(rows), width) and got.dtype == np.float64
    want = np.array(rows, dtype=float).reshape(len(rows), width)
    assert np.array_equal(got, want, equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.lists(FLOATS, min_size=3, max_size=3), min_size=1, max_size=8),
       cut=st.integers(1, 10**6))
def test_a_stream_cut_short_is_refused(rows: list[list[float]], cut: int) -> None:
    data = stream(rows)
    with pytest.raises(ValueError, match=r"cut short|layout"):
        float8_rows([data[:cut % len(data)]], 3)


def test_nulls_other_types_and_other_streams_are_refused() -> None:
    good = stream([[1.0, 2.0]])
    head = len(SIGNATURE) + 8
    null = bytearray(good)
    null[head + 2:head + 6] = struct.pack(">i", -1)  # the first field NULL
    with pytest.raises(ValueError):
        float8_rows([bytes(null)], 2)
    int4 = bytearray(SIGNATURE + struct.pack(">iI", 0, 0))
    int4 += struct.pack(">h", 2) + struct.pack(">ii", 4, 7) + struct.pack(">ii", 4, 9)
    int4 += struct.pack(">h", -1)
    with pytest.raises(ValueError):
        float8_rows([bytes(int4)], 2)
    with pytest.raises(ValueError, match="layout"):
        float8_rows([good], 3)  # another width
    with pytest.raises(ValueError, match="signature"):
        float8_rows([b"1\t2\n" * 10], 2)  # the text format
    assert float8_rows([stream([])], 4).shape == (0, 4)
