"""The per-port profile gauges follow the classifier's verdicts exactly: one series per port
for its current profile, moved when the profile changes, removed when the port is gone."""

from __future__ import annotations

from prometheus_client import REGISTRY

from app import metrics


def series() -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    out: dict[str, dict[tuple[str, ...], float]] = {
        "waterline_port_profile": {}, "waterline_port_profile_probability": {}}
    for family in REGISTRY.collect():  # as /metrics sees them
        for s in family.samples:
            if s.name in out:
                out[s.name][tuple(s.labels[k] for k in sorted(s.labels))] = s.value
    return out["waterline_port_profile"], out["waterline_port_profile_probability"]


def test_port_profile_gauges_follow_the_verdicts() -> None:
    metrics.export_port_profiles([("tor-1", "Ethernet0", "3", "incast", 0.6),
                                  ("tor-1", "Ethernet4", "3", "allreduce", 0.9)])
    profiles, probability = series()
    # labels sorted by name: interface, priority, profile, switch
    assert profiles == {("Ethernet0", "3", "incast", "tor-1"): 1.0,
                        ("Ethernet4", "3", "allreduce", "tor-1"): 1.0}
    assert probability == {("Ethernet0", "3", "tor-1"): 0.6, ("Ethernet4", "3", "tor-1"): 0.9}
    # Ethernet0 turns hadoop, Ethernet4 is gone, Ethernet8 is new
    metrics.export_port_profiles([("tor-1", "Ethernet0", "3", "hadoop", 0.5),
                                  ("tor-1", "Ethernet8", "4", "idle", 1.0)])
    profiles, probability = series()
    assert profiles == {("Ethernet0", "3", "hadoop", "tor-1"): 1.0,
                        ("Ethernet8", "4", "idle", "tor-1"): 1.0}
    assert probability == {("Ethernet0", "3", "tor-1"): 0.5, ("Ethernet8", "4", "tor-1"): 1.0}
    metrics.export_port_profiles([])
    assert series() == ({}, {})
