"""Telemetry blocks: each ingest batch's samples packed into one row, for the window reads.

The daemon reads the last window of every lossless port of the fabric every cycle (1.5 M
samples for 1,000 switches of 64 ports, two priorities, twelve polls). Through a DB-API cursor
that is a Python object per value, 18 M of them: about 3 s on SQLite and 1.5 s with
PostgreSQL's binary COPY, before any work. So each batch the ingest writes to
``telemetry_samples`` (for the series, rollups and hot spots) is also stored, in the same
transaction, as one ``telemetry_blocks`` row: the batch's ``BLOCK_COLUMNS`` as little-endian
float64, row after row (NaN where a value is missing, or not finite). A window is then a few
dozen rows whose payloads numpy reads as they are.

Blocks are kept for the longest window anyone reads (``MAX_WINDOW_S``, one day) or the raw
retention if shorter; the samples stay the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tuning.features import WINDOW_FIELDS

WINDOW_COLUMNS: tuple[str, ...] = WINDOW_FIELDS
"""The sample columns a window holds: the features' inputs."""

ID_COLUMNS: tuple[str, ...] = ("switch_id", "interface_id", "priority", "ts_ms")
BLOCK_COLUMNS: tuple[str, ...] = (*ID_COLUMNS, *WINDOW_COLUMNS)
BLOCK_DTYPE = np.dtype("<f8")
MAX_WINDOW_S = 86_400
"""The longest window the daemon (``tuner_window_s``) or the API (``window``) reads."""


def pack_block(columns: Mapping[str, Sequence[Any]]) -> tuple[int, int, int, bytes]:
    """``(rows, ts_min_ms, ts_max_ms, payload)`` of a batch given as columns (lists of numbers,
    None where missing). Ids and times must be integers a float64 holds exactly; a missing or
    non-finite value of a window column is stored as NaN."""
    rows = len(columns["ts_ms"])
    values = np.empty((rows, len(BLOCK_COLUMNS)), dtype=BLOCK_DTYPE)
    for k, name in enumerate(BLOCK_COLUMNS):
        values[:, k] = np.asarray(columns[name], dtype=float)  # None -> NaN
    ids = values[:, :len(ID_COLUMNS)]
    if rows and (not np.isfinite(ids).all() or np.any(np.abs(ids) > 2**53)
                 or np.any(ids != np.round(ids))):
        raise ValueError("a block's ids and times must be integers below 2**53")
    window = values[:, len(ID_COLUMNS):]
    window[~np.isfinite(window)] = np.nan
    ts = values[:, 3]
    low, high = (int(ts.min()), int(ts.max())) if rows else (0, 0)
    return rows, low, high, values.tobytes()


def unpack_block(payload: bytes, rows: int) -> np.ndarray:
    """The (rows x BLOCK_COLUMNS) float64 array of a stored block; a payload of the wrong size
    is refused (``ValueError``), never guessed at."""
    width = len(BLOCK_COLUMNS) * BLOCK_DTYPE.itemsize
    if rows < 0 or len(payload) != rows * width:
        raise ValueError(f"a telemetry block of {rows} rows needs {rows * width} bytes, "
                         f"it has {len(payload)}")
    return np.frombuffer(payload, dtype=BLOCK_DTYPE).reshape(rows, len(BLOCK_COLUMNS))
