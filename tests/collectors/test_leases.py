"""Collector leases: fair share, no double ownership, takeover of a dead worker's switches."""

from __future__ import annotations

import pytest

from collectors.leases import LeaseManager
from tests.collectors.helpers import load_fabric
from tests.conftest import Database


@pytest.fixture
def switches(db: Database) -> Database:
    load_fabric(db, pods=2, tors_per_pod=3, leaves_per_pod=2, spines=2, hosts_per_tor=1)
    return db  # 2 spines + 4 leaves + 6 tors = 12 switches


def test_two_workers_split_and_takeover_within_one_lease(switches: Database) -> None:
    lease_s = 30.0
    a = LeaseManager(switches.engine, "a", lease_s=lease_s)
    b = LeaseManager(switches.engine, "b", lease_s=lease_s)
    t = 1_000_000_000
    assert len(a.claim(t)) == 12  # alone, a takes everything
    b.claim(t + 1)  # b joins: the share is now 6 but a still holds all 12
    a.claim(t + 10_000)  # a sheds what exceeds its share
    b.claim(t + 10_001)
    assert len(a.owned) == 6 and len(b.owned) == 6 and not (a.owned & b.owned)
    # sticky: renewing keeps the same switches
    kept = set(a.owned)
    a.claim(t + 20_000)
    assert a.owned == kept
    # b dies at t + 10_001 (no more renewals). Its leases hold for 2/3 of a lease period...
    a.claim(t + 10_001 + 15_000)
    assert a.owned == kept
    # ...and within one lease period of b's last renewal a has them all.
    a.claim(t + 10_001 + int(lease_s * 1000 * 2 / 3) + 1)
    assert len(a.owned) == 12


def test_disabled_switch_is_released(switches: Database) -> None:
    from sqlalchemy import select

    from app.db.models import Switch

    a = LeaseManager(switches.engine, "a")
    assert len(a.claim()) == 12
    with switches.session() as s:
        s.scalars(select(Switch).where(Switch.name == "spine-1")).one().enabled = False
        s.commit()
    assert len(a.claim()) == 11


@pytest.mark.postgres
def test_concurrent_claims_never_overlap(switches: Database) -> None:
    if switches.backend != "postgres":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    import threading

    managers = [LeaseManager(switches.engine, f"w{i}") for i in range(4)]
    for m in managers:  # register all four workers first so the share is 3
        m.claim()
    barrier = threading.Barrier(4)

    def run(m: LeaseManager) -> None:
        barrier.wait()
        for _ in range(5):
            m.claim()

    threads = [threading.Thread(target=run, args=(m,)) for m in managers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    owned = [m.owned for m in managers]
    union: set[int] = set().union(*owned)
    assert sum(len(o) for o in owned) == len(union)  # nobody shares a switch
    assert len(union) == 12


def test_a_worker_whose_renewal_fails_stops_polling_when_its_leases_expire(
        switches: Database) -> None:
    a = LeaseManager(switches.engine, "a", lease_s=30.0)
    t = 2_000_000_000
    assert len(a.claim(t)) == 12
    assert len(a.current(t + 19_000)) == 12  # held for 2/3 of the lease
    assert a.current(t + 20_001) == set()  # no renewal since: another worker may own them
