"""Two `waterline collector` processes share the switches through PostgreSQL leases; one is
killed with SIGKILL and the other takes its switches over within one lease period."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from app.db import migrate
from app.db.models import CollectorLease, Switch, TelemetrySample
from app.db.session import make_session_factory
from fabricsim.ssh import start_lab
from tests.conftest import Database, drop_pg_schema, new_pg_schema
from tests.e2e.conftest import PASSWORD, free_port, load_lab

pytestmark = [pytest.mark.ssh, pytest.mark.postgres, pytest.mark.slow]

LEASE_S = 3.0


def collector(name: str, url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATERLINE_")}
    env.update({"WATERLINE_DATABASE_URL": url, "WATERLINE_POLL_INTERVAL_S": "1",
                "WATERLINE_POLL_TIMEOUT_S": "5", "SWITCH_PASSWORD": PASSWORD})
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "collector", "--name", name, "--metrics-port",
         str(port), "--lease-s", str(LEASE_S)],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def owners(db: Database) -> dict[str, str | None]:
    with db.session() as s:
        rows = s.execute(select(Switch.name, CollectorLease.owner, CollectorLease.expires_ms)
                         .join(CollectorLease, CollectorLease.switch_id == Switch.id)).all()
        now = s.execute(text("SELECT (extract(epoch from now()) * 1000)::bigint")).scalar_one()
    return {name: owner if expires > now else None for name, owner, expires in rows}


def test_two_workers_one_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, schema = new_pg_schema("wl_scale")
    url = engine.url.render_as_string(hide_password=False)
    lab = start_lab(nos="sonic", switches=6, password=PASSWORD, live=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        migrate.upgrade(engine)
        db = Database("postgres", url, engine, make_session_factory(engine))
        load_lab(db, lab)
        ports = [free_port(), free_port()]
        procs = [collector(f"w{i + 1}", url, ports[i], tmp_path / f"w{i + 1}.log")
                 for i in range(2)]
        deadline = time.monotonic() + 60
        while True:  # both workers hold a fair share
            owned = owners(db)
            by = {w: [s for s, o in owned.items() if o == w] for w in ("w1", "w2")}
            if len(by["w1"]) == 3 and len(by["w2"]) == 3:
                break
            assert time.monotonic() < deadline, (owned, (tmp_path / "w1.log").read_text()[-2000:])
            time.sleep(0.2)
        # each exports the telemetry of its own switches
        time.sleep(3)
        metrics = httpx.get(f"http://127.0.0.1:{ports[1]}/metrics", timeout=10).text
        assert all(f'switch="{s}"' in metrics for s in by["w2"])
        assert not any(f'switch="{s}"' in metrics for s in by["w1"])
        procs[0].kill()  # SIGKILL: no lease is released
        killed_at = time.monotonic()
        while True:
            owned = owners(db)
            if all(o == "w2" for o in owned.values()):
                break
            assert time.monotonic() - killed_at < 30, owned
            time.sleep(0.1)
        takeover_s = time.monotonic() - killed_at
        assert takeover_s <= LEASE_S + 0.5, takeover_s  # one lease period (+ polling slack)
        # and the survivor really polls them: fresh samples of the dead worker's switches
        mark = int(time.time() * 1000)
        time.sleep(4)
        with db.session() as s:
            fresh = dict(s.execute(
                select(Switch.name, func.count(TelemetrySample.id))
                .join(TelemetrySample, TelemetrySample.switch_id == Switch.id)
                .where(TelemetrySample.ts_ms > mark).group_by(Switch.name)).all())
        assert all(fresh.get(s, 0) > 0 for s in by["w1"]), fresh
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(15)
        lab.stop()
        engine.dispose()
        drop_pg_schema(schema)
