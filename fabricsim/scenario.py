"""Traffic scenarios for the virtual fabric: which profile each switch port carries, over time.

YAML (or the same dict)::

    seed: 7
    default: {profile: allreduce, params: {flows: 8}}      # optional; else the built-in mix
    schedule:
      - at_s: 0
        match: {role: tor}                                   # pod | switch | role | interface | priority
        profile: incast
        params: {incast_degree: 32, load: 0.3}
      - at_s: 60
        match: {switch: tor-p1-1, interface: Ethernet0}
        profile: idle

``match`` keys are ANDed; ``switch`` and ``interface`` accept shell-style wildcards
(``tor-p1-*``), ``pod``/``priority`` an int or a list. Later entries win over earlier ones; an
entry applies from ``at_s`` (simulated seconds since the fabric started) on.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .traffic import PROFILES

MATCH_KEYS = ("pod", "switch", "role", "interface", "priority")


@dataclass(frozen=True)
class Assignment:
    """One profile assignment: from ``at_s`` on, ports matching ``match`` carry ``profile``."""

    at_s: float
    match: dict[str, Any]
    profile: str
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, *, switch: str, role: str, pod: int | None, interface: str,
                priority: int) -> bool:
        for key, want in self.match.items():
            if key == "switch":
                if not fnmatch.fnmatchcase(switch, str(want)):
                    return False
            elif key == "interface":
                if not fnmatch.fnmatchcase(interface, str(want)):
                    return False
            elif key == "role":
                roles = want if isinstance(want, list) else [want]
                if role not in [str(r) for r in roles]:
                    return False
            elif key in ("pod", "priority"):
                values = want if isinstance(want, list) else [want]
                have = pod if key == "pod" else priority
                if have is None or int(have) not in [int(v) for v in values]:
                    return False
        return True


@dataclass
class Scenario:
    seed: int = 0
    default: Assignment | None = None
    schedule: list[Assignment] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        if not isinstance(data, dict):
            raise ValueError("a scenario is a mapping with seed, default, schedule")
        unknown = set(data) - {"seed", "default", "schedule"}
        if unknown:
            raise ValueError(f"unknown scenario keys: {sorted(unknown)}")
        seed = int(data.get("seed", 0))
        default = None
        if data.get("default") is not None:
            d = data["default"]
            default = _assignment({"at_s": 0, "match": {}, **d}, "default")
        schedule = [_assignment(item, f"schedule[{i}]")
                    for i, item in enumerate(data.get("schedule") or [])]
        schedule.sort(key=lambda a: a.at_s)  # stable: equal times keep file order
        return cls(seed=seed, default=default, schedule=schedule)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> Scenario:
        if isinstance(text_or_path, Path) or (
                isinstance(text_or_path, str) and "\n" not in text_or_path
                and Path(text_or_path).is_file()):
            text = Path(text_or_path).read_text()
        else:
            text = str(text_or_path)
        return cls.from_dict(yaml.safe_load(text) or {})


def _assignment(item: Any, where: str) -> Assignment:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a mapping")
    unknown = set(item) - {"at_s", "match", "profile", "params"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    profile = item.get("profile")
    if profile not in PROFILES:
        raise ValueError(f"{where}: profile must be one of {', '.join(PROFILES)}")
    match = item.get("match") or {}
    if not isinstance(match, dict) or set(match) - set(MATCH_KEYS):
        raise ValueError(f"{where}: match keys must be among {', '.join(MATCH_KEYS)}")
    params = item.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"{where}: params must be a mapping")
    at_s = float(item.get("at_s", 0.0))
    if at_s < 0:
        raise ValueError(f"{where}: at_s must be >= 0")
    return Assignment(at_s=at_s, match=dict(match), profile=str(profile), params=dict(params))
