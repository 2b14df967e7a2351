"""Flow-size CDFs of the public HPCC traffic generator and Poisson flow arrivals.

The CDFs live beside this module in ``workloads/<name>.txt`` ("bytes cumulative%" per line,
``#`` comments allowed). Sizes are drawn by linear interpolation of the CDF (REFERENCE.md,
"Workload flow-size CDFs"); arrivals are Poisson with mean gap ``mean_size x 8 / (bw x load)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

WORKLOAD_DIR = Path(__file__).with_name("workloads")
WORKLOADS = ("websearch", "hadoop", "alistorage2019")


@dataclass(frozen=True)
class FlowSizeCdf:
    """A piecewise-linear flow-size CDF: ``sizes_bytes[i]`` has cumulative probability ``cum[i]``."""

    name: str
    sizes_bytes: np.ndarray
    cum: np.ndarray  # 0..1, non-decreasing, last == 1

    @property
    def mean_bytes(self) -> float:
        """Mean of the linearly interpolated distribution (uniform within each segment)."""
        mids = 0.5 * (self.sizes_bytes[1:] + self.sizes_bytes[:-1])
        return float(np.sum(mids * np.diff(self.cum)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` flow sizes (bytes, >= 1) by inverse-CDF linear interpolation."""
        u = rng.random(n)
        sizes: np.ndarray = np.maximum(1.0, np.round(np.interp(u, self.cum, self.sizes_bytes)))
        return sizes

    def fraction_below(self, size_bytes: float) -> float:
        return float(np.interp(size_bytes, self.sizes_bytes, self.cum))


def parse_cdf(text: str, name: str = "cdf") -> FlowSizeCdf:
    """Parse "bytes cumulative%" lines; the percentages must rise to 100."""
    sizes: list[float] = []
    cums: list[float] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{name}:{lineno}: expected 'bytes cumulative%', got {raw!r}")
        sizes.append(float(parts[0]))
        cums.append(float(parts[1]) / 100.0)
    if len(sizes) < 2:
        raise ValueError(f"{name}: a CDF needs at least two points")
    s = np.asarray(sizes)
    c = np.asarray(cums)
    if np.any(np.diff(s) < 0) or np.any(np.diff(c) < 0):
        raise ValueError(f"{name}: sizes and percentages must be non-decreasing")
    if abs(c[-1] - 1.0) > 1e-9 or c[0] < 0:
        raise ValueError(f"{name}: cumulative percentages must end at 100")
    return FlowSizeCdf(name=name, sizes_bytes=s, cum=c)


@cache
def load_cdf(name: str) -> FlowSizeCdf:
    """Load a shipped CDF by name (``websearch``, ``hadoop``, ``alistorage2019``)."""
    path = WORKLOAD_DIR / f"{name}.txt"
    if not path.is_file():
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    return parse_cdf(path.read_text(), name)


def poisson_arrivals(
    rng: np.random.Generator,
    cdf: FlowSizeCdf,
    *,
    speed_gbps: float,
    load: float,
    duration_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson flow arrivals that offer ``load`` x ``speed_gbps`` on average.

    Returns ``(arrival_s, size_bytes)`` sorted by arrival time, all arrivals < ``duration_s``.
    """
    if load <= 0 or duration_s <= 0:
        return np.zeros(0), np.zeros(0)
    mean_gap_s = cdf.mean_bytes * 8.0 / (speed_gbps * 1e9 * load)
    expected = duration_s / mean_gap_s
    n = int(expected + 6.0 * np.sqrt(expected) + 16)
    gaps = rng.exponential(mean_gap_s, n)
    t = np.cumsum(gaps)
    while t[-1] < duration_s:  # pragma: no cover - 6 sigma headroom makes this rare
        more = np.cumsum(rng.exponential(mean_gap_s, n)) + t[-1]
        t = np.concatenate([t, more])
    t = t[t < duration_s]
    sizes = cdf.sample(rng, len(t))
    return t, sizes
