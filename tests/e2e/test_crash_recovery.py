"""`kill -9` of the API in the middle of a rollout, then a restart: the change is found and
resolved, and no switch is left differing from both its old and its new config."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from app.db import migrate
from app.db.session import make_engine, make_session_factory
from fabricsim.ssh import Lab
from tests.conftest import Database
from tests.e2e.conftest import (
    Server,
    free_port,
    headers,
    load_lab,
    operator_token,
    read_qos,
    server_env,
)

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

NEW = {"kmin_bytes": 51_200, "kmax_bytes": 409_600, "pmax": 0.2}


def test_sigkill_mid_wave_then_restart_restores(tmp_path: Path, lab: Lab) -> None:
    url = f"sqlite:///{tmp_path / 'waterline.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    db = Database("sqlite", url, engine, make_session_factory(engine))
    load_lab(db, lab)
    token = operator_token(db)
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", server_env(url, port),
                    log=tmp_path / "serve.log")
    api = f"{server.url}/api/v1"
    names = lab.names()
    before = {n: read_qos(lab, n) for n in names}
    server.start()
    try:
        r = httpx.post(f"{api}/changes", headers=headers(token), timeout=60, json={
            "targets": {"all": True}, "waterlines": {"3": NEW, "4": NEW}, "wave_size": 1})
        assert r.status_code == 201, r.text
        change = r.json()
        order = [x["switch"] for x in sorted(change["results"], key=lambda x: x["wave"])]
        victim = order[2]  # the third wave is on the wire when the process dies
        first_line = r"^ecnconfig -p" if lab.nos_of(victim) == "sonic" else r"drop-level 0"
        lab.faults.hang(victim, 30.0, on=first_line)
        httpx.post(f"{api}/changes/{change['id']}/approve", headers=headers(token), timeout=30)
        r = httpx.post(f"{api}/changes/{change['id']}/apply", headers=headers(token), timeout=30)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while not any(rec.config and ("ecnconfig -p" in rec.line or "drop-level 0" in rec.line)
                      for rec in lab.command_log(victim)):
            assert time.monotonic() < deadline, "the rollout never reached the victim"
            time.sleep(0.05)
        server.kill9()  # mid-commit on the victim, two switches already changed
        lab.faults.clear(victim)
        assert read_qos(lab, order[0]) != before[order[0]]  # the canary did change
        server.start()  # recovery runs at start-up
        deadline = time.monotonic() + 90
        while True:
            status = httpx.get(f"{api}/changes/{change['id']}", headers=headers(token),
                               timeout=30).json()
            if status["status"] in ("rolled_back", "rollback_failed"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.3)
        assert status["status"] == "rolled_back", status
        states = {x["switch"]: x["state"] for x in status["results"]}
        assert states[order[3]] == "skipped"
        assert {states[n] for n in order[:3]} == {"rolled_back"}
        for name in names:
            assert read_qos(lab, name) == before[name], name
        audit = httpx.get(f"{api}/audit", params={"change_id": change["id"]},
                          headers=headers(token), timeout=30).json()["items"]
        assert "change.recover" in [e["action"] for e in audit]
    finally:
        server.stop()
