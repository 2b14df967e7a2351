"""Inventory generation, import/export round trip, and all-or-nothing import."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from app.db.models import Interface, Link, Switch
from app.inventory import (
    InventoryError,
    dump_yaml,
    export_inventory,
    import_inventory,
    parse_inventory,
)
from fabricsim.topology import FabricParams, generate_fabric
from tests.conftest import Database


def demo(**kw: Any) -> dict[str, Any]:
    return generate_fabric(FabricParams(**kw))


def test_generator_builds_spine_leaf_tor() -> None:
    inv = demo(pods=3, tors_per_pod=4, leaves_per_pod=2, spines=4, hosts_per_tor=16,
               access_speed_gbps=200, driver="sonic")
    roles = [s["role"] for s in inv["switches"]]
    assert roles.count("spine") == 4
    assert roles.count("leaf") == 3 * 2
    assert roles.count("tor") == 3 * 4
    tor = next(s for s in inv["switches"] if s["role"] == "tor")
    host_ports = [i for i in tor["interfaces"] if i["peer"].startswith("gpu-")]
    uplinks = [i for i in tor["interfaces"] if not i["peer"].startswith("gpu-")]
    assert len(host_ports) == 16 and {i["speed_gbps"] for i in host_ports} == {200}
    assert len(uplinks) == 2 and {i["speed_gbps"] for i in uplinks} == {400}
    # every leaf connects to every spine and to every TOR of its pod
    links = len(inv["links"])
    assert links == 3 * 4 * 2 + 3 * 2 * 4
    assert tor["buffer_bytes"] == 64 * 1024 * 1024  # Spectrum-3 class at 200G
    spine = next(s for s in inv["switches"] if s["role"] == "spine")
    assert {i["speed_gbps"] for i in spine["interfaces"]} == {400}


def test_generator_comware_names() -> None:
    inv = demo(driver="hp_comware", pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1,
               hosts_per_tor=2)
    tor = next(s for s in inv["switches"] if s["role"] == "tor")
    assert [i["name"] for i in tor["interfaces"]] == [
        "HundredGigE1/0/1", "HundredGigE1/0/2", "FourHundredGigE1/0/3"]
    assert tor["model"].startswith("H3C")


def test_generator_rejects_bad_params() -> None:
    with pytest.raises(ValueError, match="access_speed_gbps"):
        demo(access_speed_gbps=150)


def test_round_trip(db: Database) -> None:
    inv = demo(pods=2, tors_per_pod=2)
    with db.session() as s:
        summary = import_inventory(s, parse_inventory(dump_yaml(inv)))
        s.commit()
    assert summary.switches_created == 2 + 4 + 4
    with db.session() as s:
        exported = export_inventory(s)
    assert parse_inventory(dump_yaml(exported)) == parse_inventory(dump_yaml(inv))
    # importing the export again changes nothing
    with db.session() as s:
        again = import_inventory(s, parse_inventory(dump_yaml(exported)))
        s.commit()
        assert again.switches_created == 0 and again.switches_updated == 10
        assert export_inventory(s) == exported


def _bad_cases() -> list[tuple[str, Any, str]]:
    base = demo(pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1, hosts_per_tor=2)
    cases: list[tuple[str, Any, str]] = [
        ("yaml syntax", "switches: [\n  - name: x\n  role", "YAML syntax error at line")
    ]

    dup = copy.deepcopy(base)
    dup["switches"].append(copy.deepcopy(dup["switches"][0]))
    cases.append(("duplicate switch", dup, "switches[3] (spine-1) > name: duplicate switch name"))

    dup_if = copy.deepcopy(base)
    tor_ifaces = dup_if["switches"][2]["interfaces"]
    tor_ifaces.append(copy.deepcopy(tor_ifaces[0]))
    cases.append(("duplicate interface", dup_if,
                  "switches[2] (tor-p1-1) > interfaces[3] (Ethernet0) > name: duplicate"))

    drv = copy.deepcopy(base)
    drv["switches"][1]["driver"] = "junos"
    cases.append(("unknown driver", drv, "switches[1] (leaf-p1-1) > driver: unknown driver 'junos'"))

    role = copy.deepcopy(base)
    role["switches"][2]["role"] = "core"
    cases.append(("unknown role", role, "switches[2] (tor-p1-1) > role:"))

    speed = copy.deepcopy(base)
    speed["switches"][2]["interfaces"][1]["speed_gbps"] = "fast"
    cases.append(("non-numeric speed", speed,
                  "switches[2] (tor-p1-1) > interfaces[1] (Ethernet4) > speed_gbps: must be a number"))

    link = copy.deepcopy(base)
    link["links"][0]["b_interface"] = "Ethernet96"
    cases.append(("link to missing interface", link,
                  "links[0] > b_interface: switch 'leaf-p1-1' has no interface 'Ethernet96'"))

    link_sw = copy.deepcopy(base)
    link_sw["links"][0]["a_switch"] = "tor-p9-9"
    cases.append(("link to missing switch", link_sw, "links[0] > a_switch: unknown switch 'tor-p9-9'"))

    secret = copy.deepcopy(base)
    secret["switches"][0]["credentials_ref"] = "hunter2"
    cases.append(("literal secret", secret, "switches[0] (spine-1) > credentials_ref"))

    inject = copy.deepcopy(base)
    inject["switches"][2]["interfaces"][0]["name"] = "Ethernet0\nreboot"
    cases.append(("newline in interface", inject, "interfaces[0]"))
    return cases


@pytest.mark.parametrize("label,data,message", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_file_changes_nothing(db: Database, label: str, data: Any, message: str) -> None:
    good = demo(pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1, hosts_per_tor=2)
    with db.session() as s:
        import_inventory(s, parse_inventory(dump_yaml(good)))
        s.commit()
        before = export_inventory(s)
        counts = [s.scalar(select(func.count(m.id))) for m in (Switch, Interface, Link)]
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    with pytest.raises(InventoryError) as err:
        parse_inventory(text)
    assert message in str(err.value), str(err.value)
    with db.session() as s:
        assert export_inventory(s) == before
        assert [s.scalar(select(func.count(m.id))) for m in (Switch, Interface, Link)] == counts


def test_import_failure_mid_write_rolls_back(db: Database) -> None:
    """Validation passes but the database refuses a write: the whole import is undone."""
    from app.db.session import session_scope

    good = demo(pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1, hosts_per_tor=2)
    inv = parse_inventory(dump_yaml(good))
    with pytest.raises(RuntimeError), session_scope(db.factory) as s:
        import_inventory(s, inv)
        raise RuntimeError("crash after the writes, before commit")
    with db.session() as s:
        assert s.scalar(select(func.count(Switch.id))) == 0
