"""Rows of numbers from PostgreSQL's binary COPY, straight into numpy.

Reading 1.5 M telemetry samples through a DB-API cursor makes a Python tuple and a Python
float per value (5-6 s with psycopg for a 1,000-switch window). ``COPY (SELECT ...) TO STDOUT
(FORMAT binary)`` of a query whose every column is ``float8`` and never NULL has rows of one
fixed layout, which numpy reads as a structured array:

- the header: the 11-byte signature, a 32-bit flags field, a 32-bit header-extension length
  and that many bytes;
- per row: a 16-bit field count, then per field a 32-bit length (8) and the big-endian
  float8;
- the trailer: a field count of -1.

``float8_rows`` decodes such a stream as it arrives (in blocks of any size), a bounded number
of rows at a time, and refuses anything else with ``ValueError`` (a NULL, another type, a
cut stream) rather than guessing.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = len(SIGNATURE) + 8  # the signature, the flags, the extension's length
_TRAILER = b"\xff\xff"


def row_dtype(width: int) -> np.dtype[np.void]:
    """The layout of one row of ``width`` float8 fields."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i in range(width):
        fields += [(f"length{i}", ">i4"), (f"value{i}", ">f8")]
    return np.dtype(fields)


def float8_rows(blocks: Iterable[bytes | bytearray | memoryview], width: int,
                chunk_rows: int = 100_000) -> np.ndarray:
    """The rows (shape rows x ``width``, float64) of a binary COPY stream of ``width``
    non-NULL float8 columns; decoded ``chunk_rows`` at a time."""
    layout = row_dtype(width)
    size = layout.itemsize
    buf = bytearray()
    header_done = False
    parts: list[np.ndarray] = []
    for block in blocks:
        buf += block
        if not header_done:
            if len(buf) < _HEADER:
                continue
            if bytes(buf[:len(SIGNATURE)]) != SIGNATURE:
                raise ValueError("not a binary COPY stream (signature)")
            skip = _HEADER + int.from_bytes(buf[_HEADER - 4:_HEADER], "big")
            if len(buf) < skip:
                continue
            del buf[:skip]
            header_done = True
        if len(buf) >= size * chunk_rows:
            n = len(buf) // size * size
            parts.append(_decode(buf[:n], layout, width))
            del buf[:n]
    if not header_done:
        raise ValueError("binary COPY stream cut short (header)")
    if len(buf) < len(_TRAILER) or bytes(buf[-len(_TRAILER):]) != _TRAILER or \
            (len(buf) - len(_TRAILER)) % size:
        raise ValueError("binary COPY stream cut short or of another layout (trailer)")
    parts.append(_decode(buf[:len(buf) - len(_TRAILER)], layout, width))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _decode(raw: bytearray, layout: np.dtype[np.void], width: int) -> np.ndarray:
    rows = np.frombuffer(bytes(raw), dtype=layout)
    if len(rows) and (np.any(rows["count"] != width) or any(
            np.any(rows[f"length{i}"] != 8) for i in range(width))):
        raise ValueError(f"binary COPY rows are not {width} non-NULL float8 fields")
    out = np.empty((len(rows), width))
    for i in range(width):
        out[:, i] = rows[f"value{i}"]
    return out
