"""Shared netmiko plumbing of the SSH drivers (Comware, SONiC).

One persistent session per driver: ``ConnectHandler`` opens it (netmiko's login, prompt
discovery and session preparation, e.g. Comware's ``screen-length disable``), commands then
go through the same channel until ``close``. A command is written with netmiko's
``write_channel`` and read with ``read_channel`` until the device prompt comes back; the
loop is ours so that a connection the switch closes mid-command is reported at once
(ConnectionFailed) instead of after a read timeout.

Timeouts come from ``SwitchTarget.timeout_s``: TCP connect, SSH banner and authentication,
and the silence allowed while waiting for a command's answer (a command may take longer
overall while output keeps arriving, up to ``OVERALL_FACTOR`` x the timeout).

Exceptions map onto the driver tree: authentication -> AuthFailed; refused or unroutable TCP,
SSH negotiation failures, EOF -> ConnectionFailed; silence -> DriverTimeout. After any of
them the session is dropped, and the next command opens a fresh one.

Defence in depth: every line is checked before it is written (:func:`check_line`): printable
ASCII only, no ``;`` or ``|``, no line breaks. The password is never logged: netmiko's
session log is off and nothing here formats the target's credentials.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.drivers.base import SwitchTarget
from app.drivers.errors import (
    AuthFailed,
    ConnectionFailed,
    DriverError,
    DriverTimeout,
    ValidationFailed,
)

log = logging.getLogger("waterline.drivers.ssh")

OVERALL_FACTOR = 6.0
"""A command may take this many timeouts in total while output keeps arriving."""

_UNSAFE = re.compile(r"[^\x20-\x7e]|[;|]")


def check_line(line: object, *, switch: str | None = None) -> str:
    """Refuse a line that could break out of the command (the renderers validate first; this
    is the last check before the wire)."""
    if not isinstance(line, str):
        raise ValidationFailed(f"refusing to send a {type(line).__name__}", switch=switch)
    bad = _UNSAFE.search(line)
    if bad:
        raise ValidationFailed(
            f"refusing to send a line with {bad.group()!r} (position {bad.start()})", switch=switch
        )
    return line


def _closed(conn: Any) -> bool:
    chan = getattr(conn, "remote_conn", None)
    if chan is None:
        return True
    transport = chan.get_transport() if hasattr(chan, "get_transport") else None
    return bool(chan.closed) or transport is None or not transport.is_active()


class NetmikoSession:
    """A persistent netmiko session to one switch.

    ``prompt_pattern(base_prompt)`` returns the regular expression that ends every answer
    (searched at the end of the output); it is derived once the session is open.
    """

    def __init__(self, target: SwitchTarget, device_type: str,
                 prompt_pattern: Callable[[str], str]) -> None:
        self.target = target
        self.device_type = device_type
        self._prompt_pattern = prompt_pattern
        self._conn: Any = None
        self._prompt_re: re.Pattern[str] | None = None
        self.base_prompt = ""
        self.opened = 0  # how many times a connection was established (tests, benches)

    @property
    def switch(self) -> str:
        return self.target.name

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    # ---------------------------------------------------------------- lifecycle
    def open(self) -> None:
        if self._conn is not None:
            return
        from netmiko import ConnectHandler

        t = max(0.5, float(self.target.timeout_s))
        params: dict[str, Any] = {
            "device_type": self.device_type,
            "host": self.target.host,
            "port": self.target.port,
            "username": self.target.username,
            "password": self.target.password,
            "secret": self.target.secret or self.target.password,
            "conn_timeout": t,
            "auth_timeout": t,
            "banner_timeout": t,
            "blocking_timeout": t,
            "session_timeout": max(60.0, t),
            # netmiko's own reads (login, prompt discovery, sudo) wait no longer than ours
            "read_timeout_override": t,
            "use_keys": False,
            "allow_agent": False,
            "ssh_strict": False,
            "system_host_keys": False,
            "alt_host_keys": False,
            "fast_cli": True,
        }
        with self._mapped("connect"):
            self._conn = ConnectHandler(**params)
        self.opened += 1
        self.base_prompt = str(self._conn.base_prompt)
        self._prompt_re = re.compile(self._prompt_pattern(self.base_prompt))
        log.debug("%s: session open (%s)", self.switch, self.device_type)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:  # a broken session may fail to close; it is gone either way
                log.debug("%s: disconnect failed", self.switch, exc_info=True)

    def _drop(self) -> None:
        """Forget a broken session without talking to it (disconnect would send exit
        commands); also unhook netmiko's secrets filter, which holds the password."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.paramiko_cleanup()
            except Exception:
                log.debug("%s: cleanup failed", self.switch, exc_info=True)
            secrets_filter = getattr(conn, "_secrets_filter", None)
            if secrets_filter is not None:
                logging.getLogger("netmiko").removeFilter(secrets_filter)

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        """Translate netmiko/paramiko failures into driver exceptions (and drop the session)."""
        from netmiko.exceptions import (
            NetmikoAuthenticationException,
            NetmikoTimeoutException,
            ReadException,
            ReadTimeout,
        )
        from paramiko.ssh_exception import AuthenticationException, SSHException

        name = self.switch
        try:
            yield
        except DriverError:
            raise
        except (NetmikoAuthenticationException, AuthenticationException):
            self._drop()
            raise AuthFailed("authentication failed", switch=name) from None
        except NetmikoTimeoutException as exc:
            self._drop()
            text = str(exc)
            if "TCP connection to device failed" in text or "DNS failure" in text:
                raise ConnectionFailed(f"{what}: TCP connection failed", switch=name) from None
            raise DriverTimeout(f"{what}: no answer ({_first_line(text)})", switch=name) from None
        except ReadTimeout:
            self._drop()
            raise DriverTimeout(f"{what}: no answer within {self.target.timeout_s:g} s",
                                switch=name) from None
        except (ReadException, SSHException, EOFError, OSError) as exc:
            self._drop()
            raise ConnectionFailed(f"{what}: {type(exc).__name__}: {_first_line(str(exc))}",
                                   switch=name) from None

    # ---------------------------------------------------------------- commands
    def _connection(self) -> Any:
        if self._conn is None:
            self.open()
        return self._conn

    def send(self, command: str) -> str:
        """Run one command; return its output without the echoed command and the prompt."""
        check_line(command, switch=self.switch)
        conn = self._connection()
        assert self._prompt_re is not None
        with self._mapped(f"{command!r}"):
            conn.read_channel()  # discard anything left over (a late prompt, a banner)
            conn.write_channel(conn.normalize_cmd(command))
            raw = self._read_until_prompt(conn, command)
        return self._clean(raw, command)

    def _read_until_prompt(self, conn: Any, command: str) -> str:
        assert self._prompt_re is not None
        t = max(0.5, float(self.target.timeout_s))
        start = last = time.monotonic()
        out = ""
        delay = 0.002
        while True:
            chunk = str(conn.read_channel())
            now = time.monotonic()
            if chunk:
                out += chunk
                last = now
                delay = 0.002
                if self._prompt_re.search(out):
                    return out
                continue
            if _closed(conn):
                self._drop()
                raise ConnectionFailed(f"{command!r}: the switch closed the connection",
                                       switch=self.switch)
            if now - last > t or now - start > OVERALL_FACTOR * t:
                self._drop()
                raise DriverTimeout(f"{command!r}: no answer within {t:g} s", switch=self.switch)
            time.sleep(delay)
            delay = min(0.02, delay * 2)

    def _clean(self, raw: str, command: str) -> str:
        assert self._prompt_re is not None
        text = raw.replace("\r\n", "\n").replace("\r", "\n")
        m = self._prompt_re.search(text)
        if m:
            text = text[: m.start()]
        lines = text.split("\n")
        if lines and lines[0].strip() == command.strip():
            lines = lines[1:]
        return "\n".join(lines).rstrip("\n")

    def enable(self) -> None:
        """Privilege escalation through netmiko (``sudo -s`` on Linux); a refused secret is
        AuthFailed."""
        conn = self._connection()
        with self._mapped("privilege escalation"):
            try:
                conn.enable()
            except ValueError:
                self._drop()
                raise AuthFailed("privilege escalation refused (secret)",
                                 switch=self.switch) from None
        self.base_prompt = str(conn.base_prompt)


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


__all__ = ["NetmikoSession", "check_line"]
