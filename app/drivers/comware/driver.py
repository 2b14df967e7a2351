"""The ``hp_comware`` driver: H3C Comware 7 over SSH (netmiko ``hp_comware``).

Per poll (``get_telemetry``): ``display priority-flow-control interface`` (pause frames),
``display qos queue-statistics interface outbound`` (tx/drop packets and bytes, ECN marks
where the release prints them), ``display buffer usage interface verbose`` (occupancy = Used,
watermark = Peak, in cells).

Read-back (``get_qos_config``): ``display current-configuration`` -> ``build_qos_config``.
Device units: the buffer cell comes from the model in ``display version`` (``CELL_BYTES``),
read once per driver.

Config: ``load_candidate`` reads the running configuration and renders the diff (an invalid
intent is refused before anything is sent); ``compare`` returns exactly those lines
(``system-view`` ... ``return``); ``commit`` sends them one by one, checking every answer for
Comware's ``%`` errors (-> ``return``, then CommitFailed naming the line). ``rollback``
renders the configuration read before the session's last commit from the current one and
sends it the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from app.drivers.base import SwitchTarget, register
from app.drivers.comware import parsers as P
from app.drivers.comware.render import (
    INTERFACE_RE,
    TABLE_RE,
    WRED_TABLE,
    quantize,
    render_qos,
    render_rollback,
)
from app.drivers.errors import CommitFailed, DriverError, ParseError, ValidationFailed
from app.drivers.models import Facts, QosConfig, QueueSample, merge_samples
from app.drivers.netmiko_session import NetmikoSession, check_line
from app.drivers.vendor_common import check_interfaces

log = logging.getLogger("waterline.drivers.comware")
T = TypeVar("T")

DISPLAY_VERSION = "display version"
DISPLAY_MANUINFO = "display device manuinfo"

CELL_BYTES: tuple[tuple[str, int], ...] = (
    ("S6850", 256), ("S9850", 256), ("S6805", 256),  # Trident 3
    ("S9820-64H", 208), ("S9820-8C", 208),  # Tomahawk 2 / Tomahawk
    ("S9825", 254), ("S9855", 254), ("S9827", 254),  # Trident 4 / Tomahawk 4
)
"""Buffer cell per model series (see ComwareUnits); other models use the default (256 B)."""

# Comware reports a refused line with "% ..." (after a caret line); some refusals are plain
# sentences.
_ERROR = re.compile(
    r"^%|\b(?:fail(?:ed)?|error|invalid|does not exist|not exist|must|cannot|can't|unable|"
    r"not supported|in use|being used)\b", re.IGNORECASE)
_BENIGN = ("System View: return to User View with Ctrl+Z.",)


def _prompt_pattern(base_prompt: str) -> str:
    """``<sw>``, ``[sw]``, ``[sw-HundredGigE1/0/1]`` ... of this host, ending the output."""
    return rf"(?:^|\n)[<\[]{re.escape(base_prompt)}(?:-[^\n\]>]*)?[>\]]\s*$"


def error_in(output: str) -> str | None:
    for line in output.splitlines():
        s = line.strip()
        if s and s not in _BENIGN and s != "^" and _ERROR.search(s):
            return s
    return None


def cell_bytes_for(model: str) -> int:
    name = model.upper()
    for prefix, cell in CELL_BYTES:
        if prefix in name:
            return cell
    return P.DEFAULT_CELL_BYTES


class ComwareDriver:
    """One session to an H3C Comware 7 switch (see the module docstring)."""

    def __init__(self, target: SwitchTarget) -> None:
        self.name = target.name
        self.target = target
        self.session = NetmikoSession(target, "hp_comware", _prompt_pattern)
        self._units: P.ComwareUnits | None = None
        self._model = ""
        self._version = ""
        self._uptime: int | None = None
        self._ports: tuple[str, ...] = ()
        self._table = WRED_TABLE
        self._disagreements: list[str] = []
        self._candidate: QosConfig | None = None
        self._lines: list[str] = []
        self._before: QosConfig | None = None
        self._previous: QosConfig | None = None

    # ---------------------------------------------------------------- session
    def open(self) -> None:
        self.session.open()

    def close(self) -> None:
        self.session.close()

    def _send(self, command: str) -> str:
        return self.session.send(command)

    def _parse(self, command: str, fn: Callable[..., T], **kwargs: Any) -> T:
        text = self._send(command)
        try:
            return fn(text, command=command, **kwargs)
        except ParseError as exc:
            exc.switch = self.name
            raise

    def _read_version(self) -> None:
        out = self._send(DISPLAY_VERSION)
        model = re.search(r"^(?:H3C|HPE|HP)[ \t]+(\S+(?:[ \t]+\S+)*?)[ \t]+uptime is[ \t]+(.*)$",
                          out, re.M)
        version = re.search(r"Version[ \t]+([\w.]+(?:,[ \t]*Release[ \t]+\w+)?)", out)
        if model is None or version is None:
            line = out.strip().splitlines()[0] if out.strip() else ""
            raise ParseError(DISPLAY_VERSION, "no '<model> uptime is' / 'Version' line", line=line,
                             switch=self.name)
        self._model = model.group(1)
        self._version = version.group(1)
        up = model.group(2)
        units = {"week": 7 * 86400, "day": 86400, "hour": 3600, "minute": 60}
        self._uptime = sum(int(n) * units[u] for n, u in
                           re.findall(r"(\d+)\s+(week|day|hour|minute)s?", up))
        self._units = P.ComwareUnits(cell_bytes=cell_bytes_for(self._model))

    def units(self) -> P.ComwareUnits:
        if self._units is None:
            self._read_version()
        assert self._units is not None
        return self._units

    # ---------------------------------------------------------------- getters
    def get_facts(self) -> Facts:
        self._read_version()
        serial = ""
        try:
            manuinfo = self._send(DISPLAY_MANUINFO)
            m = re.search(r"DEVICE_SERIAL_NUMBER\s*:\s*(\S+)", manuinfo)
            serial = m.group(1) if m else ""
        except ParseError:
            serial = ""
        return Facts(hostname=self.session.base_prompt or self.name, vendor="H3C",
                     model=self._model, os_version=self._version, serial_number=serial,
                     uptime_s=self._uptime, interfaces=list(self.ports()))

    def ports(self) -> tuple[str, ...]:
        """The managed ports: the inventory's (checked like rendered names), else the Ethernet
        ports of the configuration."""
        if not self._ports and self.target.interfaces:
            try:
                self._ports = tuple(check_interfaces(self.target.interfaces, pattern=INTERFACE_RE))
            except ValidationFailed as exc:
                exc.switch = self.name
                raise
        if not self._ports:
            running = self._parse(P.DISPLAY_CURRENT_CONFIGURATION, P.parse_current_configuration)
            self._ports = tuple(n for n in running.interfaces if INTERFACE_RE.match(n))
        return self._ports

    def get_telemetry(self) -> list[QueueSample]:
        u = self.units()
        pfc = self._parse(P.DISPLAY_PFC, P.parse_pfc_interface)
        queue = self._parse(P.DISPLAY_QUEUE_STATISTICS, P.parse_queue_statistics, units=u)
        buffer = self._parse(P.DISPLAY_BUFFER_USAGE, P.parse_buffer_usage, units=u)
        rows = merge_samples(queue, pfc, buffer)
        if self.target.interfaces:
            wanted = set(self.target.interfaces)
            rows = [r for r in rows if r.interface in wanted]
        return rows

    def get_qos_config(self) -> QosConfig:
        u = self.units()
        ports = self.ports()
        running = self._parse(P.DISPLAY_CURRENT_CONFIGURATION, P.parse_current_configuration)
        applied = {running.interfaces[n].wred_table for n in ports
                   if n in running.interfaces}
        if len(applied) == 1:
            (name,) = applied
            if name and TABLE_RE.match(name):
                self._table = name  # modify the table the ports already use
        self._disagreements = P.port_disagreements(running, interfaces=ports)
        return P.build_qos_config(running, interfaces=ports, units=u).normalised()

    # ---------------------------------------------------------------- config
    def expected_readback(self, config: QosConfig) -> QosConfig:
        return quantize(config, self._units)

    def load_candidate(self, config: QosConfig, *, restore: bool = False) -> None:
        current = self.get_qos_config()
        try:
            if self._disagreements:
                raise ValidationFailed(
                    "the interfaces' RoCE settings differ, and Waterline manages one config "
                    "per switch (a rollback could not restore per-interface values): "
                    + "; ".join(self._disagreements) + ". Make them uniform first.")
            lines = render_qos(current, config, interfaces=self.ports(), units=self.units(),
                               table=self._table, strict=not restore)
            for line in lines:
                check_line(line)
        except DriverError as exc:
            exc.switch = exc.switch or self.name
            raise
        self._candidate = config.normalised()
        self._lines = lines
        self._before = current

    def compare(self) -> str:
        return "\n".join(self._lines) if self._candidate is not None else ""

    def _send_config(self, lines: list[str]) -> None:
        for line in lines:
            problem = error_in(self._send(line))
            if problem:
                try:
                    self._send("return")
                except DriverError:
                    log.debug("%s: could not leave system-view", self.name)
                raise CommitFailed(f"line rejected: {line!r}: {problem}", switch=self.name)

    def commit(self) -> None:
        if self._candidate is None:
            return
        if self._lines:
            before = self._before
            self._previous = before
            self._send_config(self._lines)
        self.discard()

    def discard(self) -> None:
        self._candidate = None
        self._lines = []
        self._before = None

    def rollback(self) -> None:
        previous = self._previous
        if previous is None:
            raise CommitFailed("nothing to roll back in this session", switch=self.name)
        current = self.get_qos_config()
        lines = render_rollback(current, previous, interfaces=self.ports(), units=self.units(),
                                table=self._table)
        self._send_config(lines)
        self._previous = None
        self.discard()


@register("hp_comware")
def _factory(target: SwitchTarget) -> ComwareDriver:
    return ComwareDriver(target)


__all__ = ["ComwareDriver", "cell_bytes_for"]
