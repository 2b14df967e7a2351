"""What Waterline knows of a switch's QoS: a stale reading never overwrites a newer one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.db.models import QosWaterline, Switch
from app.drivers.models import QosConfig, Waterlines
from app.qos_state import store_qos
from tests.conftest import Database


def _config(kmin: int) -> QosConfig:
    return QosConfig(pfc_priorities=(3,), ecn_queues=(3,), waterlines={3: Waterlines(
        kmin_bytes=kmin, kmax_bytes=2 << 20, pmax=0.05)})


def test_a_poll_read_before_a_change_does_not_overwrite_its_read_back(db: Database) -> None:
    """The poller started reading the switch, a change committed and stored its read-back,
    then the poll stored what it had read before: dropped (the tuner would otherwise think
    the change gone). A reading started after the change is stored."""
    with db.session() as s:
        sw = Switch(name="t1", role="tor", mgmt_host="10.0.0.1", driver="mock",
                    buffer_bytes=32 << 20)
        s.add(sw)
        s.commit()
        poll_started = datetime.now(UTC) - timedelta(seconds=1)
        store_qos(s, sw.id, observed=_config(400_000), source="change")  # the change
        store_qos(s, sw.id, observed=_config(1 << 20), source="poll", read_at=poll_started)
        s.commit()
        assert s.get(Switch, sw.id).observed_qos["waterlines"]["3"]["kmin_bytes"] == 400_000  # type: ignore[union-attr]
        rows = s.query(QosWaterline).filter_by(switch_id=sw.id, kind="observed").all()
        assert [r.kmin_bytes for r in rows] == [400_000]
        store_qos(s, sw.id, observed=_config(300_000), source="poll",
                  read_at=datetime.now(UTC))
        s.commit()
        assert s.get(Switch, sw.id).observed_qos["waterlines"]["3"]["kmin_bytes"] == 300_000  # type: ignore[union-attr]
