"""The daemon's per-port verdicts in ``port_profiles``: one bulk upsert per cycle on SQLite
and PostgreSQL; a port's ``since_ms`` moves only when its profile does."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from app.daemon import TunerDaemon, _CycleArrays, _Port
from app.db.models import PortProfile
from tests.collectors.helpers import interface_ids, load_fabric
from tests.conftest import Database


def port(switch_id: int, iface_id: int, name: str, profile: str, p: float) -> _Port:
    out = _Port(switch_id, iface_id, name, 3, 100, 3.0, _CycleArrays(np.zeros((1, 3)), {}), 0)
    out.profile, out.probability = profile, p
    return out


def stored(db: Database) -> dict[str, tuple[str, float, int, int]]:
    with db.session() as s:
        return {str(r.interface_id): (r.profile, r.probability, r.since_ms, r.updated_ms)
                for r in s.scalars(select(PortProfile))}


def test_port_profiles_are_upserted_and_keep_their_since(db: Database) -> None:
    switches = load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1)
    tor = switches["tor-p1-1"].id
    ids = interface_ids(db, "tor-p1-1")
    a, b = ids["Ethernet0"], ids["Ethernet4"]
    with db.session() as s:
        TunerDaemon._record_profiles(s, [port(tor, a, "Ethernet0", "incast", 0.6),
                                         port(tor, b, "Ethernet4", "allreduce", 0.9)], 1_000)
        s.commit()
    assert stored(db) == {str(a): ("incast", 0.6, 1_000, 1_000),
                          str(b): ("allreduce", 0.9, 1_000, 1_000)}
    with db.session() as s:  # Ethernet0 still incast, Ethernet4 turns hadoop
        TunerDaemon._record_profiles(s, [port(tor, a, "Ethernet0", "incast", 0.7),
                                         port(tor, b, "Ethernet4", "hadoop", 0.5)], 2_000)
        s.commit()
    assert stored(db) == {str(a): ("incast", 0.7, 1_000, 2_000),
                          str(b): ("hadoop", 0.5, 2_000, 2_000)}
    with db.session() as s:  # two cycles' verdicts in one transaction: the second wins
        TunerDaemon._record_profiles(s, [port(tor, a, "Ethernet0", "websearch", 0.4)], 3_000)
        TunerDaemon._record_profiles(s, [port(tor, a, "Ethernet0", "websearch", 0.8),
                                         port(tor, b, "Ethernet4", "hadoop", 0.6)], 4_000)
        s.commit()
    assert stored(db) == {str(a): ("websearch", 0.8, 3_000, 4_000),
                          str(b): ("hadoop", 0.6, 2_000, 4_000)}
