"""Helpers for the virtual-switch tests: a minimal interactive SSH client (paramiko) and
small labs (one spine, one leaf, one TOR with two hosts; simulated time)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest

from fabricsim.ssh import Lab, start_lab
from fabricsim.topology import FabricParams, generate_fabric

PASSWORD = "lab-pw"
SCENARIO = {"default": {"profile": "allreduce", "params": {"flows": 8}}}


def small_inventory(driver: str) -> dict[str, Any]:
    return generate_fabric(FabricParams(pods=1, tors_per_pod=1, leaves_per_pod=1, spines=1,
                                        hosts_per_tor=2, driver=driver))


class Shell:
    """An interactive session like netmiko's: invoke_shell, write a line, read to the prompt."""

    def __init__(self, port: int, name: str, *, password: str = PASSWORD,
                 username: str = "admin", timeout: float = 5.0) -> None:
        host = re.escape(name)
        # either NOS's prompt of this host: <sw> [sw] [sw-view] / user@sw:~$ root@sw:/home/x#
        self.prompt_re = rf"(?:^|\n)(?:[<\[]{host}(?:-[^\n]*)?[>\]]|\S+@{host}:\S*[$#] )$"
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.client.connect("127.0.0.1", port=port, username=username, password=password,
                            look_for_keys=False, allow_agent=False, timeout=timeout,
                            banner_timeout=timeout, auth_timeout=timeout)
        self.chan = self.client.invoke_shell(term="vt100", width=511, height=1000)
        self.chan.settimeout(timeout)
        self.timeout = timeout
        self.greeting = self.read_until(self.prompt_re)

    def read_until(self, pattern: str, timeout: float | None = None) -> str:
        deadline = time.monotonic() + (timeout or self.timeout)
        out = ""
        while time.monotonic() < deadline:
            if self.chan.recv_ready():
                out += self.chan.recv(65536).decode()
                if re.search(pattern, out):
                    return out
            elif self.chan.closed or self.chan.exit_status_ready():
                out += self.chan.recv(65536).decode() if self.chan.recv_ready() else ""
                return out
            else:
                time.sleep(0.005)
        raise TimeoutError(f"no {pattern!r} in {out[-300:]!r}")

    def cmd(self, line: str, until: str | None = None) -> str:
        """Send a line; return what came back, without the echo and the final prompt."""
        self.chan.send(line + "\n")
        raw = self.read_until(until or self.prompt_re)
        text = raw.replace("\r\n", "\n")
        lines = text.split("\n")
        if lines and lines[0] == line:
            lines = lines[1:]
        return "\n".join(lines[:-1])

    def prompt(self) -> str:
        self.chan.send("\n")
        return self.read_until(self.prompt_re).replace("\r\n", "\n").split("\n")[-1]

    def close(self) -> None:
        self.client.close()


@pytest.fixture(scope="module")
def sonic_lab() -> Iterator[Lab]:
    lab = start_lab(small_inventory("sonic"), password=PASSWORD, seed=5, scenario=SCENARIO,
                    live=False)
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def comware_lab() -> Iterator[Lab]:
    lab = start_lab(small_inventory("hp_comware"), password=PASSWORD, seed=5, scenario=SCENARIO,
                    live=False)
    yield lab
    lab.stop()
