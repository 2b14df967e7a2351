"""The ``sonic`` driver: community SONiC over SSH (netmiko ``linux``), config through sudo.

Per poll (``get_telemetry``, in the root shell): ``show pfc counters``, ``show queue
counters``, ``show queue wredcounters``, ``show queue watermark unicast`` (the occupancy
gauge), ``sonic-clear queue watermark unicast`` right after it (so the next read is the peak
since this poll), ``show queue persistent-watermark unicast`` (``watermark_bytes``).

Read-back (``get_qos_config``): ``show pfc priority``, ``ecnconfig -q 0,1,2,3,4,5,6,7``,
``show ecn``, ``show buffer configuration`` -> ``build_qos_config``. The lossless buffer
profile is the switch's ``pg_lossless_<speed>_<cable>m_profile`` (the first in name order
when a switch has several: Waterline applies one profile per switch).

Config: ``load_candidate`` reads the current config and renders the diff (so an invalid
intent is refused before anything is sent); ``compare`` returns exactly those lines;
``commit`` enters the root shell (``sudo -s`` with the secret), takes ``config checkpoint
waterline-<id>`` and sends the lines one by one, checking each answer (``Error:``,
``Usage:``, ``Exception caught``, ``command not found`` ... -> CommitFailed naming the line;
nothing is undone automatically). ``rollback`` is ``config rollback`` of that checkpoint.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from app.drivers.base import SwitchTarget, register
from app.drivers.errors import CommitFailed, DriverError, ParseError, ValidationFailed
from app.drivers.models import Facts, QosConfig, QueueSample, merge_samples
from app.drivers.netmiko_session import NetmikoSession, check_line
from app.drivers.sonic import parsers as P
from app.drivers.sonic.render import INTERFACE_RE, WRED_PROFILE, quantize, render_qos
from app.drivers.vendor_common import check_interfaces

log = logging.getLogger("waterline.drivers.sonic")
T = TypeVar("T")

CLEAR_WATERMARK = "sonic-clear queue watermark unicast"
SHOW_VERSION = "show version"
LOSSLESS_PROFILE = re.compile(r"^pg_lossless_\d+_\d+m_profile$")

# What sonic-utilities, click, bash and sudo print when a command fails.
ERROR_LINE = re.compile(
    r"^(?:Error:|Usage:|Exception caught|Traceback \(most recent call last\)|Failed to |"
    r"Root privileges|sudo: |-bash: |\S+: command not found|Invalid )"
)


def _prompt_pattern(base_prompt: str) -> str:
    """``admin@sw:~$`` / ``root@sw:/home/admin#`` of this host, at the end of the output."""
    host = base_prompt.split("@", 1)[-1].split(":", 1)[0]
    return rf"(?:^|\n)[A-Za-z0-9_.-]+@{re.escape(host)}:[^\n]*[$#] ?$"


def error_in(output: str) -> str | None:
    for line in output.splitlines():
        s = line.strip()
        if ERROR_LINE.match(s):
            return s
    return None


class SonicDriver:
    """One session to a community SONiC switch (see the module docstring)."""

    def __init__(self, target: SwitchTarget) -> None:
        self.name = target.name
        self.target = target
        self.session = NetmikoSession(target, "linux", _prompt_pattern)
        self._root_session = -1  # the session (NetmikoSession.opened) that entered the root shell
        self._candidate: QosConfig | None = None
        self._lines: list[str] = []
        self._checkpoint: str | None = None
        self._profile: str | None = None
        self._disagreements: list[str] = []
        self._ports: tuple[str, ...] = ()

    # ---------------------------------------------------------------- session
    def open(self) -> None:
        self.session.open()

    def close(self) -> None:
        self.session.close()

    def _root(self) -> None:
        self.session.open()
        if self._root_session != self.session.opened:
            self.session.enable()
            self._root_session = self.session.opened

    def _send(self, command: str) -> str:
        return self.session.send(command)

    def _parse(self, command: str, fn: Callable[..., T], **kwargs: Any) -> T:
        text = self._send(command)
        try:
            return fn(text, command=command, **kwargs)
        except ParseError as exc:
            exc.switch = self.name
            raise

    # ---------------------------------------------------------------- getters
    def get_facts(self) -> Facts:
        out = self._send(SHOW_VERSION)
        fields: dict[str, str] = {}
        for line in out.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() and not key.startswith(" "):
                fields.setdefault(key.strip(), value.strip())
        version = fields.get("SONiC Software Version")
        if not version:
            raise ParseError(SHOW_VERSION, "no 'SONiC Software Version' line",
                             line=out.splitlines()[0] if out else "", switch=self.name)
        platform = fields.get("Platform", "")
        vendor = ("Mellanox" if "mlnx" in platform else "Arista" if "arista" in platform
                  else "Dell" if "dell" in platform else "SONiC")
        uptime = None
        m = re.search(r"\bup\s+(?:(\d+)\s+days?,\s+)?(\d+):(\d+)", fields.get("Uptime", ""))
        if m:
            uptime = int(m.group(1) or 0) * 86400 + int(m.group(2)) * 3600 + int(m.group(3)) * 60
        host = self.session.base_prompt.split("@", 1)[-1].split(":", 1)[0] or self.name
        return Facts(hostname=host, vendor=vendor, model=fields.get("HwSKU", ""),
                     os_version=version, serial_number=fields.get("Serial Number", ""),
                     uptime_s=uptime, interfaces=list(self.ports()))

    def ports(self) -> tuple[str, ...]:
        """The managed ports: the inventory's (checked like rendered names), else every port
        ``show pfc priority`` lists."""
        if not self._ports and self.target.interfaces:
            try:
                self._ports = tuple(check_interfaces(self.target.interfaces, pattern=INTERFACE_RE))
            except ValidationFailed as exc:
                exc.switch = self.name
                raise
        if not self._ports:
            rows = self._parse(P.SHOW_PFC_PRIORITY, P.parse_pfc_priority)
            self._ports = tuple(r.interface for r in rows)
        return self._ports

    def get_telemetry(self) -> list[QueueSample]:
        self._root()
        pfc = self._parse(P.SHOW_PFC_COUNTERS, P.parse_pfc_counters)
        queue = self._parse(P.SHOW_QUEUE_COUNTERS, P.parse_queue_counters)
        wred = self._parse(P.SHOW_QUEUE_WREDCOUNTERS, P.parse_queue_wredcounters)
        occupancy = self._parse(P.SHOW_QUEUE_WATERMARK, P.parse_queue_watermark,
                                field="occupancy_bytes")
        problem = error_in(self._send(CLEAR_WATERMARK))
        if problem:
            raise ParseError(CLEAR_WATERMARK, "the switch refused to clear the watermarks",
                             line=problem, switch=self.name)
        watermark = self._parse(P.SHOW_QUEUE_PERSISTENT_WATERMARK, P.parse_queue_watermark,
                                field="watermark_bytes")
        rows = merge_samples(queue, wred, pfc, occupancy, watermark)
        if self.target.interfaces:
            wanted = set(self.target.interfaces)
            rows = [r for r in rows if r.interface in wanted]
        return rows

    def get_qos_config(self) -> QosConfig:
        pfc = self._parse(P.SHOW_PFC_PRIORITY, P.parse_pfc_priority)
        ecn = self._parse(P.ECNCONFIG_QUEUE_STATUS, P.parse_ecn_queue_status)
        wred = self._parse(P.SHOW_ECN, P.parse_ecn)
        buffer = self._parse(P.SHOW_BUFFER_CONFIGURATION, P.parse_buffer_configuration)
        names = sorted(p.name for p in buffer.profiles if LOSSLESS_PROFILE.match(p.name))
        self._profile = names[0] if names else None
        self._disagreements = P.port_disagreements(pfc, buffer, self.ports(), LOSSLESS_PROFILE)
        try:
            config = P.build_qos_config(
                pfc_priority=pfc, ecn_status=ecn, wred_profiles=wred,
                buffer=buffer, interfaces=self.ports(), wred_profile=WRED_PROFILE,
                buffer_profile=self._profile)
        except ParseError as exc:
            exc.switch = self.name
            raise
        return config.normalised()

    # ---------------------------------------------------------------- config
    def expected_readback(self, config: QosConfig) -> QosConfig:
        return quantize(config)

    def load_candidate(self, config: QosConfig, *, restore: bool = False) -> None:
        current = self.get_qos_config()
        profile = self._profile
        try:
            if self._disagreements:
                raise ValidationFailed(
                    "the ports' RoCE settings differ, and Waterline manages one config per "
                    "switch (a rollback could not restore per-port values): "
                    + "; ".join(self._disagreements) + ". Make them uniform first.")
            if profile is None and any(
                    (w.xoff_bytes, w.xon_bytes, w.headroom_bytes, w.alpha) != (None,) * 4
                    for w in config.waterlines.values()):
                raise ValidationFailed("the switch has no pg_lossless_*_profile buffer profile")
            lines = render_qos(current, config, interfaces=self.ports(),
                               buffer_profile=profile or "pg_lossless_profile",
                               strict=not restore)
            for line in lines:
                check_line(line)
        except DriverError as exc:
            exc.switch = exc.switch or self.name
            raise
        self._candidate = config.normalised()
        self._lines = lines

    def compare(self) -> str:
        return "\n".join(self._lines) if self._candidate is not None else ""

    def _apply(self, line: str) -> None:
        problem = error_in(self._send(line))
        if problem:
            raise CommitFailed(f"line rejected: {line!r}: {problem}", switch=self.name)

    def commit(self) -> None:
        if self._candidate is None:
            return
        lines = self._lines
        if lines:
            self._root()
            name = f"waterline-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
            self._apply(f"config checkpoint {name}")
            previous, self._checkpoint = self._checkpoint, name
            if previous is not None:  # this session's older checkpoint is no longer needed
                try:
                    self._send(f"config delete-checkpoint {previous}")
                except DriverError:
                    log.debug("%s: could not delete checkpoint %s", self.name, previous)
            for line in lines:
                self._apply(line)
        self._candidate = None
        self._lines = []

    def discard(self) -> None:
        self._candidate = None
        self._lines = []

    def rollback(self) -> None:
        if self._checkpoint is None:
            raise CommitFailed("nothing to roll back in this session", switch=self.name)
        self._root()
        self._apply(f"config rollback {self._checkpoint}")
        self._checkpoint = None
        self.discard()


@register("sonic")
def _factory(target: SwitchTarget) -> SonicDriver:
    return SonicDriver(target)


__all__ = ["SonicDriver"]
