"""End-to-end rigs: the API (in-process or as a real `waterline serve` process) in front of
virtual SSH switches reached through netmiko."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth import create_token
from app.changes.service import default_opener
from app.drivers.base import SwitchTarget, get_driver
from app.drivers.models import QosConfig
from app.inventory import dump_yaml, import_inventory, parse_inventory
from fabricsim.ssh import Lab, start_lab
from tests.conftest import Api, Database

PASSWORD = "e2e-pw"


@pytest.fixture(params=["sonic", "comware"])
def lab(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """Four virtual switches (spine, leaf, two TORs) of one NOS, in simulated time."""
    monkeypatch.setenv("SWITCH_PASSWORD", PASSWORD)
    with start_lab(nos=request.param, switches=4, password=PASSWORD, live=False) as running:
        yield running


def load_lab(db: Database, lab: Lab) -> None:
    with db.session() as s:
        import_inventory(s, parse_inventory(dump_yaml(lab.inventory)))
        s.commit()


@pytest.fixture
def ssh_api(sqlite_db: Database, lab: Lab) -> Iterator[Api]:
    """The API over HTTP with netmiko drivers (short timeouts) on the lab's inventory."""
    from fastapi.testclient import TestClient

    from app.api.main import create_app
    from app.config import Settings
    from tests.conftest import make_tokens

    load_lab(sqlite_db, lab)
    app = create_app(Settings.model_validate({"database_url": sqlite_db.url}),
                     engine=sqlite_db.engine, driver_opener=default_opener(timeout_s=4.0))
    app.state.changes.restore_backoff_s = 0.5
    with TestClient(app) as client:
        yield Api(client, sqlite_db, make_tokens(sqlite_db))


def read_qos(lab: Lab, switch: str) -> QosConfig:
    """What the switch itself reports, through a fresh netmiko session."""
    sw = next(s for s in lab.inventory["switches"] if s["name"] == switch)
    driver = get_driver(sw["driver"], SwitchTarget(
        name=switch, host="127.0.0.1", port=lab.port_of(switch), username="admin",
        password=PASSWORD, secret=PASSWORD, timeout_s=5.0,
        interfaces=tuple(i["name"] for i in sw["interfaces"])))
    driver.open()
    try:
        return driver.get_qos_config().normalised()
    finally:
        driver.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A real `waterline serve` process."""

    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> None:
        assert self.log is not None
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], env=self.env, stdout=handle,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError("serve exited: " + self.log.read_text()[-2000:])
            time.sleep(0.2)
        raise RuntimeError("serve did not become ready: " + self.log.read_text()[-2000:])

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no cleanup of any kind
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def server_env(db_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATERLINE_")}
    env.update({"WATERLINE_DATABASE_URL": db_url, "WATERLINE_PORT": str(port),
                "WATERLINE_EMBEDDED_COLLECTOR": "off", "WATERLINE_EMBEDDED_DAEMON": "false",
                "WATERLINE_LOG_LEVEL": "INFO", "SWITCH_PASSWORD": PASSWORD})
    env.update(extra)
    return env


def operator_token(db: Database) -> str:
    with db.session() as s:
        token = create_token(s, name="e2e-operator", role="operator")
        s.commit()
    return token


def headers(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}
