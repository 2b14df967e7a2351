"""The daemon's per-port verdicts in ``port_profiles``: one bulk upsert per cycle on SQLite
and PostgreSQL; a port's ``since_ms`` moves only when its profile does."""

from __future__ import annotations

import json

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


def test_tracks_are_inserted_then_updated_in_one_statement(db: Database) -> None:
    """``bulk_upsert`` with a JSON column (the trackers' states): new switch priorities are
    inserted, known ones updated, other rows left alone; the JSON reads back as written."""
    from app.db.models import ProfileTrack
    from app.db.session import bulk_upsert

    switches = load_fabric(db, pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1)
    a, b = switches["tor-p1-1"].id, switches["tor-p1-2"].id
    table = ProfileTrack.__table__
    columns = ("switch_id", "priority", "state", "updated_ms")

    def updates(_table: object, new: object) -> dict[str, object]:
        return {"state": new.state, "updated_ms": new.updated_ms}  # type: ignore[attr-defined]

    with db.session() as s:
        bulk_upsert(s, table, columns, [(a, 3, json.dumps({"cycles": 1, "x": [0.5]}), 10),
                                        (a, 4, json.dumps({"cycles": 1}), 10)], updates)
        s.commit()
    with db.session() as s:
        bulk_upsert(s, table, columns, [(a, 3, json.dumps({"cycles": 2, "x": [0.25]}), 20),
                                        (b, 3, json.dumps({"cycles": 1}), 20)], updates)
        s.commit()
    with db.session() as s:
        got = {(r.switch_id, r.priority): (r.state, r.updated_ms)
               for r in s.scalars(select(ProfileTrack))}
    assert got == {(a, 3): ({"cycles": 2, "x": [0.25]}, 20), (a, 4): ({"cycles": 1}, 10),
                   (b, 3): ({"cycles": 1}, 20)}
