"""Switch and interface API through HTTP: auth, roles, validation, not-found, no secrets."""

from __future__ import annotations

from typing import Any

import pytest

from app.inventory import dump_yaml, import_inventory, parse_inventory
from fabricsim.topology import FabricParams, generate_fabric
from tests.conftest import Api


@pytest.fixture
def fabric(api: Api) -> dict[str, Any]:
    inv = generate_fabric(FabricParams(pods=2, tors_per_pod=2))
    with api.db.session() as s:
        import_inventory(s, parse_inventory(dump_yaml(inv)))
        s.commit()
    return inv


NEW_SWITCH = {
    "name": "tor-p9-1", "role": "tor", "pod": 9, "mgmt_host": "10.0.9.1", "mgmt_port": 22,
    "driver": "sonic", "model": "Mellanox SN3700", "buffer_bytes": 44040192,
    "credentials_ref": "env:SWITCH_PASSWORD",
    "interfaces": [{"name": "Ethernet0", "speed_gbps": 100, "peer": "gpu-9-1", "cable_m": 3}],
}


def test_health_and_ready(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}  # type: ignore[attr-defined]
    ready = api.client.get("/readyz")  # type: ignore[attr-defined]
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert api.client.get("/api/v1/readyz").status_code == 200  # type: ignore[attr-defined]


def test_list_and_filters(api: Api, fabric: dict[str, Any]) -> None:
    body = api.get("/api/v1/switches").json()
    assert body["total"] == 10
    assert {s["name"] for s in body["items"]} == {s["name"] for s in fabric["switches"]}
    tors = api.get("/api/v1/switches", params={"role": "tor", "pod": 2}).json()
    assert [s["name"] for s in tors["items"]] == ["tor-p2-1", "tor-p2-2"]
    assert api.get("/api/v1/switches", params={"role": "core"}).status_code == 422


def test_no_token_401_and_bad_token_401(api: Api, fabric: dict[str, Any]) -> None:
    r = api.client.get("/api/v1/switches")  # type: ignore[attr-defined]
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = api.client.get("/api/v1/switches", headers={"Authorization": "Bearer wl_nope"})  # type: ignore[attr-defined]
    assert r.status_code == 401


def test_viewer_cannot_write_403(api: Api, fabric: dict[str, Any]) -> None:
    r = api.post("/api/v1/switches", role="viewer", json=NEW_SWITCH)
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    r = api.post("/api/v1/switches", role="operator", json=NEW_SWITCH)
    assert r.status_code == 403
    assert api.delete("/api/v1/switches/spine-1", role="viewer").status_code == 403


def test_unknown_switch_404(api: Api, fabric: dict[str, Any]) -> None:
    r = api.get("/api/v1/switches/nope-1")
    assert r.status_code == 404 and "nope-1" in r.json()["detail"]
    assert api.get("/api/v1/switches/spine-1/interfaces/Ethernet999").status_code == 404


def test_create_get_update_delete(api: Api, fabric: dict[str, Any]) -> None:
    r = api.post("/api/v1/switches", json=NEW_SWITCH)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["interfaces"][0]["name"] == "Ethernet0"
    assert "credentials_ref" not in created and created["has_credentials"] is True
    assert api.post("/api/v1/switches", json=NEW_SWITCH).status_code == 409
    r = api.patch("/api/v1/switches/tor-p9-1", json={"enabled": False, "pod": 8})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["pod"] == 8
    r = api.post("/api/v1/switches/tor-p9-1/interfaces",
                 json={"name": "Ethernet4", "speed_gbps": 100, "cable_m": 3})
    assert r.status_code == 201
    r = api.patch("/api/v1/switches/tor-p9-1/interfaces/Ethernet4", json={"cable_m": 7.5})
    assert r.json()["cable_m"] == 7.5
    assert len(api.get("/api/v1/switches/tor-p9-1/interfaces").json()) == 2
    assert api.delete("/api/v1/switches/tor-p9-1/interfaces/Ethernet4").status_code == 204
    assert api.delete("/api/v1/switches/tor-p9-1").status_code == 204
    assert api.get("/api/v1/switches/tor-p9-1").status_code == 404


def test_comware_interface_names_with_slashes(api: Api) -> None:
    body = dict(NEW_SWITCH, name="h3c-1", driver="hp_comware",
                interfaces=[{"name": "HundredGigE1/0/1", "speed_gbps": 100}])
    assert api.post("/api/v1/switches", json=body).status_code == 201
    r = api.get("/api/v1/switches/h3c-1/interfaces/HundredGigE1/0/1")
    assert r.status_code == 200 and r.json()["speed_gbps"] == 100


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"role": "core"}, "role"),
        ({"driver": "junos"}, "driver"),
        ({"buffer_bytes": -5}, "buffer_bytes"),
        ({"mgmt_port": 70000}, "mgmt_port"),
        ({"name": "bad;name"}, "name"),
        ({"mgmt_host": "10.0.0.1; reboot"}, "mgmt_host"),
        ({"credentials_ref": "plaintext-password"}, "credentials_ref"),
        ({"interfaces": [{"name": "Ethernet0", "speed_gbps": "fast"}]}, "interfaces.0.speed_gbps"),
        ({"interfaces": [{"name": "Eth\n0", "speed_gbps": 100}]}, "interfaces.0.name"),
        ({"unexpected": 1}, "unexpected"),
        ({"mgmt_host": "999.999.999.999"}, "mgmt_host"),
        ({"mgmt_host": ":::::"}, "mgmt_host"),
        ({"mgmt_host": "[::1"}, "mgmt_host"),
        ({"mgmt_host": "-leading.example"}, "mgmt_host"),
        ({"buffer_bytes": True}, "buffer_bytes"),
        ({"buffer_bytes": "44040192"}, "buffer_bytes"),
        ({"enabled": "yes"}, "enabled"),
        ({"pod": 1.5}, "pod"),
        ({"interfaces": [{"name": f"Ethernet{i}", "speed_gbps": 100} for i in range(1025)]},
         "interfaces"),
    ],
)
def test_invalid_body_422_names_field(api: Api, patch: dict[str, Any], field: str) -> None:
    r = api.post("/api/v1/switches", json={**NEW_SWITCH, **patch})
    assert r.status_code == 422, r.text
    body = r.json()
    assert field in [e["field"] for e in body["errors"]], body
    assert body["errors"][0]["reason"]
    assert api.get("/api/v1/switches").json()["total"] == 0


def test_credentials_never_returned(api: Api, fabric: dict[str, Any]) -> None:
    for path in ("/api/v1/switches", "/api/v1/switches/spine-1", "/api/v1/topology",
                 "/api/v1/topology?format=yaml"):
        assert "SWITCH_PASSWORD" not in api.get(path).text
        assert "credentials_ref" not in api.get(path).text


def test_topology_export(api: Api, fabric: dict[str, Any]) -> None:
    topo = api.get("/api/v1/topology").json()
    assert len(topo["switches"]) == 10 and len(topo["links"]) == len(fabric["links"])
    assert topo["fabric"]["lossless_priorities"] == [3, 4]
    assert api.get("/api/v1/topology?format=yaml").text.startswith("fabric:")


def test_openapi_docs(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()  # type: ignore[attr-defined]
    assert "/api/v1/switches" in spec["paths"]
    assert api.client.get("/docs").status_code == 200  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", [
    "/api/v1/switches?pod=9223372036854775808", "/api/v1/switches?offset=99999999999999",
    "/api/v1/changes/99999999999999999999", "/api/v1/changes?offset=99999999999999",
    "/api/v1/audit?change_id=99999999999999", "/api/v1/telemetry/hotspots?pod=9999999999999",
    "/api/v1/telemetry/series?switch=a&interface=b&metric=utilisation&start=inf",
    "/api/v1/telemetry/series?switch=a&interface=b&metric=utilisation&end=1e300",
    "/api/v1/telemetry/series?switch=a&interface=b&metric=utilisation&start=-1e300",
    "/api/v1/proposals/0",
])
def test_absurd_numbers_are_422_not_500(api: Api, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 422, (path, r.status_code, r.text)


def test_anonymous_bad_body_is_401_not_422(api: Api) -> None:
    r = api.client.post("/api/v1/switches", content=b"{not json")  # type: ignore[attr-defined]
    assert r.status_code == 401
    r = api.client.post("/api/v1/changes", json={"x": 1})  # type: ignore[attr-defined]
    assert r.status_code == 401


def test_a_bad_or_revoked_token_is_401_before_the_body_is_read(api: Api) -> None:
    """A token that does not authenticate gets 401 whatever the body -- not the body's 422 --
    and a body over the limit is refused unread (413), before any route parses it."""
    from app.api.main import MAX_BODY_BYTES

    bad = {"Authorization": "Bearer wl_invalid"}
    r = api.client.post("/api/v1/switches", content=b"{bad", headers=bad)  # type: ignore[attr-defined]
    assert r.status_code == 401 and r.json()["detail"] == "invalid or revoked token"
    big = {**api.headers("admin"), "Content-Length": str(MAX_BODY_BYTES + 1)}
    r = api.client.post("/api/v1/switches", content=b"{}", headers=big)  # type: ignore[attr-defined]
    assert r.status_code == 413 and "over the limit" in r.json()["detail"]
    r = api.client.post("/api/v1/switches", content=b"{}", headers={  # type: ignore[attr-defined]
        **bad, "Content-Length": str(MAX_BODY_BYTES + 1)})
    assert r.status_code == 401


def test_concurrent_creates_of_one_switch_are_201_and_409_never_500(
        api: Api, fabric: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = {**NEW_SWITCH, "name": "race-1"}
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(lambda _: api.post("/api/v1/switches", json=body).status_code,
                                range(6)))
    assert codes == [201, 409, 409, 409, 409, 409], codes
    itf = {"name": "Ethernet4", "speed_gbps": 100}
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(
            lambda _: api.post("/api/v1/switches/race-1/interfaces", json=itf).status_code,
            range(6)))
    assert codes == [201, 409, 409, 409, 409, 409], codes


def test_a_locked_switch_s_interfaces_cannot_be_edited(api: Api, fabric: dict[str, Any]) -> None:
    from sqlalchemy import select

    from app.db.models import ChangeSet, Switch, SwitchLock

    with api.db.session() as s:  # a change being applied to tor-p1-1
        sw = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
        change = ChangeSet(created_by="test", status="applying",
                           targets={"switches": ["tor-p1-1"]}, intent={})
        s.add(change)
        s.flush()
        s.add(SwitchLock(switch_id=sw.id, change_id=change.id))
        s.commit()
    r = api.patch("/api/v1/switches/tor-p1-1/interfaces/Ethernet0", json={"cable_m": 3.0})
    assert r.status_code == 409 and "locked by change" in r.text
    r = api.post("/api/v1/switches/tor-p1-1/interfaces", json={"name": "Ethernet200",
                                                              "speed_gbps": 100})
    assert r.status_code == 409 and "locked by change" in r.text


@pytest.mark.parametrize("path, code", [
    ("/api/v1/switches?health=weird", 422),
    ("/api/v1/changes?status=bogus", 422),
    ("/api/v1/proposals?status=bogus", 422),
    ("/api/v1/tuner/profiles?profile=bogus", 422),
    ("/api/v1/tuner/profiles?switch=nope", 404),
    ("/api/v1/proposals?switch=nope", 404),
])
def test_filters_are_validated(api: Api, fabric: dict[str, Any], path: str, code: int) -> None:
    r = api.get(path)
    assert r.status_code == code, (path, r.text)


@pytest.mark.parametrize("given, stored", [
    ("10.0.9.1", "10.0.9.1"), ("[fd00::1]", "fd00::1"), ("FD00:0:0::1", "fd00::1"),
    ("tor-p9-1.mgmt.example", "tor-p9-1.mgmt.example"),
])
def test_management_addresses_are_normalised(api: Api, given: str, stored: str) -> None:
    r = api.post("/api/v1/switches", json={**NEW_SWITCH, "mgmt_host": given})
    assert r.status_code == 201, r.text
    assert r.json()["mgmt_host"] == stored


def test_every_timestamp_carries_its_zone(api: Api) -> None:
    """SQLite hands stored times back without their zone; the API writes them in UTC with
    the offset, as PostgreSQL's (``app.timestamps``)."""
    assert api.post("/api/v1/switches", json=NEW_SWITCH).status_code == 201
    audit = api.get("/api/v1/audit").json()
    items = audit["items"] if isinstance(audit, dict) else audit
    assert items and all(e["ts"].endswith("Z") for e in items), items


def test_a_chunked_body_over_the_limit_is_413(api: Api) -> None:
    """No Content-Length to check up front: the body is counted as it is read."""
    import app.api.main as main

    def chunks() -> Any:
        for _ in range(40):
            yield b" " * (1 << 20)

    r = api.client.post("/api/v1/switches", content=chunks(),  # type: ignore[attr-defined]
                        headers={**api.headers("admin"), "Content-Type": "application/json"})
    assert r.status_code == 413 and f"{main.MAX_BODY_BYTES:,}" in r.json()["detail"], r.text


def test_422_reasons_say_what_is_wrong(api: Api) -> None:
    def post(body: bytes, kind: str) -> Any:
        return api.client.post("/api/v1/switches", content=body, headers={  # type: ignore[attr-defined]
            **api.headers("admin"), "Content-Type": kind})

    r = post(b'{"name": "x",}', "application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
    assert r.json()["detail"].startswith("body: not valid JSON at character 13"), r.text
    r = post(b'{"name": "x"}', "text/plain")
    assert r.status_code == 422 and "must be a JSON object" in r.json()["detail"], r.text
    r = api.get("/api/v1/telemetry/hotspots", params={"window": "nan"})
    assert r.status_code == 422 and "window: must be a finite number" in r.json()["detail"], r.text


def test_the_interface_cap_holds_for_added_interfaces(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap an inventory entry has holds for interfaces added one by one too (else an
    export would write a file its import refuses)."""
    import app.api.routes.switches as routes

    monkeypatch.setattr(routes, "MAX_INTERFACES", 2)
    assert api.post("/api/v1/switches", json=NEW_SWITCH).status_code == 201  # 1 interface
    ok = api.post("/api/v1/switches/tor-p9-1/interfaces", json={"name": "Ethernet4",
                                                                "speed_gbps": 100})
    assert ok.status_code == 201, ok.text
    r = api.post("/api/v1/switches/tor-p9-1/interfaces", json={"name": "Ethernet8",
                                                               "speed_gbps": 100})
    assert r.status_code == 422 and "already has 2" in r.text, r.text


def test_concurrent_deletes_of_one_switch_are_one_204(api: Api, fabric: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from app.db.models import Interface, Switch

    with api.db.session() as s:
        sid = s.scalars(select(Switch.id).where(Switch.name == "tor-p1-1")).one()
        assert s.scalar(select(func.count(Interface.id)).where(Interface.switch_id == sid))
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(lambda _: api.delete("/api/v1/switches/tor-p1-1").status_code,
                                range(6)))
    assert codes == [204, 404, 404, 404, 404, 404], codes
    audit = api.get("/api/v1/audit", params={"limit": 200}).json()
    items = audit["items"] if isinstance(audit, dict) else audit
    assert sum(e["action"] == "switch.delete" for e in items) == 1
    assert api.get("/api/v1/switches/tor-p1-1").status_code == 404
    assert api.get("/api/v1/switches").json()["total"] == 9
    with api.db.session() as s:  # the database cascaded to its interfaces
        assert s.scalar(select(func.count(Interface.id)).where(Interface.switch_id == sid)) == 0
