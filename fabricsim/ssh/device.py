"""What every emulated switch shares: identity, the command log, fault switches, and the
bridge from its configuration to the VirtualFabric's thresholds.

A switch (:class:`EmulatedSwitch`) holds the configuration the NOS would store; every SSH
session on it gets a :class:`CliSession` (the NOS-specific shell: prompts, views, commands).
The SSH server (``fabricsim.ssh.server``) feeds sessions one line at a time and consults the
switch's :class:`SwitchFaults` around each line.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from fabricsim.fabric import VirtualFabric
from fabricsim.physics import Thresholds


@dataclass(frozen=True)
class CommandRecord:
    """One line a switch received. ``config`` is True for lines that (try to) change the
    configuration, whether or not the switch accepted them; ``view`` is the CLI view/shell the
    line arrived in (``user``, ``system``, ``interface``, ``root``, ``exec`` ...). Passwords typed
    at a sudo prompt are recorded as ``<password>``."""

    time: float
    session: int
    line: str
    view: str
    config: bool


@dataclass
class SwitchFaults:
    """Fault switches of one switch (see :class:`fabricsim.ssh.lab.Faults` for the API).

    Patterns are regular expressions searched in the received line.
    """

    auth: bool = False
    unreachable: bool = False
    hang_until: float = 0.0  # time.monotonic() until which the switch answers nothing
    hang_on: re.Pattern[str] | None = None  # one-shot: a matching line starts a hang
    hang_s: float = 0.0
    garbage_on: re.Pattern[str] | None = None
    reject_on: re.Pattern[str] | None = None
    close_on: re.Pattern[str] | None = None  # one-shot: a matching line drops the connection

    def hung(self) -> bool:
        return time.monotonic() < self.hang_until


@dataclass
class Reply:
    """What a session answers to one line: ``output`` (``\\n`` line ends) before the next
    prompt; ``close`` ends the session after the output."""

    output: str = ""
    close: bool = False


def alpha_from_exponent(n: float) -> float:
    """Dynamic-threshold alpha = 2**n, clipped to what the physics accepts (1/128..8)."""
    return float(2.0 ** max(-7, min(3, round(n))))


def fabric_thresholds(kmin: int, kmax: int, pmax: float, headroom: int | None,
                      alpha: float | None) -> Thresholds:
    """Thresholds the physics accepts from whatever a config says (Kmin <= Kmax, 0 < Pmax)."""
    kmin = max(0, int(kmin))
    kmax = max(kmin, int(kmax))
    p = min(1.0, max(1e-4, float(pmax)))
    head = int(headroom) if headroom is not None and headroom > 0 else None
    return Thresholds(kmin_bytes=kmin, kmax_bytes=kmax, pmax=p, headroom_bytes=head,
                      alpha=alpha)


class EmulatedSwitch:
    """A switch's persistent state; subclasses add the NOS configuration and sessions."""

    nos = "generic"

    def __init__(self, entry: dict[str, Any], fabric: VirtualFabric, *, username: str,
                 password: str) -> None:
        self.entry = entry
        self.name = str(entry["name"])
        self.fabric = fabric
        self.username = username
        self.password = password
        self.interfaces: list[dict[str, Any]] = list(entry.get("interfaces") or [])
        self.model = str(entry.get("model") or "virtual")
        self.asic = str(entry.get("asic") or "")
        self.buffer_bytes = int(entry.get("buffer_bytes") or 32 * 1024 * 1024)
        self.lock = threading.RLock()
        self.faults = SwitchFaults()
        self.log: list[CommandRecord] = []
        self.booted = time.time()
        self._pushed: dict[str, Any] = {}
        self._dirty = False
        self._timer: threading.Timer | None = None
        self._startup: tuple[Any, Any] | None = None
        self.sessions_opened = 0

    # ---------------------------------------------------------------- identity
    def port_names(self) -> list[str]:
        return [str(i["name"]) for i in self.interfaces]

    def fastest_port(self) -> tuple[int, float]:
        """(speed in Gbit/s, cable in m) of the fastest port and longest cable."""
        speed = max((int(i.get("speed_gbps") or 100) for i in self.interfaces), default=100)
        cable = max((float(i.get("cable_m") or 3) for i in self.interfaces), default=3.0)
        return speed, cable

    def uptime_s(self) -> int:
        return int(time.time() - self.booted)

    # ---------------------------------------------------------------- log
    def record(self, session: int, line: str, view: str, config: bool) -> None:
        with self.lock:
            self.log.append(CommandRecord(time.time(), session, line, view, config))

    def command_log(self) -> list[CommandRecord]:
        with self.lock:
            return list(self.log)

    def snapshot_faults(self) -> SwitchFaults:
        with self.lock:
            return replace(self.faults)

    # ---------------------------------------------------------------- faults in sessions
    def garbage_for(self, line: str) -> bool:
        pat = self.faults.garbage_on
        return pat is not None and pat.search(line) is not None

    def rejects(self, line: str) -> bool:
        pat = self.faults.reject_on
        return pat is not None and pat.search(line) is not None

    # ---------------------------------------------------------------- physics
    PUSH_DELAY_S = 0.2
    """Configuration changes reach the physics this long after the last one, so that the
    intermediate states of a multi-line change are never simulated (each new waterline
    combination costs a simulated window); a read of the counters pushes at once."""

    def physics(self) -> tuple[tuple[int, ...], tuple[int, ...], dict[int, Thresholds]]:
        """(PFC priorities, ECN queues, thresholds per lossless priority) of the config."""
        raise NotImplementedError

    def apply_config(self, *, now: bool = False) -> None:
        """The configuration changed: push it to the physics (debounced, see PUSH_DELAY_S)."""
        with self.lock:
            self._dirty = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if now:
                self.flush()
                return
            self._timer = threading.Timer(self.PUSH_DELAY_S, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> None:
        """Push a pending configuration change to the physics now."""
        with self.lock:
            if not self._dirty:
                return
            self._dirty = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            wanted = self.physics()
            if self._startup is not None and wanted == self._startup[0]:
                wanted = self._startup[1]  # the startup config: the fabric's own defaults
            pfc, ecn, thresholds = wanted
            self.push(pfc=pfc, ecn=ecn, thresholds=thresholds)

    def adopt_startup_config(self) -> None:
        """Take the current configuration as the startup one, which the fabric already
        simulates with its defaults (per-port alpha, formula headroom): nothing is pushed, so
        the fabric's classes stay as they are (no extra simulation), and whenever the
        configuration returns to this state the physics returns to those defaults."""
        with self.lock:
            qos = self.fabric.get_qos(self.name)
            defaults = (tuple(qos.pfc_priorities), tuple(qos.ecn_queues),
                        {p: qos.thresholds[p] for p in self.fabric.lossless_priorities
                         if p in qos.thresholds})
            self._startup = (self.physics(), defaults)
            self._pushed = {"pfc": defaults[0], "ecn": defaults[1],
                            **{f"th{p}": th for p, th in defaults[2].items()}}
            self._dirty = False

    def stop(self) -> None:
        with self.lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def push(self, *, pfc: tuple[int, ...], ecn: tuple[int, ...],
             thresholds: dict[int, Thresholds]) -> None:
        """Make the physics follow the configuration (only what changed is pushed)."""
        fab = self.fabric
        if self._pushed.get("pfc") != pfc:
            fab.set_pfc_priorities(self.name, pfc)
            self._pushed["pfc"] = pfc
        if self._pushed.get("ecn") != ecn:
            fab.set_ecn_queues(self.name, ecn)
            self._pushed["ecn"] = ecn
        for prio, th in thresholds.items():
            key = f"th{prio}"
            if self._pushed.get(key) != th:
                fab.set_thresholds(self.name, prio, th)
                self._pushed[key] = th

    def new_session(self, sid: int, *, exec_mode: bool = False) -> CliSession:
        raise NotImplementedError


class CliSession:
    """One SSH session's shell on a switch."""

    #: whether the server echoes received lines (a tty turns echo off at password prompts)
    echo = True

    def __init__(self, switch: EmulatedSwitch, sid: int) -> None:
        self.switch = switch
        self.sid = sid

    def banner(self) -> str:
        return ""

    def prompt(self) -> str:
        raise NotImplementedError

    def view(self) -> str:
        raise NotImplementedError

    def is_config(self, line: str) -> bool:
        raise NotImplementedError

    def record(self, line: str) -> None:
        shown = "<password>" if not self.echo else line
        self.switch.record(self.sid, shown, self.view(), self.echo and self.is_config(line))

    def handle(self, line: str) -> Reply:
        raise NotImplementedError

    def garbage(self, line: str) -> str:
        """What a damaged answer looks like: no header, stray bytes, half a table."""
        seed = sum(map(ord, line)) % 97
        return "\n".join([
            f"#{seed:02d} ?? {'~' * (seed % 7 + 3)} 0x7f{seed:02x}",
            "   }{  ### ** %% --",
            f"XGE?/{seed}  12,3,45  N/A  --  4.{seed}  9x9",
            "",
        ])


def natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def cells(nbytes: float, cell_bytes: int) -> int:
    return math.floor(nbytes / cell_bytes)
