"""A small mock fabric in the database and in the process's virtual fabric."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.drivers import mock
from app.inventory import dump_yaml, import_inventory, parse_inventory
from fabricsim.topology import FabricParams, generate_fabric
from tests.conftest import Api


@pytest.fixture
def fabric(api: Api) -> Iterator[mock.MockFabric]:
    inv = generate_fabric(FabricParams(pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1,
                                       hosts_per_tor=2))
    with api.db.session() as s:
        import_inventory(s, parse_inventory(dump_yaml(inv)))
        s.commit()
    state = mock.install(inv, seed=0, live=False)
    yield state
    mock.uninstall()


def wait_done(api: Api, change_id: int, timeout_s: float = 60) -> dict[str, Any]:
    service = api.client.app.state.changes  # type: ignore[attr-defined]
    assert service.wait(change_id, timeout_s)
    body: dict[str, Any] = api.get(f"/api/v1/changes/{change_id}").json()
    return body
