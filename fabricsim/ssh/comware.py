"""An H3C Comware 7 switch as seen over SSH: ``<name>`` user view, ``system-view`` ->
``[name]``, nested views (``[name-qos-wred-table-T]``, ``[name-HundredGigE1/0/1]``),
``quit``/``return``, ``display`` commands and the RoCE configuration lines.

Display output follows the Comware 7 layouts (fixed-width tables with abbreviated interface
names, ``Interface:`` blocks, the configuration with ``#`` separators ending in ``return``),
rendered from the VirtualFabric. Device units: WRED limits, PFC headroom and the threshold
offset are buffer cells (``CELL_BYTES`` per ASIC); discard probability and the
``ingress-buffer dynamic`` threshold are percentages. Errors are Comware's:
``% Unrecognized command found at '^' position.`` (with the caret line), ``% Incomplete
command ...``, ``% Wrong parameter ...``, ``% Too many parameters ...``; such a line changes
nothing.

``display qos queue-statistics`` prints an ``ECN marked:`` line per queue (as releases with
ECN statistics do) so that ECN marks are observable; ``display buffer usage`` prints the
queue's current usage (Used) and its peak since boot (Peak) in cells.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from fabricsim.buffers import sonic_headroom
from fabricsim.fabric import PortCounters, VirtualFabric
from fabricsim.physics import Thresholds, sonic_default

from .device import CliSession, EmulatedSwitch, Reply, alpha_from_exponent, fabric_thresholds
from .text import columns

# Buffer cell per ASIC class (H3C/Broadcom: Trident 3 256 B, Tomahawk/Tomahawk 2 208 B,
# Tomahawk 3/4 and Trident 4 254 B). Other ASICs (Jericho 2 here) are modelled with 256 B.
CELL_BYTES: dict[str, int] = {"Trident 3": 256, "Tomahawk": 208, "Tomahawk 2": 208,
                              "Tomahawk 3": 254, "Tomahawk 4": 254, "Trident 4": 254}
DEFAULT_CELL_BYTES = 256
WRED_DEFAULT = (100, 1000, 10)  # a WRED-table queue without explicit limits

_LONG = {"GE": "GigabitEthernet", "XGE": "Ten-GigabitEthernet", "WGE": "TwentyFiveGigE",
         "FGE": "FortyGigE", "HGE": "HundredGigE"}
_SHORT = {v: k for k, v in _LONG.items()}
_TYPES = ("GigabitEthernet", "Ten-GigabitEthernet", "TwentyFiveGigE", "FortyGigE", "FiftyGigE",
          "HundredGigE", "TwoHundredGigE", "FourHundredGigE", "EightHundredGigE")


def short_name(name: str) -> str:
    """``HundredGigE1/0/1`` -> ``HGE1/0/1`` (types without a known abbreviation stay long)."""
    m = re.match(r"^([A-Za-z-]+)(\d.*)$", name)
    if not m:
        return name
    return _SHORT.get(m.group(1), m.group(1)) + m.group(2)


def dot1p_text(prios: list[int]) -> str:
    return ",".join(str(p) for p in sorted(prios))


def percent_to_alpha(percent: int) -> float:
    """``ingress-buffer dynamic P`` (the share alpha/(1+alpha) in percent) -> a power-of-two
    alpha for the physics (nearest in log scale, 1/128..8)."""
    p = min(99.0, max(0.5, float(percent)))
    return alpha_from_exponent(math.log2(p / (100 - p)))


@dataclass
class QueueCfg:
    levels: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    weighting_constant: int | None = None
    ecn: bool = False


@dataclass
class IfCfg:
    pfc: bool = False
    no_drop: list[int] = field(default_factory=list)
    wred: str | None = None
    headroom: dict[int, int] = field(default_factory=dict)
    dynamic: dict[int, int] = field(default_factory=dict)
    offset: dict[int, int] = field(default_factory=dict)
    description: str = ""


class _CliError(Exception):
    def __init__(self, kind: str, pos: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.pos = pos


class ComwareSwitch(EmulatedSwitch):
    """Comware configuration (WRED tables, per-interface PFC) and counters."""

    nos = "comware"
    ssh_version = "SSH-2.0-Comware-7.1.064"

    def __init__(self, entry: dict[str, Any], fabric: VirtualFabric, *, username: str,
                 password: str) -> None:
        super().__init__(entry, fabric, username=username, password=password)
        self.cell = CELL_BYTES.get(self.asic, DEFAULT_CELL_BYTES)
        self.buffer_cells = self.buffer_bytes // self.cell
        qos = fabric.get_qos(self.name)
        prios = fabric.lossless_priorities or (3,)
        th = qos.thresholds.get(prios[0]) or sonic_default()
        speed, cable = self.fastest_port()
        head = sonic_headroom(speed, cable)
        xoff = th.headroom_bytes or head["xoff_bytes"]
        low = max(1, round(th.kmin_bytes / self.cell))
        high = max(low + 1, round(th.kmax_bytes / self.cell))
        pct = max(1, round(th.pmax * 100))
        table: dict[int, QueueCfg] = {}
        for q in qos.ecn_queues:
            table[q] = QueueCfg({lvl: (low, high, pct) for lvl in range(3)}, 0, True)
        self.tables: dict[str, dict[int, QueueCfg]] = {"WATERLINE": table}
        self.ifcfg: dict[str, IfCfg] = {}
        for port in self.port_names():
            peer = next((str(i.get("peer") or "") for i in self.interfaces
                         if str(i["name"]) == port), "")
            self.ifcfg[port] = IfCfg(
                pfc=True, no_drop=sorted(qos.pfc_priorities), wred="WATERLINE",
                headroom={p: -(-xoff // self.cell) for p in qos.pfc_priorities},
                dynamic={p: 11 for p in qos.pfc_priorities},
                offset={p: max(1, round(head["xon_bytes"] / self.cell))
                        for p in qos.pfc_priorities},
                description=f"to-{peer}" if peer else "")
        self._peak: dict[tuple[str, int], int] = {}
        self._rates: dict[tuple[str, int, str], tuple[float, int]] = {}
        self.adopt_startup_config()

    # ---------------------------------------------------------------- config -> physics
    def physics(self) -> tuple[tuple[int, ...], tuple[int, ...], dict[int, Thresholds]]:
        with self.lock:
            ifs = list(self.ifcfg.values())
            applied = [i.wred for i in ifs if i.wred]
            tname = max(set(applied), key=applied.count) if applied else None
            table = self.tables.get(tname or "", {})
            ecn = tuple(sorted(q for q, c in table.items() if c.ecn)) if tname else ()
            sets = [set(i.no_drop) if i.pfc else set() for i in ifs]
            pfc = tuple(sorted(set.intersection(*sets))) if sets else ()
            thresholds = {}
            for prio in self.fabric.lossless_priorities:
                qc = table.get(prio)
                low, high, pct = qc.levels.get(0, WRED_DEFAULT) if qc else WRED_DEFAULT
                head = next((i.headroom[prio] for i in ifs if prio in i.headroom), None)
                off = next((i.offset[prio] for i in ifs if prio in i.offset), 0)
                dyn = next((i.dynamic[prio] for i in ifs if prio in i.dynamic), None)
                thresholds[prio] = fabric_thresholds(
                    low * self.cell, high * self.cell, pct / 100,
                    None if head is None else (head + off) * self.cell,
                    None if dyn is None else percent_to_alpha(dyn))
            return pfc, ecn, thresholds

    # ---------------------------------------------------------------- counters
    def sample(self) -> dict[tuple[str, int], PortCounters]:
        with self.lock:
            self.flush()
            rows = self.fabric.read_counters(self.name)
            self.fabric.clear_watermarks(self.name)
            out = {}
            for r in rows:
                key = (r.interface, r.priority)
                self._peak[key] = max(self._peak.get(key, 0), r.watermark_bytes, r.occupancy_bytes)
                out[key] = r
            return out

    def rate(self, key: tuple[str, int], row: PortCounters | None, attr: str) -> int:
        """Per-second rate of a counter since the previous display of it."""
        if row is None:
            return 0
        now = time.monotonic()
        value = int(getattr(row, attr))
        prev = self._rates.get((key[0], key[1], attr))
        self._rates[(key[0], key[1], attr)] = (now, value)
        if prev is None or now - prev[0] <= 0:
            return 0
        return max(0, int((value - prev[1]) / (now - prev[0])))

    def resolve_interface(self, text: str) -> str | None:
        """``HundredGigE1/0/1``, ``hundredgige 1/0/1``, ``HGE1/0/1`` -> the configured name."""
        s = text.replace(" ", "")
        m = re.match(r"^([A-Za-z-]+)(\d+(?:/\d+)+(?::\d+)?)$", s)
        if not m:
            return None
        kind = m.group(1)
        full = _LONG.get(kind.upper()) or next((t for t in _TYPES if t.lower() == kind.lower()),
                                               None)
        if full is None:  # a unique prefix of a type name, as the CLI accepts
            hits = [t for t in _TYPES if t.lower().startswith(kind.lower())]
            full = hits[0] if len(hits) == 1 else None
        if full is None:
            return None
        name = full + m.group(2)
        return name if name in self.ifcfg else None

    def new_session(self, sid: int, *, exec_mode: bool = False) -> ComwareSession:
        self.sessions_opened += 1
        return ComwareSession(self, sid)

    # ---------------------------------------------------------------- displays
    def current_configuration(self, only: str | None = None) -> list[str]:
        with self.lock:
            out = ["#", " version 7.1.064, Release 6710", "#", f" sysname {self.name}", "#",
                   " priority-flow-control deadlock enable", "#"]
            if only is None:
                for tname, table in self.tables.items():
                    out.append(f"qos wred queue table {tname}")
                    for q in sorted(table):
                        qc = table[q]
                        for lvl, (lo, hi, pr) in sorted(qc.levels.items()):
                            out.append(f" queue {q} drop-level {lvl} low-limit {lo} high-limit {hi}"
                                       f" discard-probability {pr}")
                        if qc.weighting_constant is not None:
                            out.append(f" queue {q} weighting-constant {qc.weighting_constant}")
                        if qc.ecn:
                            out.append(f" queue {q} ecn")
                    out.append("#")
            for name, c in self.ifcfg.items():
                if only is not None and name != only:
                    continue
                out += self.interface_lines(name, c)
                out.append("#")
            if only is None:
                out += ["interface M-GigabitEthernet0/0/0", " ip address 192.0.2.10 255.255.255.0",
                        "#", " ssh server enable", "#", "line vty 0 63",
                        " authentication-mode scheme", " user-role network-admin", "#"]
            out.append("return")
            return out

    @staticmethod
    def interface_lines(name: str, c: IfCfg) -> list[str]:
        out = [f"interface {name}", " port link-mode bridge"]
        if c.description:
            out.append(f" description {c.description}")
        if c.pfc:
            out.append(" priority-flow-control enable")
        if c.no_drop:
            out.append(" priority-flow-control no-drop dot1p " + " ".join(map(str, c.no_drop)))
        for prio in sorted(set(c.headroom) | set(c.dynamic) | set(c.offset)):
            if prio in c.headroom:
                out.append(f" priority-flow-control dot1p {prio} headroom {c.headroom[prio]}")
            if prio in c.dynamic:
                out.append(f" priority-flow-control dot1p {prio} ingress-buffer dynamic "
                           f"{c.dynamic[prio]}")
            if prio in c.offset:
                out.append(f" priority-flow-control dot1p {prio} ingress-threshold-offset "
                           f"{c.offset[prio]}")
        out.append(" qos trust dscp")
        if c.wred:
            out.append(f" qos wred apply {c.wred}")
        return out

    def display_pfc(self, only: str | None) -> list[str]:
        data = self.sample()
        widths = [33, 11, 10, 12, 6, 11, 11, 11]
        head = columns(["Interface", "AdminMode", "OperMode", "Dot1pList", "Prio", "Recv",
                        "Send", "Inpps", "Outpps"], widths)
        out = [head, "-" * len(head)]
        with self.lock:
            for name, c in self.ifcfg.items():
                if only is not None and name != only:
                    continue
                mode = "Enabled" if c.pfc else "Disabled"
                dot = dot1p_text(c.no_drop) if c.pfc else ""
                for prio in range(8):
                    row = data.get((name, prio))
                    rx = row.rx_pause_frames if row else 0
                    tx = row.tx_pause_frames if row else 0
                    out.append(columns([short_name(name), mode, mode, dot, str(prio), str(rx),
                                        str(tx), str(self.rate((name, prio), row, "rx_pause_frames")),
                                        str(self.rate((name, prio), row, "tx_pause_frames"))],
                                       widths))
        return out

    def display_queue_statistics(self, only: str | None) -> list[str]:
        data = self.sample()
        out: list[str] = []
        for name in self.ifcfg:
            if only is not None and name != only:
                continue
            rows = [data.get((name, q)) for q in range(8)]

            def val(r: PortCounters | None, attr: str) -> int:
                return int(getattr(r, attr)) if r is not None else 0

            out += [f"Interface: {name}", " Direction: outbound",
                    f" Forwarded: {sum(val(r, 'tx_packets') for r in rows)} packets, "
                    f"{sum(val(r, 'tx_bytes') for r in rows)} bytes",
                    f" Dropped: {sum(val(r, 'drop_packets') for r in rows)} packets, "
                    f"{sum(val(r, 'drop_bytes') for r in rows)} bytes"]
            for q, r in enumerate(rows):
                pps = self.rate((name, q), r, "tx_packets")
                bps = self.rate((name, q), r, "tx_bytes") * 8
                out += [f" Queue {q}",
                        f"  Forwarded: {val(r, 'tx_packets')} packets, {val(r, 'tx_bytes')} bytes,"
                        f" {pps} pps, {bps} bps",
                        f"  Dropped: {val(r, 'drop_packets')} packets, {val(r, 'drop_bytes')} bytes",
                        f"  ECN marked: {val(r, 'ecn_marked_packets')} packets, "
                        f"{val(r, 'ecn_marked_bytes')} bytes"]
        return out

    def display_buffer_usage(self, only: str | None) -> list[str]:
        data = self.sample()
        head = "  QueueID  Total(cells)  Used(cells)  Peak(cells)  Threshold(%)  Violations"
        rule = "  " + "-" * 69
        widths = [9, 14, 13, 13, 14]
        out: list[str] = []
        for name in self.ifcfg:
            if only is not None and name != only:
                continue
            out += [f"Interface: {name}", " Ingress:", head, rule]
            for q in range(8):
                out.append("  " + columns([str(q), "2048", "0", "0", "70", "0"], widths))
            out += [" Egress:", head, rule]
            for q in range(8):
                row = data.get((name, q))
                used = row.occupancy_bytes // self.cell if row else 0
                peak = self._peak.get((name, q), 0) // self.cell
                out.append("  " + columns([str(q), str(self.buffer_cells), str(used), str(peak),
                                           "70", "0"], widths))
        return out

    def display_wred_table(self, only: str | None) -> list[str]:
        out: list[str] = []
        with self.lock:
            for tname, table in self.tables.items():
                if only is not None and tname != only:
                    continue
                if out:
                    out.append("")
                out += [f"Table name: {tname}", "Table type: Queue based WRED",
                        "QID   gmin  gmax  gprob  ymin  ymax  yprob  rmin  rmax  rprob  exponent  ECN",
                        "-" * 76]
                widths = [6, 6, 6, 7, 6, 6, 7, 6, 6, 7, 10]
                for q in range(8):
                    qc = table.get(q, QueueCfg())
                    cells = [str(q)]
                    for lvl in range(3):
                        cells += [str(v) for v in qc.levels.get(lvl, WRED_DEFAULT)]
                    cells.append(str(qc.weighting_constant if qc.weighting_constant is not None
                                     else 9))
                    cells.append("Y" if qc.ecn else "N")
                    out.append(columns(cells, widths))
        return out

    def display_version(self) -> list[str]:
        up = self.uptime_s()
        weeks, rem = divmod(up, 7 * 86400)
        days, rem = divmod(rem, 86400)
        series = self.model.split()[-1].split("-")[0] if self.model else "S6850"
        return [
            "H3C Comware Software, Version 7.1.064, Release 6710",
            "Copyright (c) 2004-2023 New H3C Technologies Co., Ltd. All rights reserved.",
            f"{self.model} uptime is {weeks} weeks, {days} days, {rem // 3600} hours, "
            f"{rem % 3600 // 60} minutes",
            "Last reboot reason : Cold reboot",
            "",
            f"Boot image: flash:/{series}-CMW710-BOOT-R6710.bin",
            "Boot image version: 7.1.064, Release 6710",
            "  Compiled Mar 14 2023 16:00:00",
            f"System image: flash:/{series}-CMW710-SYSTEM-R6710.bin",
            "System image version: 7.1.064, Release 6710",
            "  Compiled Mar 14 2023 16:00:00",
        ]

    def display_manuinfo(self) -> list[str]:
        serial = f"210235A2CSH{abs(hash(self.name)) % 10**9:09d}"
        return ["Slot 1 CPU 0:", f"DEVICE_NAME          : {self.model.replace('H3C ', '')}",
                f"DEVICE_SERIAL_NUMBER : {serial}", "MAC_ADDRESS          : 00E0-FC00-5800",
                "MANUFACTURING_DATE   : 2023-03-14", "VENDOR_NAME          : H3C"]


class ComwareSession(CliSession):
    """One Comware CLI session: a stack of views."""

    switch: ComwareSwitch

    def __init__(self, switch: ComwareSwitch, sid: int) -> None:
        super().__init__(switch, sid)
        self.views: list[tuple[str, str]] = [("user", "")]
        self.screen_length = 24

    def banner(self) -> str:
        return ("\r\n******************************************************************************"
                "\r\n* Copyright (c) 2004-2023 New H3C Technologies Co., Ltd. All rights reserved."
                "*\r\n* Without the owner's prior written consent,                                 "
                "*\r\n* no decompiling or reverse-engineering shall be allowed.                    "
                "*\r\n******************************************************************************"
                "\r\n\r\n")

    def prompt(self) -> str:
        kind, arg = self.views[-1]
        name = self.switch.name
        if kind == "user":
            return f"<{name}>"
        if kind == "system":
            return f"[{name}]"
        if kind == "wred":
            return f"[{name}-qos-wred-table-{arg}]"
        return f"[{name}-{arg}]"

    def view(self) -> str:
        return self.views[-1][0]

    def is_config(self, line: str) -> bool:
        toks = line.split()
        if not toks:
            return False
        first = toks[0].lower()
        if self.views[-1][0] == "user":
            return "system-view".startswith(first) and len(first) >= 3
        return not any(w.startswith(first) for w in ("display", "quit", "return"))

    # ---------------------------------------------------------------- dispatch
    def handle(self, line: str) -> Reply:
        toks = [(m.group(), m.start()) for m in re.finditer(r"\S+", line)]
        if not toks:
            return Reply()
        if self.switch.garbage_for(line):
            return Reply(self.garbage(line))
        if self.is_config(line) and self.switch.rejects(line):
            return Reply(self._error("Wrong parameter", toks[-1][1]))
        try:
            return self._dispatch(line, toks)
        except _CliError as exc:
            return Reply(self._error(exc.kind, exc.pos))

    def _error(self, kind: str, pos: int) -> str:
        caret = " " * (len(self.prompt()) + pos) + "^"
        return f"{caret}\n % {kind} found at '^' position."

    def _dispatch(self, line: str, toks: list[tuple[str, int]]) -> Reply:
        words = [t.lower() for t, _ in toks]
        kind = self.views[-1][0]
        w0 = words[0]
        if _kw(w0, "display", 3):
            return Reply("\n".join(self._display(line, toks[1:])))
        if _kw(w0, "quit", 1):
            self._no_more(toks, 1)
            if kind == "user":
                return Reply("", close=True)
            self.views.pop()
            return Reply()
        if kind == "user":
            if _kw(w0, "system-view", 3):
                self._no_more(toks, 1)
                self.views.append(("system", ""))
                return Reply("System View: return to User View with Ctrl+Z.")
            if _kw(w0, "screen-length", 3):
                if len(toks) < 2:
                    raise _CliError("Incomplete command", len(line) + 1)
                if _kw(words[1], "disable", 3):
                    self._no_more(toks, 2)
                    self.screen_length = 0
                    return Reply()
                raise _CliError("Unrecognized command", toks[1][1])
            raise _CliError("Unrecognized command", toks[0][1])
        if _kw(w0, "return", 3):
            self._no_more(toks, 1)
            self.views = [("user", "")]
            return Reply()
        if kind == "wred" and (_kw(w0, "queue", 2) or (w0 == "undo" and len(words) > 1
                                                         and _kw(words[1], "queue", 2))):
            return self._wred_line(line, toks)
        if kind == "interface":
            handled = self._interface_line(line, toks)
            if handled is not None:
                return handled
        return self._system_line(line, toks)

    @staticmethod
    def _no_more(toks: list[tuple[str, int]], n: int) -> None:
        if len(toks) > n:
            raise _CliError("Too many parameters", toks[n][1])

    # ---------------------------------------------------------------- system view
    def _system_line(self, line: str, toks: list[tuple[str, int]]) -> Reply:
        sw = self.switch
        words = [t.lower() for t, _ in toks]
        undo = words[0] == "undo"
        i = 1 if undo else 0
        if i < len(words) and _kw(words[i], "interface", 3):
            if undo:
                raise _CliError("Unrecognized command", toks[0][1])
            if len(toks) < i + 2:
                raise _CliError("Incomplete command", len(line) + 1)
            arg = " ".join(t for t, _ in toks[i + 1:])
            name = sw.resolve_interface(arg)
            if name is None:
                raise _CliError("Wrong parameter", toks[i + 1][1])
            self.views[1:] = [("system", ""), ("interface", name)]
            return Reply()
        if i + 1 < len(words) and _kw(words[i], "qos", 3) and _kw(words[i + 1], "wred", 2):
            # qos wred queue table NAME
            if len(toks) < i + 5:
                raise _CliError("Incomplete command", len(line) + 1)
            if not (_kw(words[i + 2], "queue", 2) and _kw(words[i + 3], "table", 1)):
                raise _CliError("Unrecognized command", toks[i + 2][1])
            name = toks[i + 4][0]
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,30}", name):
                raise _CliError("Wrong parameter", toks[i + 4][1])
            self._no_more(toks, i + 5)
            with sw.lock:
                if undo:
                    if name not in sw.tables:
                        return Reply("The WRED table does not exist.")
                    if any(c.wred == name for c in sw.ifcfg.values()):
                        return Reply("The WRED table is being used.")
                    del sw.tables[name]
                    return Reply()
                sw.tables.setdefault(name, {})
            self.views[1:] = [("system", ""), ("wred", name)]
            return Reply()
        raise _CliError("Unrecognized command", toks[0][1])

    # ---------------------------------------------------------------- WRED table view
    def _wred_line(self, line: str, toks: list[tuple[str, int]]) -> Reply:
        sw = self.switch
        words = [t.lower() for t, _ in toks]
        undo = words[0] == "undo"
        i = 1 if undo else 0
        if len(toks) < i + 2:
            raise _CliError("Incomplete command", len(line) + 1)
        q = self._number(toks[i + 1], 0, 7)
        rest = words[i + 2:]
        pos = toks[i + 2][1] if len(toks) > i + 2 else len(line) + 1
        table = sw.tables.get(self.views[-1][1])
        if table is None:  # another session deleted the table under our feet
            self.views.pop()
            return Reply("The WRED table does not exist.")
        with sw.lock:
            if undo:
                if not rest:
                    table.pop(q, None)
                elif _kw(rest[0], "ecn", 1) and len(rest) == 1:
                    if q in table:
                        table[q].ecn = False
                elif _kw(rest[0], "weighting-constant", 1) and len(rest) == 1:
                    if q in table:
                        table[q].weighting_constant = None
                else:
                    raise _CliError("Unrecognized command", pos)
                sw.apply_config()
                return Reply()
            if not rest:
                raise _CliError("Incomplete command", len(line) + 1)
            if _kw(rest[0], "ecn", 1):
                self._no_more(toks, i + 3)
                table.setdefault(q, QueueCfg()).ecn = True
                sw.apply_config()
                return Reply()
            if _kw(rest[0], "weighting-constant", 1):
                if len(toks) < i + 4:
                    raise _CliError("Incomplete command", len(line) + 1)
                n = self._number(toks[i + 3], 0, 15)
                self._no_more(toks, i + 4)
                table.setdefault(q, QueueCfg()).weighting_constant = n
                sw.apply_config()
                return Reply()
            j = i + 2
            levels = [0, 1, 2]
            if _kw(words[j], "drop-level", 1):
                if len(toks) < j + 2:
                    raise _CliError("Incomplete command", len(line) + 1)
                levels = [self._number(toks[j + 1], 0, 2)]
                j += 2
            values: dict[str, int] = {}
            for key in ("low-limit", "high-limit", "discard-probability"):
                if j >= len(toks):
                    if key == "discard-probability":
                        break
                    raise _CliError("Incomplete command", len(line) + 1)
                if not _kw(words[j], key, 1):
                    raise _CliError("Unrecognized command", toks[j][1])
                if j + 1 >= len(toks):
                    raise _CliError("Incomplete command", len(line) + 1)
                hi = 100 if key == "discard-probability" else sw.buffer_cells
                values[key] = self._number(toks[j + 1], 0, hi)
                j += 2
            self._no_more(toks, j)
            if values["low-limit"] > values["high-limit"]:
                return Reply("The low limit must be less than or equal to the high limit.")
            qc = table.setdefault(q, QueueCfg())
            for lvl in levels:
                qc.levels[lvl] = (values["low-limit"], values["high-limit"],
                                  values.get("discard-probability", WRED_DEFAULT[2]))
            sw.apply_config()
        return Reply()

    # ---------------------------------------------------------------- interface view
    def _interface_line(self, line: str, toks: list[tuple[str, int]]) -> Reply | None:
        sw = self.switch
        words = [t.lower() for t, _ in toks]
        undo = words[0] == "undo"
        i = 1 if undo else 0
        if i >= len(words):
            raise _CliError("Incomplete command", len(line) + 1)
        c = sw.ifcfg[self.views[-1][1]]
        end = len(line) + 1
        if _kw(words[i], "qos", 3) and i + 1 < len(words) and _kw(words[i + 1], "wred", 2):
            if i + 2 < len(words) and _kw(words[i + 2], "queue", 2):
                return None  # a system-view command, accepted from here too
            if i + 2 >= len(words) or not _kw(words[i + 2], "apply", 1):
                raise _CliError("Incomplete command" if i + 2 >= len(words)
                                else "Unrecognized command", toks[i + 2][1] if i + 2 < len(toks)
                                else end)
            with sw.lock:
                if undo:
                    self._no_more(toks, i + 4)
                    c.wred = None
                else:
                    if i + 3 >= len(toks):
                        raise _CliError("Incomplete command", end)
                    name = toks[i + 3][0]
                    self._no_more(toks, i + 4)
                    if name not in sw.tables:
                        return Reply("The WRED table does not exist.")
                    c.wred = name
                sw.apply_config()
            return Reply()
        if not _kw(words[i], "priority-flow-control", 8):
            return None
        rest = words[i + 1:]
        if not rest:
            raise _CliError("Incomplete command", end)
        with sw.lock:
            if _kw(rest[0], "enable", 1) and len(rest) == 1:
                c.pfc = not undo
                sw.apply_config()
                return Reply()
            if _kw(rest[0], "no-drop", 1):
                if len(rest) < 2 or not _kw(rest[1], "dot1p", 1):
                    raise _CliError("Incomplete command" if len(rest) < 2 else "Unrecognized "
                                    "command", toks[i + 2][1] if len(rest) >= 2 else end)
                if undo:
                    c.no_drop = []
                else:
                    prios = self._priority_list(toks[i + 3:], end)
                    c.no_drop = sorted(set(prios))  # the list replaces the previous one
                sw.apply_config()
                return Reply()
            if _kw(rest[0], "dot1p", 1):
                if len(rest) < 3:
                    raise _CliError("Incomplete command", end)
                prio = self._number(toks[i + 2], 0, 7)
                what = rest[2]
                j = i + 4
                if _kw(what, "headroom", 1):
                    target, hi = c.headroom, sw.buffer_cells
                elif _kw(what, "ingress-threshold-offset", 9):
                    target, hi = c.offset, sw.buffer_cells
                elif _kw(what, "ingress-buffer", 9):
                    if len(rest) < 4:
                        raise _CliError("Incomplete command", end)
                    if not _kw(rest[3], "dynamic", 1):
                        raise _CliError("Unrecognized command", toks[i + 4][1])
                    target, hi = c.dynamic, 100
                    j = i + 5
                else:
                    raise _CliError("Unrecognized command", toks[i + 3][1])
                if undo:
                    self._no_more(toks, j)
                    target.pop(prio, None)
                else:
                    if j >= len(toks):
                        raise _CliError("Incomplete command", end)
                    target[prio] = self._number(toks[j], 1 if target is not c.dynamic else 0, hi)
                    self._no_more(toks, j + 1)
                sw.apply_config()
                return Reply()
        raise _CliError("Unrecognized command", toks[i + 1][1])

    def _priority_list(self, toks: list[tuple[str, int]], end: int) -> list[int]:
        if not toks:
            raise _CliError("Incomplete command", end)
        out: list[int] = []
        k = 0
        while k < len(toks):
            tok, pos = toks[k]
            if "," in tok or "-" in tok:
                for part in tok.split(","):
                    m = re.fullmatch(r"([0-7])(?:-([0-7]))?", part)
                    if not m:
                        raise _CliError("Wrong parameter", pos)
                    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
                    out += range(lo, hi + 1)
                k += 1
                continue
            lo = self._number((tok, pos), 0, 7)
            if k + 1 < len(toks) and toks[k + 1][0].lower() == "to":
                if k + 2 >= len(toks):
                    raise _CliError("Incomplete command", end)
                hi = self._number(toks[k + 2], lo, 7)
                out += range(lo, hi + 1)
                k += 3
                continue
            out.append(lo)
            k += 1
        return out

    @staticmethod
    def _number(tok: tuple[str, int], lo: int, hi: int) -> int:
        text, pos = tok
        if not re.fullmatch(r"\d{1,10}", text) or not lo <= int(text) <= hi:
            raise _CliError("Wrong parameter", pos)
        return int(text)

    # ---------------------------------------------------------------- display
    def _display(self, line: str, toks: list[tuple[str, int]]) -> list[str]:
        sw = self.switch
        words = [t.lower() for t, _ in toks]
        end = len(line) + 1
        if not toks:
            raise _CliError("Incomplete command", end)
        w = words[0]
        if _kw(w, "version", 1):
            self._no_more_after(toks, 1)
            return sw.display_version()
        if _kw(w, "current-configuration", 2):
            if len(toks) == 1:
                return sw.current_configuration()
            if _kw(words[1], "interface", 1) and len(toks) > 2:
                name = sw.resolve_interface(" ".join(t for t, _ in toks[2:]))
                if name is None:
                    raise _CliError("Wrong parameter", toks[2][1])
                return sw.current_configuration(only=name)
            raise _CliError("Unrecognized command", toks[1][1])
        if _kw(w, "this", 2):
            kind, arg = self.views[-1]
            with sw.lock:
                if kind == "interface":
                    return ["#", *sw.interface_lines(arg, sw.ifcfg[arg]), "#", "return"]
            return ["#", "return"]
        if _kw(w, "device", 2) and len(words) > 1 and _kw(words[1], "manuinfo", 1):
            return sw.display_manuinfo()
        if _kw(w, "priority-flow-control", 2):
            if len(toks) < 2 or not _kw(words[1], "interface", 1):
                raise _CliError("Incomplete command" if len(toks) < 2 else "Unrecognized command",
                                toks[1][1] if len(toks) > 1 else end)
            only = self._iface_arg(toks[2:]) if len(toks) > 2 else None
            return sw.display_pfc(only)
        if _kw(w, "qos", 1):
            if len(toks) >= 2 and _kw(words[1], "queue-statistics", 7):
                if len(toks) < 3 or not _kw(words[2], "interface", 1):
                    raise _CliError("Incomplete command" if len(toks) < 3 else
                                    "Unrecognized command", toks[2][1] if len(toks) > 2 else end)
                args = toks[3:]
                if not args or not _kw(args[-1][0].lower(), "outbound", 1):
                    raise _CliError("Incomplete command", end)
                only = self._iface_arg(args[:-1]) if len(args) > 1 else None
                return sw.display_queue_statistics(only)
            if len(toks) >= 3 and _kw(words[1], "wred", 1) and _kw(words[2], "table", 1):
                only = None
                if len(toks) >= 5 and _kw(words[3], "name", 1):
                    only = toks[4][0]
                    if only not in sw.tables:
                        return [f"The WRED table {only} does not exist."]
                return sw.display_wred_table(only)
            raise _CliError("Unrecognized command", toks[1][1] if len(toks) > 1 else end)
        if _kw(w, "buffer", 2):
            if len(toks) < 3 or not _kw(words[1], "usage", 1) or not _kw(words[2], "interface", 1):
                raise _CliError("Incomplete command", end)
            args = toks[3:]
            if args and _kw(args[-1][0].lower(), "verbose", 1):
                args = args[:-1]
            only = self._iface_arg(args) if args else None
            return sw.display_buffer_usage(only)
        if _kw(w, "clock", 2):
            return [time.strftime("%H:%M:%S.000 UTC %a %m/%d/%Y")]
        raise _CliError("Unrecognized command", toks[0][1])

    def _iface_arg(self, toks: list[tuple[str, int]]) -> str:
        name = self.switch.resolve_interface(" ".join(t for t, _ in toks))
        if name is None:
            raise _CliError("Wrong parameter", toks[0][1])
        return name

    @staticmethod
    def _no_more_after(toks: list[tuple[str, int]], n: int) -> None:
        if len(toks) > n:
            raise _CliError("Too many parameters", toks[n][1])


def _kw(token: str, keyword: str, minimum: int) -> bool:
    """Comware accepts any unambiguous prefix of a keyword (``dis`` for ``display``)."""
    return len(token) >= min(minimum, len(keyword)) and keyword.startswith(token)
