"""Traffic descriptors: the few numbers per profile that decide where its best waterlines lie.

The optimiser models the simulator's objective as a function of (descriptors, waterlines)
(``tuning.landscape``) and estimates the descriptors of live traffic from telemetry
(``tuning.estimator``). A descriptor vector is the profile's own part, then the port context:

- ``allreduce``: log2 of the elephant count;
- ``incast``: log2 of the burst (degree x mean flow size) in bandwidth-delay products, the
  offered load -- the burst is what fills the queue, and what the watermark shows;
- ``websearch`` / ``hadoop``: the offered load, and which of the two mixes it is (0 / 1): both
  are Poisson arrivals of the HPCC flow-size CDFs, so one landscape learns them together
  (``FAMILIES``), twice the scenarios for each;
- context (every profile, known from the inventory): log2(speed / 100G), log2(cable / 3 m),
  log2(buffer / BDP) - 8.

Parameters a switch's counters do not reveal (measured: an estimator's error as large as the
parameter's own spread) are not descriptors -- whether a collective is phased, the sender
count of a Poisson mix, the ingress fan-in of an incast: the landscapes learn their average
effect over the training mix, which is the right answer for a switch that cannot tell.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from tuning.features import bdp_bytes

PROFILE_DESCRIPTORS: dict[str, tuple[str, ...]] = {
    "allreduce": ("log2_flows",),
    "incast": ("log2_burst_bdp", "load"),
    "websearch": ("load", "hadoop_mix"),
    "hadoop": ("load", "hadoop_mix"),
}
# Profiles whose landscapes are one model (their descriptors tell them apart).
FAMILIES: dict[str, tuple[str, ...]] = {"websearch": ("websearch", "hadoop"),
                                        "hadoop": ("websearch", "hadoop")}
CONTEXT_DESCRIPTORS: tuple[str, ...] = ("log2_speed_100g", "log2_cable_3m", "log2_buffer_bdp")
# Defaults of fabricsim's profiles (fabricsim.traffic.DEFAULTS), for parameters left unset.
_DEFAULTS: dict[str, dict[str, float]] = {
    "allreduce": {"flows": 8},
    "incast": {"incast_degree": 32, "load": 0.3},
    "websearch": {"load": 0.5},
    "hadoop": {"load": 0.5},
}


def names(profile: str) -> tuple[str, ...]:
    return PROFILE_DESCRIPTORS[profile] + CONTEXT_DESCRIPTORS


def context(speed_gbps: float, cable_m: float, buffer_bytes: float) -> np.ndarray:
    """The context part of a descriptor vector."""
    return np.array([math.log2(max(1.0, float(speed_gbps)) / 100.0),
                     math.log2(max(0.1, float(cable_m)) / 3.0),
                     math.log2(max(1.0, float(buffer_bytes)) / bdp_bytes(speed_gbps)) - 8.0])


@functools.lru_cache(maxsize=1)
def _incast_mean_bytes() -> float:
    from fabricsim.workloads import load_cdf

    return float(load_cdf("alistorage2019").mean_bytes)


def traffic_part(profile: str, params: dict[str, Any], speed_gbps: float) -> np.ndarray:
    """The profile's own descriptors of a scenario's parameters (fabricsim names)."""
    d = _DEFAULTS[profile]
    p = {k: v for k, v in params.items() if v is not None}
    if profile == "allreduce":
        return np.array([math.log2(float(p.get("flows", d["flows"])))])
    if profile == "incast":
        degree = float(p.get("incast_degree", p.get("flows", d["incast_degree"])))
        size = float(p.get("size_bytes") or _incast_mean_bytes())
        return np.array([math.log2(degree * size / bdp_bytes(speed_gbps)),
                         float(p.get("load", d["load"]))])
    return np.array([float(p.get("load", d["load"])), 1.0 if profile == "hadoop" else 0.0])


def of_scenario(profile: str, params: dict[str, Any], speed_gbps: float, cable_m: float,
                buffer_bytes: float) -> np.ndarray:
    """The full descriptor vector (``names(profile)``) of a known scenario."""
    return np.concatenate([traffic_part(profile, params, speed_gbps),
                           context(speed_gbps, cable_m, buffer_bytes)])
