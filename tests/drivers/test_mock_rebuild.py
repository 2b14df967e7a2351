"""The mock driver's sessions follow the process's virtual fabric when it is rebuilt."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.drivers import mock
from app.drivers.base import SwitchTarget
from fabricsim.topology import FabricParams, generate_fabric


@pytest.fixture
def clean() -> Iterator[None]:
    yield
    mock.uninstall()


def test_a_session_open_across_a_rebuild_reads_the_new_fabric(clean: None) -> None:
    """A mock switch added at runtime rebuilds the fabric (configs carried over). The
    poller's session, opened before, must read the switch as it is now -- a change applied
    through a new session shows in it -- not the old fabric nobody changes any more."""
    small = generate_fabric(FabricParams(pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1))
    state = mock.install(small, seed=0, live=False)
    poller = mock.MockDriver(SwitchTarget(name="tor-p1-1", host="127.0.0.1", port=22))
    poller.open()
    before = poller.get_qos_config()
    grown = {**small, "switches": [*small["switches"], {
        **small["switches"][-1], "name": "tor-p1-9", "mgmt_host": "10.0.9.9"}]}
    rebuilt = mock.install(grown, seed=0, live=False, carry=state)
    assert rebuilt is not state and mock.current() is rebuilt
    change = mock.MockDriver(SwitchTarget(name="tor-p1-1", host="127.0.0.1", port=22))
    change.open()
    w = before.waterlines[3].model_copy(update={"kmin_bytes": 400_000, "kmax_bytes": 1_600_000,
                                               "pmax": 0.2})
    change.load_candidate(before.model_copy(update={"waterlines": {**before.waterlines, 3: w}}))
    change.commit()
    assert poller.get_qos_config().waterlines[3].kmin_bytes == 400_000
    assert rebuilt.fabric.get_qos("tor-p1-1").thresholds[3].kmin_bytes == 400_000
