"""Poller isolation: a slow, dead or lying switch never delays the others beyond its timeout."""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, select

from app.db.models import PollError, Switch, TelemetrySample
from app.drivers.base import SwitchTarget
from app.drivers.errors import AuthFailed, ConnectionFailed, ParseError
from app.drivers.models import Facts, QosConfig, QueueSample
from collectors.poller import Poller
from tests.collectors.helpers import load_fabric
from tests.conftest import Database


class ScriptedDriver:
    """A driver whose behaviour per switch is scripted by the test (counters grow linearly)."""

    behaviour: ClassVar[dict[str, str]] = {}
    opened: ClassVar[dict[str, int]] = {}
    release: ClassVar[threading.Event] = threading.Event()

    def __init__(self, target: SwitchTarget) -> None:
        self.name = target.name
        self.target = target
        self.calls = 0
        self.closed = threading.Event()

    def open(self) -> None:
        mode = self.behaviour.get(self.name, "ok")
        if mode == "unreachable":
            raise ConnectionFailed("connection refused", switch=self.name)
        if mode == "auth":
            raise AuthFailed("authentication failed", switch=self.name)
        self.opened[self.name] = self.opened.get(self.name, 0) + 1

    def close(self) -> None:
        self.closed.set()  # like a real session: closing the socket ends a blocked read

    def get_telemetry(self) -> list[QueueSample]:
        mode = self.behaviour.get(self.name, "ok")
        if mode == "hang":
            self.release.wait(5)
        if mode == "hang_until_closed":
            self.closed.wait(30)
            raise ConnectionFailed("session closed", switch=self.name)
        if mode == "garbage":
            raise ParseError("show pfc counters", "unexpected line", line="%%$#@!")
        self.calls += 1
        return [QueueSample(interface=i, priority=p, tx_bytes=self.calls * 1_000_000,
                            tx_packets=self.calls * 1000, ecn_marked_packets=self.calls,
                            rx_pause_frames=0, tx_pause_frames=0, drop_packets=0,
                            occupancy_bytes=0, watermark_bytes=0)
                for i in self.target.interfaces for p in (3, 4)]

    def get_facts(self) -> Facts:  # pragma: no cover - not used by the poller
        raise NotImplementedError

    def get_qos_config(self) -> QosConfig:
        return QosConfig(pfc_priorities=(3, 4), ecn_queues=(3, 4))

    def load_candidate(self, config: QosConfig) -> None:  # pragma: no cover
        raise NotImplementedError

    def compare(self) -> str:  # pragma: no cover
        return ""

    def commit(self) -> None:  # pragma: no cover
        pass

    def discard(self) -> None:  # pragma: no cover
        pass

    def rollback(self) -> None:  # pragma: no cover
        pass


def factory(_name: str, target: SwitchTarget) -> Any:
    return ScriptedDriver(target)


@pytest.fixture(autouse=True)
def _reset_script() -> None:
    ScriptedDriver.behaviour = {}
    ScriptedDriver.opened = {}
    ScriptedDriver.release = threading.Event()


def health(db: Database) -> dict[str, tuple[str, str]]:
    with db.session() as s:
        return {sw.name: (sw.health, sw.health_reason) for sw in s.scalars(select(Switch))}


def test_cycle_polls_everyone_and_reuses_sessions(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCH_PASSWORD", "s3cret")
    load_fabric(db, pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1, hosts_per_tor=4)
    poller = Poller(db.engine, driver_factory=factory, concurrency=4, seed=1)
    assert poller.load_targets() == 4
    first = poller.poll_cycle()
    second = poller.poll_cycle()
    assert (first.ok, second.ok) == (4, 4)
    assert ScriptedDriver.opened == {"spine-1": 1, "leaf-p1-1": 1, "tor-p1-1": 1, "tor-p1-2": 1}
    with db.session() as s:
        n = s.scalar(select(func.count(TelemetrySample.id)))
        rated = s.scalar(select(func.count(TelemetrySample.id)).where(
            TelemetrySample.tx_bytes_per_s.is_not(None)))
    ports = 1 + 1 + 2 * (4 + 1) + 1  # spine: 1 leaf; leaf: 1 spine + 2 tors; tors: 4 hosts + 1
    assert n == 2 * 2 * (ports + 1)  # two polls x two priorities x every interface
    assert rated == n // 2  # the second poll has rates
    assert set(v[0] for v in health(db).values()) == {"up"}
    poller.close()


def test_bad_switches_are_isolated(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCH_PASSWORD", "s3cret")
    load_fabric(db, pods=1, tors_per_pod=4, leaves_per_pod=1, spines=1, hosts_per_tor=2)
    ScriptedDriver.behaviour = {"tor-p1-1": "hang", "tor-p1-2": "auth",
                                "tor-p1-3": "garbage", "spine-1": "unreachable"}
    poller = Poller(db.engine, driver_factory=factory, concurrency=2, timeout_s=1.0, seed=1)
    poller.load_targets()
    started = time.monotonic()
    report = poller.poll_cycle()
    elapsed = time.monotonic() - started
    ScriptedDriver.release.set()
    # the hung switch costs its own timeout, nothing more, even with only 2 slots
    assert elapsed < 2.5, elapsed
    assert report.ok == 2 and report.failed == 4
    assert report.errors == {"timeout": 1, "auth": 1, "parse": 1, "connection": 1}
    states = health(db)
    assert states["tor-p1-4"] == ("up", "")
    assert states["leaf-p1-1"] == ("up", "")
    assert states["tor-p1-1"][0] == "down" and states["tor-p1-1"][1].startswith("timeout")
    assert states["tor-p1-2"][1].startswith("auth")
    assert "show pfc counters" in states["tor-p1-3"][1]
    with db.session() as s:
        reasons = sorted(r for r in s.scalars(select(PollError.reason)))
    assert reasons == ["auth", "connection", "parse", "timeout"]
    poller.close()


def test_slow_switch_does_not_delay_schedule_of_others(db: Database,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCH_PASSWORD", "x")
    load_fabric(db, pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1, hosts_per_tor=1)
    ScriptedDriver.behaviour = {"tor-p1-1": "hang"}
    with db.session() as s:
        for sw in s.scalars(select(Switch)):
            sw.poll_interval_s = 1.0
        s.commit()
    poller = Poller(db.engine, driver_factory=factory, concurrency=2, timeout_s=3.0,
                    default_interval_s=1.0, jitter=0.0, seed=3)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), kwargs={"tick_s": 0.05})
    thread.start()
    time.sleep(3.5)
    stop.set()
    thread.join()
    ScriptedDriver.release.set()
    with db.session() as s:
        per_switch = dict(s.execute(
            select(Switch.name, func.count(func.distinct(TelemetrySample.ts_ms)))
            .join(TelemetrySample, TelemetrySample.switch_id == Switch.id)
            .group_by(Switch.name)).all())
    # healthy switches kept their 1 s schedule (first poll is spread over one interval)
    for name in ("spine-1", "leaf-p1-1", "tor-p1-2"):
        assert per_switch.get(name, 0) >= 2, per_switch
    assert "tor-p1-1" not in per_switch
    poller.close()


def test_backoff_after_failures(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCH_PASSWORD", "x")
    load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1, hosts_per_tor=1)
    ScriptedDriver.behaviour = {"tor-p1-1": "unreachable"}
    poller = Poller(db.engine, driver_factory=factory, default_interval_s=10.0, jitter=0.0)
    poller.load_targets()
    for _ in range(4):
        poller.poll_cycle()
    state = next(s for s in poller._states.values() if s.target.name == "tor-p1-1")
    healthy = next(s for s in poller._states.values() if s.target.name == "spine-1")
    assert state.failures == 4
    assert state.next_due - time.monotonic() == pytest.approx(80.0, abs=1.0)  # 10 s x 2^3
    assert healthy.next_due - time.monotonic() == pytest.approx(10.0, abs=1.0)
    poller.close()


def test_missing_credentials_is_an_auth_failure_without_the_secret(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCH_PASSWORD", raising=False)
    load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1, hosts_per_tor=1,
                driver="sonic")
    poller = Poller(db.engine, driver_factory=factory)
    poller.load_targets()
    report = poller.poll_cycle()
    assert report.errors == {"auth": 3}
    assert "env:SWITCH_PASSWORD is not set" in health(db)["spine-1"][1]
    poller.close()


def test_many_hung_switches_do_not_starve_the_healthy_ones(db: Database,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Hung polls are aborted (their sessions closed) at the timeout, so their threads return;
    healthy switches are polled although the hung ones outnumber the threads."""
    monkeypatch.setenv("SWITCH_PASSWORD", "x")
    load_fabric(db, pods=1, tors_per_pod=6, leaves_per_pod=1, spines=1, hosts_per_tor=1,
                driver="sonic")
    ScriptedDriver.behaviour = {f"tor-p1-{i}": "hang_until_closed" for i in range(1, 5)}
    poller = Poller(db.engine, driver_factory=factory, concurrency=2, timeout_s=1.0, seed=2)
    poller.load_targets()
    report = poller.poll_cycle(timeout_s=30)
    states = health(db)
    for healthy in ("tor-p1-5", "tor-p1-6", "spine-1", "leaf-p1-1"):
        assert states[healthy] == ("up", ""), (healthy, states[healthy], report)
    assert report.errors == {"timeout": 4}
    poller.close()


def test_a_changed_address_reconnects(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCH_PASSWORD", "x")
    load_fabric(db, pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1, hosts_per_tor=1,
                driver="sonic")
    poller = Poller(db.engine, driver_factory=factory, seed=1)
    poller.load_targets()
    poller.poll_cycle()
    with db.session() as s:
        tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
        tor.mgmt_host = "10.1.1.1"
        s.commit()
    poller.load_targets()
    poller.poll_cycle()
    assert ScriptedDriver.opened["tor-p1-1"] == 2 and ScriptedDriver.opened["spine-1"] == 1
    poller.close()
