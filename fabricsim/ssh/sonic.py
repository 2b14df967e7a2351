"""A community-SONiC switch as seen over SSH: bash prompts, ``sudo -s``, sonic-utilities.

Show output follows sonic-utilities' layouts (``tabulate`` "simple" tables with
``stralign='right'``, thousands separators in pfcstat/queuestat/wredstat, none in
watermarkstat, ``Profile: NAME`` key/value blocks in ecnconfig/mmuconfig), rendered from the
VirtualFabric's counters. Configuration commands (``ecnconfig``, ``config buffer profile set``,
``config mmu``, ``config interface pfc priority``, ``config checkpoint|rollback``) change the
emulated CONFIG_DB and push the resulting waterlines into the fabric. Errors read like the
real tools: bash's ``command not found``, click's ``Usage:``/``Error:`` blocks, ecnconfig's
``Exception caught:``, and ``Root privileges ...`` when a config command runs without root.

Watermarks: the fabric keeps one watermark per queue; the switch folds it into a *user*
watermark (``show queue watermark``, cleared by ``sonic-clear queue watermark``) and a
*persistent* one (``show queue persistent-watermark``), as SONiC's watermark counters do.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any, ClassVar

from fabricsim.buffers import sonic_headroom
from fabricsim.fabric import PortCounters, VirtualFabric
from fabricsim.physics import Thresholds, sonic_default

from .device import (
    CliSession,
    EmulatedSwitch,
    Reply,
    alpha_from_exponent,
    fabric_thresholds,
)
from .text import grouped, key_value_block, tabulate_simple

WRED_LOSSLESS = "AZURE_LOSSLESS"
SUDO_TIMEOUT_S = 15 * 60  # sudo's default timestamp_timeout
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PLATFORMS = {
    "SN3700": ("x86_64-mlnx_msn3700-r0", "Mellanox-SN3700-D48C8", "mellanox", "MSN3700-VS2FO"),
    "SN4700": ("x86_64-mlnx_msn4700-r0", "Mellanox-SN4700-O8C48", "mellanox", "MSN4700-WS2FO"),
    "7060DX5": ("x86_64-arista_7060dx5_64s", "Arista-7060DX5-64S", "broadcom", "7060DX5-64S"),
}


class _Usage(Exception):
    """A click-style usage error: ``Usage:`` line, hint, blank line, ``Error: ...``."""

    def __init__(self, usage: str, message: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.message = message

    def text(self) -> str:
        cmd = self.usage.split(" [")[0].split(" <")[0]
        cmd = re.sub(r" [A-Z_]+$", "", cmd)
        return f'Usage: {self.usage}\nTry "{cmd} -h" for help.\n\nError: {self.message}'


class _Fail(Exception):
    """A tool's own error text (printed as is)."""


def _int(usage: str, option: str, value: str, *, signed: bool = False) -> int:
    if not re.fullmatch(r"-?\d+" if signed else r"\d+", value):
        if re.fullmatch(r"-\d+", value):
            raise _Usage(usage, f'Invalid value for "{option}": {value} is not in the valid range '
                                f"of 0 to 9223372036854775807.")
        raise _Usage(usage, f'Invalid value for "{option}": {value} is not a valid integer')
    return int(value)


class SonicSwitch(EmulatedSwitch):
    """A SONiC switch: CONFIG_DB-like QoS tables, checkpoints and counter baselines."""

    nos = "sonic"
    ssh_version = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2"

    def __init__(self, entry: dict[str, Any], fabric: VirtualFabric, *, username: str,
                 password: str) -> None:
        super().__init__(entry, fabric, username=username, password=password)
        qos = fabric.get_qos(self.name)
        prios = fabric.lossless_priorities or (3,)
        th = qos.thresholds.get(prios[0]) or sonic_default()
        speed, cable = self.fastest_port()
        head = sonic_headroom(speed, cable)
        xoff = th.headroom_bytes or head["xoff_bytes"]
        xon = head["xon_bytes"]
        self.profile_name = f"pg_lossless_{speed * 1000}_{int(cable)}m_profile"
        pct = str(max(1, round(th.pmax * 100)))
        kmin, kmax = str(th.kmin_bytes), str(th.kmax_bytes)
        self.cfg: dict[str, Any] = {
            "WRED_PROFILE": {
                WRED_LOSSLESS: {
                    "ecn": "ecn_all", "green_max_threshold": kmax, "green_min_threshold": kmin,
                    "wred_green_enable": "true", "green_drop_probability": pct,
                    "yellow_max_threshold": kmax, "yellow_min_threshold": kmin,
                    "wred_yellow_enable": "true", "yellow_drop_probability": pct,
                    "red_max_threshold": kmax, "red_min_threshold": kmin,
                    "wred_red_enable": "true", "red_drop_probability": pct,
                },
                "AZURE_LOSSY": {
                    "ecn": "ecn_none", "green_drop_probability": "10",
                    "green_max_threshold": "1048576", "green_min_threshold": "524288",
                    "wred_green_enable": "true",
                },
            },
            "ECN_QUEUES": sorted(qos.ecn_queues),
            "PFC": {p: sorted(qos.pfc_priorities) for p in self.port_names()},
            "BUFFER_POOL": {
                "egress_lossless_pool": {"mode": "dynamic", "size": str(self.buffer_bytes * 13 // 16),
                                         "type": "egress"},
                "ingress_lossless_pool": {"mode": "dynamic",
                                          "size": str(self.buffer_bytes * 3 // 4),
                                          "type": "ingress", "xoff": str(self.buffer_bytes // 8)},
            },
            "BUFFER_PROFILE": {
                self.profile_name: {"dynamic_th": "-3", "pool": "ingress_lossless_pool",
                                    "xon": str(xon), "xoff": str(xoff), "size": str(xoff + xon)},
                "egress_lossless_profile": {"dynamic_th": "7", "pool": "egress_lossless_pool",
                                            "size": "0"},
                "ingress_lossy_profile": {"dynamic_th": "3", "pool": "ingress_lossless_pool",
                                          "size": "0"},
            },
        }
        self.checkpoints: dict[str, dict[str, Any]] = {}
        self._wm_user: dict[tuple[str, int], int] = {}
        self._wm_persist: dict[tuple[str, int], int] = {}
        self._base_queue: dict[tuple[str, int], PortCounters] = {}
        self._base_pfc: dict[tuple[str, int], PortCounters] = {}
        self.adopt_startup_config()

    # ---------------------------------------------------------------- config -> physics
    def physics(self) -> tuple[tuple[int, ...], tuple[int, ...], dict[int, Thresholds]]:
        with self.lock:
            w = self.cfg["WRED_PROFILE"].get(WRED_LOSSLESS, {})
            kmin = int(w.get("green_min_threshold", 0))
            kmax = int(w.get("green_max_threshold", kmin))
            pmax = int(w.get("green_drop_probability", 0)) / 100
            prof = self.cfg["BUFFER_PROFILE"].get(self.profile_name, {})
            size = int(prof.get("size", 0)) or None
            alpha = alpha_from_exponent(int(prof.get("dynamic_th", -3)))
            sets = [set(v) for v in self.cfg["PFC"].values()]
            pfc = tuple(sorted(set.intersection(*sets))) if sets else ()
            ecn = tuple(sorted(self.cfg["ECN_QUEUES"]))
            th = fabric_thresholds(kmin, kmax, pmax, size, alpha)
            return pfc, ecn, {p: th for p in self.fabric.lossless_priorities}

    # ---------------------------------------------------------------- counters
    def sample(self) -> dict[tuple[str, int], PortCounters]:
        """Counters now; folds the fabric's watermark into the user/persistent watermarks."""
        with self.lock:
            self.flush()
            rows = self.fabric.read_counters(self.name)
            self.fabric.clear_watermarks(self.name)
            out: dict[tuple[str, int], PortCounters] = {}
            for r in rows:
                key = (r.interface, r.priority)
                peak = max(r.watermark_bytes, r.occupancy_bytes)
                self._wm_user[key] = max(self._wm_user.get(key, 0), peak)
                self._wm_persist[key] = max(self._wm_persist.get(key, 0), peak)
                out[key] = r
            return out

    def clear_watermark(self, persistent: bool) -> None:
        with self.lock:
            self.sample()
            target = self._wm_persist if persistent else self._wm_user
            target.clear()

    def clear_counters(self, kind: str) -> None:
        with self.lock:
            data = self.sample()
            (self._base_queue if kind == "queue" else self._base_pfc).update(data)

    def counter(self, data: dict[tuple[str, int], PortCounters], port: str, prio: int,
                name: str, base: dict[tuple[str, int], PortCounters]) -> int:
        row = data.get((port, prio))
        if row is None:
            return 0
        value = int(getattr(row, name))
        b = base.get((port, prio))
        return max(0, value - int(getattr(b, name))) if b is not None else value

    def new_session(self, sid: int, *, exec_mode: bool = False) -> SonicSession:
        self.sessions_opened += 1
        return SonicSession(self, sid, exec_mode=exec_mode)

    def platform(self) -> tuple[str, str, str, str]:
        for key, value in _PLATFORMS.items():
            if key in self.model:
                return value
        return ("x86_64-kvm_x86_64-r0", "Force10-S6000", "vs", "S6000-VS")


class SonicSession(CliSession):
    """bash on SONiC: ``admin@name:~$``; ``sudo -s`` -> ``root@name:/home/admin#``."""

    switch: SonicSwitch

    def __init__(self, switch: SonicSwitch, sid: int, *, exec_mode: bool = False) -> None:
        super().__init__(switch, sid)
        self.root = switch.username == "root"
        self.exec_mode = exec_mode
        self._awaiting: list[str] | None = None  # the command waiting for the sudo password
        self._tries = 0
        self._sudo_until = 0.0

    # ---------------------------------------------------------------- shell surface
    @property
    def echo(self) -> bool:  # type: ignore[override]
        return self._awaiting is None

    def banner(self) -> str:
        return (f"Linux {self.switch.name} 6.1.0-11-2-amd64 #1 SMP PREEMPT_DYNAMIC Debian "
                "6.1.38-4 (2023-08-08) x86_64\r\nYou are on\r\n  ____   ___  _   _ _  ____\r\n"
                " / ___| / _ \\| \\ | (_)/ ___|\r\n \\___ \\| | | |  \\| | | |\r\n"
                "  ___) | |_| | |\\  | | |___\r\n |____/ \\___/|_| \\_|_|\\____|\r\n\r\n"
                "-- Software for Open Networking in the Cloud --\r\n\r\n"
                "Unauthorized access and/or use are prohibited.\r\n"
                "All access and/or use are subject to monitoring.\r\n\r\n"
                "Help:    https://sonic-net.github.io/SONiC/\r\n\r\n")

    def prompt(self) -> str:
        if self._awaiting is not None:
            return f"[sudo] password for {self.switch.username}: "
        if self.root:
            return f"root@{self.switch.name}:/home/{self.switch.username}# "
        return f"{self.switch.username}@{self.switch.name}:~$ "

    def view(self) -> str:
        if self._awaiting is not None:
            return "sudo-password"
        return "exec" if self.exec_mode else ("root" if self.root else "user")

    def is_config(self, line: str) -> bool:
        toks = line.split()
        if toks[:1] == ["sudo"]:
            toks = toks[1:]
        if not toks:
            return False
        if toks[0] == "config":
            return len(toks) > 1 and toks[1] not in ("list-checkpoints", "-h", "--help")
        if toks[0] == "ecnconfig":
            return "-p" in toks or "--profile" in toks or bool({"on", "off"} & set(toks))
        return toks[0] == "mmuconfig" and "-p" in toks

    # ---------------------------------------------------------------- dispatch
    def handle(self, line: str) -> Reply:
        if self._awaiting is not None:
            return self._password(line)
        toks = line.split()
        if not toks:
            return Reply()
        if self.switch.garbage_for(line):
            return Reply(self.garbage(line))
        if self.is_config(line) and self.switch.rejects(line):
            return Reply(self._rejection(toks))
        if toks[0] == "sudo":
            return self._sudo(toks[1:])
        if toks[0] in ("exit", "logout"):
            if self.root and self.switch.username != "root":
                self.root = False
                return Reply("exit")
            return Reply("logout", close=True)
        return Reply(self.run(toks, root=self.root))

    def _rejection(self, toks: list[str]) -> str:
        if toks[0] == "sudo":
            toks = toks[1:]
        if toks[0] == "ecnconfig":
            return "Exception caught:  Input arguments error. Invalid WRED profile parameters"
        what = " ".join(toks[:3])
        return f"Error: {what}: failed to apply the change (orchagent returned SAI_STATUS_FAILURE)"

    def _sudo(self, args: list[str]) -> Reply:
        if not args:
            return Reply("usage: sudo -h | -K | -k | -V\nusage: sudo -v [-ABkNnS] [-g group] "
                         "[-h host] [-p prompt] [-u user]\nusage: sudo [-ABbEHkNnPS] <command>")
        if self.root or time.monotonic() < self._sudo_until:
            return self._as_root(args)
        self._awaiting = args
        self._tries = 0
        return Reply()

    def _password(self, line: str) -> Reply:
        args = self._awaiting or []
        if line == self.switch.password and not self.switch.faults.auth:
            self._awaiting = None
            self._sudo_until = time.monotonic() + SUDO_TIMEOUT_S
            return self._as_root(args)
        self._tries += 1
        if self._tries >= 3:
            self._awaiting = None
            return Reply("sudo: 3 incorrect password attempts")
        return Reply("Sorry, try again.")

    def _as_root(self, args: list[str]) -> Reply:
        if args in (["-s"], ["-i"], ["su"], ["bash"]):
            self.root = True
            return Reply()
        if args and args[0].startswith("-") and args[0] not in ("-E", "-H"):
            return Reply(f"sudo: invalid option -- '{args[0].lstrip('-')[:1]}'")
        if args and args[0] in ("-E", "-H"):
            args = args[1:]
        return Reply(self.run(args, root=True))

    def run(self, toks: list[str], *, root: bool) -> str:
        cmd = toks[0]
        handlers = {
            "show": self._show, "config": self._config, "ecnconfig": self._ecnconfig,
            "mmuconfig": self._mmuconfig, "sonic-clear": self._clear,
        }
        try:
            if cmd in handlers:
                return handlers[cmd](toks[1:], root)
            if cmd == "hostname":
                return self.switch.name
            if cmd == "whoami":
                return "root" if root else self.switch.username
            if cmd == "true":
                return ""
            if cmd == "echo":
                return " ".join(toks[1:])
        except _Usage as exc:
            return exc.text()
        except _Fail as exc:
            return str(exc)
        return f"-bash: {cmd}: command not found"

    # ---------------------------------------------------------------- show
    def _show(self, args: list[str], root: bool) -> str:
        sw = self.switch
        usage = "show [OPTIONS] COMMAND [ARGS]..."
        if not args:
            return ("Usage: show [OPTIONS] COMMAND [ARGS]...\n\n  SONiC command line - 'show' "
                    "command\n\nOptions:\n  -h, -?, --help  Show this message and exit.\n\n"
                    "Commands:\n  buffer  Show buffer information\n  ecn     Show ECN "
                    "configuration\n  pfc     Show details of the priority-flow-control (pfc)\n"
                    "  priority-group  Show details of the PGs\n  queue   Show details of the "
                    "queues\n  version Show version information")
        sub, rest = args[0], args[1:]
        if sub == "version":
            return self._version()
        if sub == "ecn":
            return self._wred_list()
        if sub == "pfc":
            return self._show_pfc(rest)
        if sub == "queue":
            return self._show_queue(rest)
        if sub == "priority-group":
            return self._show_pg(rest)
        if sub == "buffer":
            if rest[:1] == ["configuration"]:
                return self._buffer(information=False)
            if rest[:1] == ["information"]:
                return self._buffer(information=True)
            raise _Usage("show buffer [OPTIONS] COMMAND [ARGS]...",
                          f'No such command "{rest[0]}".' if rest else 'Missing command.')
        if sub in ("interfaces", "interface") and rest[:1] == ["status"]:
            return self._interfaces_status()
        del sw
        raise _Usage(usage, f'No such command "{sub}".')

    def _version(self) -> str:
        sw = self.switch
        platform, hwsku, asic, model = sw.platform()
        up = sw.uptime_s()
        days, rem = divmod(up, 86400)
        serial = f"MT{abs(hash(sw.name)) % 10**10:010d}"
        return "\n".join([
            "",
            "SONiC Software Version: SONiC.202311.1-fabricsim",
            "SONiC OS Version: 12",
            "Distribution: Debian 12.5",
            "Kernel: 6.1.0-11-2-amd64",
            "Build commit: 5a4dbd4e",
            "Build date: Mon Jan 15 10:11:12 UTC 2024",
            "Built by: sonicbld@sonic-build",
            "",
            f"Platform: {platform}",
            f"HwSKU: {hwsku}",
            f"ASIC: {asic}",
            "ASIC Count: 1",
            f"Serial Number: {serial}",
            f"Model Number: {model}",
            "Hardware Revision: A1",
            f"Uptime: {time.strftime('%H:%M:%S')} up {days} days, {rem // 3600:2d}:"
            f"{rem % 3600 // 60:02d},  1 user,  load average: 0.52, 0.58, 0.59",
            f"Date: {time.strftime('%a %d %b %Y %H:%M:%S')}",
            "",
            "Docker images:",
            "REPOSITORY                    TAG                 IMAGE ID            SIZE",
            "docker-orchagent              202311.1-fabricsim  3f2a1b0c9d8e        337MB",
            "docker-syncd-mlnx             202311.1-fabricsim  8e7d6c5b4a39        861MB",
        ])

    def _ports(self) -> list[str]:
        return self.switch.port_names()

    def _show_pfc(self, rest: list[str]) -> str:
        sw = self.switch
        if rest[:1] == ["counters"]:
            data = sw.sample()
            out: list[str] = []
            for direction, attr in (("Rx", "rx_pause_frames"), ("Tx", "tx_pause_frames")):
                rows = [[port, *[grouped(sw.counter(data, port, p, attr, sw._base_pfc))
                                 for p in range(8)]] for port in self._ports()]
                if out:
                    out.append("")
                out += tabulate_simple([f"Port {direction}", *[f"PFC{p}" for p in range(8)]], rows)
            return "\n".join(out)
        if rest[:1] == ["priority"]:
            with sw.lock:
                rows = [[port, ",".join(map(str, sw.cfg["PFC"].get(port, [])))]
                        for port in self._ports()]
            return "\n" + "\n".join(tabulate_simple(["Interface", "Lossless priorities"], rows,
                                                     align="left")) + "\n"
        if rest[:1] == ["asymmetric"]:
            rows = [[port, "off"] for port in self._ports()]
            return "\n" + "\n".join(tabulate_simple(["Interface", "Asymmetric"], rows,
                                                     align="left")) + "\n"
        raise _Usage("show pfc [OPTIONS] COMMAND [ARGS]...",
                     f'No such command "{rest[0]}".' if rest else "Missing command.")

    def _show_queue(self, rest: list[str]) -> str:
        sw = self.switch
        usage = "show queue [OPTIONS] COMMAND [ARGS]..."
        if not rest:
            raise _Usage(usage, "Missing command.")
        sub, args = rest[0], rest[1:]
        ports = self._ports()
        if sub in ("counters", "wredcounters"):
            if args:
                if args[0] not in ports:
                    return f"Port doesn't exist! {args[0]}"
                ports = [args[0]]
            data = sw.sample()
            tables: list[str] = []
            for port in ports:
                rows: list[list[str]] = []
                if sub == "counters":
                    headers = ["Port", "TxQ", "Counter/pkts", "Counter/bytes", "Drop/pkts",
                               "Drop/bytes"]
                    for q in range(8):
                        rows.append([port, f"UC{q}", *[
                            grouped(sw.counter(data, port, q, a, sw._base_queue))
                            for a in ("tx_packets", "tx_bytes", "drop_packets", "drop_bytes")]])
                    for q in range(8, 16):
                        rows.append([port, f"MC{q}", "0", "0", "0", "0"])
                else:
                    headers = ["Port", "TxQ", "WredDrp/pkts", "WredDrp/bytes", "EcnMarked/pkts",
                               "EcnMarked/bytes"]
                    for q in range(8):
                        rows.append([port, f"UC{q}", *[
                            grouped(sw.counter(data, port, q, a, sw._base_queue))
                            for a in ("wred_drop_packets", "wred_drop_bytes",
                                      "ecn_marked_packets", "ecn_marked_bytes")]])
                tables.append("\n".join(tabulate_simple(headers, rows)))
            return "\n\n".join(tables)
        if sub in ("watermark", "persistent-watermark"):
            kind = args[0] if args else ""
            if kind not in ("unicast", "multicast", "all"):
                raise _Usage(f"show queue {sub} [OPTIONS] COMMAND [ARGS]...",
                             f'No such command "{kind}".' if kind else "Missing command.")
            data = sw.sample()
            store = sw._wm_persist if sub == "persistent-watermark" else sw._wm_user
            del data
            if kind == "multicast":
                title = "Egress shared pool occupancy per multicast queue:"
                headers = ["Port", *[f"MC{q}" for q in range(8, 16)]]
                rows = [[port, *["0"] * 8] for port in ports]
            else:
                title = ("Egress shared pool occupancy per unicast queue:" if kind == "unicast"
                         else "Egress shared pool occupancy per all queues:")
                headers = ["Port", *[f"UC{q}" for q in range(8)]]
                with sw.lock:
                    rows = [[port, *[str(store.get((port, q), 0)) for q in range(8)]]
                            for port in ports]
            return "\n".join([title, *tabulate_simple(headers, rows)])
        raise _Usage(usage, f'No such command "{sub}".')

    def _show_pg(self, rest: list[str]) -> str:
        sw = self.switch
        if len(rest) < 2 or rest[0] not in ("watermark", "persistent-watermark") \
                or rest[1] not in ("shared", "headroom"):
            raise _Usage("show priority-group [OPTIONS] COMMAND [ARGS]...",
                         f'No such command "{rest[0]}".' if rest else "Missing command.")
        data = sw.sample()
        store = sw._wm_persist if rest[0] == "persistent-watermark" else sw._wm_user
        title = ("Ingress shared pool occupancy per PG:" if rest[1] == "shared"
                 else "Ingress headroom per PG:")
        rows = []
        for port in self._ports():
            cells = []
            for pg in range(8):
                if rest[1] == "shared":
                    value = store.get((port, pg), 0)
                else:  # headroom is used only while the port has paused its peer
                    row = data.get((port, pg))
                    value = 0 if row is None or row.tx_pause_frames == 0 else \
                        min(store.get((port, pg), 0), 18432)
                cells.append(str(value))
            rows.append([port, *cells])
        return "\n".join([title, *tabulate_simple(["Port", *[f"PG{p}" for p in range(8)]], rows)])

    def _wred_list(self) -> str:
        with self.switch.lock:
            profiles = copy.deepcopy(self.switch.cfg["WRED_PROFILE"])
        out: list[str] = []
        for name, fields in profiles.items():
            out += key_value_block(f"Profile: {name}", list(fields.items()))
        return "\n".join(out)

    def _buffer(self, *, information: bool) -> str:
        with self.switch.lock:
            pools = copy.deepcopy(self.switch.cfg["BUFFER_POOL"])
            profiles = copy.deepcopy(self.switch.cfg["BUFFER_PROFILE"])
        out: list[str] = []
        if not information:
            out += key_value_block("Lossless traffic pattern:",
                                   [("default_dynamic_th", "0"), ("over_subscribe_ratio", "2")])
        for name, fields in pools.items():
            out += key_value_block(f"Pool: {name}", sorted(fields.items()))
        for name, fields in profiles.items():
            pairs = list(fields.items())
            if information:
                pairs = [(k, f"[BUFFER_POOL_TABLE|{v}]" if k == "pool" else v) for k, v in pairs]
            out += key_value_block(f"Profile: {name}", pairs)
        if information:
            out.append(f"Total profiles: {len(profiles)}")
        return "\n".join(out)

    def _interfaces_status(self) -> str:
        rows = []
        for i in self.switch.interfaces:
            speed = int(i.get("speed_gbps") or 100)
            rows.append([str(i["name"]), "0,1,2,3", f"{speed}G", "9100", "rs", "etp",
                         "routed", "up", "up", "QSFP28 or later", "off"])
        headers = ["Interface", "Lanes", "Speed", "MTU", "FEC", "Alias", "Vlan", "Oper",
                   "Admin", "Type", "Asym PFC"]
        return "\n".join(tabulate_simple(headers, rows))

    # ---------------------------------------------------------------- sonic-clear
    def _clear(self, args: list[str], root: bool) -> str:
        sw = self.switch
        usage = "sonic-clear [OPTIONS] COMMAND [ARGS]..."
        if args[:2] == ["queue", "counters"]:
            sw.clear_counters("queue")
            return "Cleared counters"
        if args[:1] == ["pfccounters"]:
            sw.clear_counters("pfc")
            return "Cleared PFC counters"
        if len(args) >= 3 and args[0] == "queue" and args[1] in ("watermark",
                                                                "persistent-watermark"):
            if args[2] not in ("unicast", "multicast", "all"):
                raise _Usage(f"sonic-clear queue {args[1]} [OPTIONS] COMMAND [ARGS]...",
                             f'No such command "{args[2]}".')
            if not root:
                raise _Fail("Root privileges are required for this operation")
            sw.clear_watermark(persistent=args[1] == "persistent-watermark")
            return ""
        if len(args) >= 3 and args[0] == "priority-group" and args[1] in (
                "watermark", "persistent-watermark") and args[2] in ("shared", "headroom"):
            if not root:
                raise _Fail("Root privileges are required for this operation")
            sw.clear_watermark(persistent=args[1] == "persistent-watermark")
            return ""
        raise _Usage(usage, f'No such command "{args[0]}".' if args else "Missing command.")

    # ---------------------------------------------------------------- ecnconfig / mmuconfig
    _ECN_OPTS: ClassVar[dict[str, str]] = {"-gmin": "green_min_threshold", "-gmax": "green_max_threshold",
                 "-ymin": "yellow_min_threshold", "-ymax": "yellow_max_threshold",
                 "-rmin": "red_min_threshold", "-rmax": "red_max_threshold",
                 "-gdrop": "green_drop_probability", "-ydrop": "yellow_drop_probability",
                 "-rdrop": "red_drop_probability"}

    def _ecnconfig(self, args: list[str], root: bool) -> str:
        sw = self.switch
        usage = "ecnconfig [OPTIONS] [[on|off]]"
        opts: dict[str, str] = {}
        flags: set[str] = set()
        command: str | None = None
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-l", "--list", "-vv", "--verbose"):
                flags.add(a.lstrip("-")[:1] if a in ("-l", "--list") else "v")
                i += 1
                continue
            if a in ("-p", "--profile", "-q", "--queue", "-n", "--namespace", *self._ECN_OPTS):
                if i + 1 >= len(args):
                    raise _Usage(usage, f"Option {a} requires an argument")
                opts[a] = args[i + 1]
                i += 2
                continue
            if a.startswith("-"):
                raise _Usage(usage, f"no such option: {a}")
            if a.lower() in ("on", "off") and command is None:
                command = a.lower()
                i += 1
                continue
            raise _Usage(usage, f'Invalid value for "[COMMAND]": invalid choice: {a}. '
                                f"(choose from on, off)")
        if "l" in flags or "-p" in opts or "--profile" in opts:
            profile = opts.get("-p") or opts.get("--profile")
            sets = {k: v for k, v in opts.items() if k in self._ECN_OPTS}
            if "l" in flags:
                if sets:
                    raise _Fail("Exception caught:  Input arguments error. No set options "
                                "allowed when -l[ist] specified")
                return self._wred_list()
            if not sets:
                raise _Fail("Exception caught:  Input arguments error. Specify at least one "
                            "threshold parameter to set")
            with sw.lock:
                data = sw.cfg["WRED_PROFILE"].get(profile)
                if data is None:
                    raise _Fail(f"Exception caught:  Input arguments error. Invalid WRED profile "
                                f"{profile} for namespace None")
                new = dict(data)
                for opt, value in sets.items():
                    new[self._ECN_OPTS[opt]] = value
                problems = self._wred_problems(new)
                if problems:
                    raise _Fail("\n".join([*problems, "Exception caught:  Input arguments "
                                                      "error. Invalid WRED profile parameters"]))
                if not root:
                    raise _Fail("Root privileges required for this operation")
                sw.cfg["WRED_PROFILE"][str(profile)] = new
                sw.apply_config()
            if "v" in flags:
                return "\n".join(f"Setting {self._ECN_OPTS[o]} value to {v}" for o, v in sets.items())
            return ""
        queue = opts.get("-q") or opts.get("--queue")
        if queue is not None:
            queues = queue.split(",")
            if queues == [""]:
                raise _Fail("Exception caught:  Input arguments error. Specify at least one queue "
                            "by index")
            if any(not re.fullmatch(r"[0-7]", q) for q in queues):
                raise _Fail(f"Exception caught:  invalid literal for int() with base 10: "
                            f"'{next(q for q in queues if not re.fullmatch(r'[0-7]', q))}'")
            if command is None:
                with sw.lock:
                    on = set(sw.cfg["ECN_QUEUES"])
                lines = ["ECN status:"]
                for q in queues:
                    lines.append(f"queue {q}: {'on' if int(q) in on else 'off'}")
                return "\n".join(lines)
            if not root:
                raise _Fail("Root privileges required for this operation")
            with sw.lock:
                on = set(sw.cfg["ECN_QUEUES"])
                for q in queues:
                    (on.add if command == "on" else on.discard)(int(q))
                sw.cfg["ECN_QUEUES"] = sorted(on)
                sw.apply_config()
            if "v" in flags:
                return "\n".join(f"{'Enable' if command == 'on' else 'Disable'} ECN on "
                                 f"{','.join(self._ports())} queue {q}" for q in queues)
            return ""
        return ""

    @staticmethod
    def _wred_problems(data: dict[str, str]) -> list[str]:
        out: list[str] = []
        names = {v: k.lstrip("-") for k, v in SonicSession._ECN_OPTS.items()}
        for field, value in data.items():
            key = names.get(field)
            if key is None:
                continue
            if "threshold" in field and not value.isdigit():
                out.append(f"Invalid {key} ({value}). {key} should be an non-negative integer.")
            if "probability" in field and (not value.isdigit() or not 0 <= int(value) <= 100):
                out.append(f"Invalid {key} ({value}). {key} should be an integer between 0 and 100.")
        if out:
            return out
        for color in ("green", "yellow", "red"):
            lo, hi = data.get(f"{color}_min_threshold"), data.get(f"{color}_max_threshold")
            if lo is not None and hi is not None and int(lo) > int(hi):
                c = color[0]
                out.append(f"Invalid {c}min ({int(lo)}) and {c}max ({int(hi)}). {c}min should be "
                           f"smaller than {c}max")
        return out

    def _mmuconfig(self, args: list[str], root: bool) -> str:
        if args[:1] == ["-l"] or args[:1] == ["--list"]:
            return self._buffer(information=False)
        return self._mmu(args, root, usage="mmuconfig [OPTIONS]")

    def _mmu(self, args: list[str], root: bool, *, usage: str) -> str:
        sw = self.switch
        opts: dict[str, str] = {}
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-p", "-a", "-s"):
                if i + 1 >= len(args):
                    raise _Usage(usage, f"Option {a} requires an argument")
                opts[a] = args[i + 1]
                i += 2
                continue
            if a == "-l":
                return self._buffer(information=False)
            raise _Usage(usage, f"no such option: {a}")
        if "-p" not in opts:
            raise _Usage(usage, 'Missing option "-p".')
        alpha: int | None = None
        if "-a" in opts:
            alpha = _int(usage, "-a", opts["-a"], signed=True)
            if not -8 <= alpha <= 8:
                raise _Usage(usage, f'Invalid value for "-a": {alpha} is not in the valid range '
                                    f"of -8 to 8.")
        if not root:
            raise _Fail("Root privileges are required for this operation")
        with sw.lock:
            prof = sw.cfg["BUFFER_PROFILE"].get(opts["-p"])
            if prof is None:
                raise _Fail(f"Invalid profile name: {opts['-p']}")
            if alpha is not None:
                prof["dynamic_th"] = str(alpha)
            if "-s" in opts:
                prof["static_th"] = str(_int(usage, "-s", opts["-s"]))
            sw.apply_config()
        return ""

    # ---------------------------------------------------------------- config
    def _config(self, args: list[str], root: bool) -> str:
        usage = "config [OPTIONS] COMMAND [ARGS]..."
        if not args or args[0] in ("-h", "--help"):
            return ("Usage: config [OPTIONS] COMMAND [ARGS]...\n\n  SONiC command line - 'config'"
                    " command\n\nOptions:\n  -h, -?, --help  Show this message and exit.\n\n"
                    "Commands:\n  buffer             Configure buffer_profile\n  checkpoint      "
                    "   Take a checkpoint of the whole current config\n  delete-checkpoint  Delete "
                    "a checkpoint\n  interface          Interface-related configuration tasks\n"
                    "  list-checkpoints   List the config checkpoints available\n  mmu          "
                    "      mmuconfig configuration tasks\n  rollback           Rollback the whole "
                    "config to the specified checkpoint")
        sub, rest = args[0], args[1:]
        known = ("buffer", "checkpoint", "delete-checkpoint", "interface", "list-checkpoints",
                 "mmu", "rollback")
        if sub not in known:
            raise _Usage(usage, f'No such command "{sub}".')
        if not root:
            raise _Fail("Root privileges are required for this operation")
        if sub == "mmu":
            return self._mmu(rest, root, usage="config mmu [OPTIONS]")
        if sub == "buffer":
            return self._buffer_profile(rest)
        if sub == "interface":
            return self._interface(rest)
        return self._checkpoints(sub, rest)

    def _buffer_profile(self, rest: list[str]) -> str:
        sw = self.switch
        if rest[:1] != ["profile"]:
            raise _Usage("config buffer [OPTIONS] COMMAND [ARGS]...",
                         f'No such command "{rest[0]}".' if rest else "Missing command.")
        if rest[1:2] not in (["set"], ["add"], ["remove"]):
            raise _Usage("config buffer profile [OPTIONS] COMMAND [ARGS]...",
                         f'No such command "{rest[1]}".' if len(rest) > 1 else "Missing command.")
        action = rest[1]
        usage = f"config buffer profile {action} [OPTIONS] PROFILE"
        args = rest[2:]
        name: str | None = None
        values: dict[str, str] = {}
        i = 0
        while i < len(args):
            a = args[i]
            if a.startswith("--"):
                key, eq, val = a[2:].partition("=")
                if key not in ("xon", "xoff", "size", "dynamic_th", "static_th", "pool"):
                    raise _Usage(usage, f"no such option: --{key}")
                if not eq:
                    if i + 1 >= len(args):
                        raise _Usage(usage, f"--{key} option requires an argument")
                    val = args[i + 1]
                    i += 1
                if key in ("xon", "xoff", "size", "static_th"):
                    values[key] = str(_int(usage, f"--{key}", val))
                elif key == "dynamic_th":
                    values[key] = str(_int(usage, f"--{key}", val, signed=True))
                else:
                    values[key] = val
                i += 1
                continue
            if name is None:
                name = a
                i += 1
                continue
            raise _Usage(usage, f"Got unexpected extra argument ({a})")
        if name is None:
            raise _Usage(usage, 'Missing argument "PROFILE".')
        with sw.lock:
            profiles = sw.cfg["BUFFER_PROFILE"]
            if action == "remove":
                if name not in profiles:
                    raise _Usage(usage, f"Profile {name} doesn't exist")
                if name == sw.profile_name:
                    raise _Usage(usage, f"Profile {name} is referenced by BUFFER_PG and can't be "
                                        "removed")
                del profiles[name]
                return ""
            if action == "add" and name in profiles:
                raise _Usage(usage, f"Profile {name} already exist")
            if action == "set" and name not in profiles:
                raise _Usage(usage, f"Profile {name} doesn't exist")
            prof = dict(profiles.get(name) or {"pool": "ingress_lossless_pool"})
            prof.update(values)
            if "xoff" in prof and "size" in prof and int(prof["size"]) < int(prof["xoff"]):
                raise _Usage(usage, f"Size ({prof['size']}) must be no less than xoff "
                                    f"({prof['xoff']})")
            profiles[name] = prof
            sw.apply_config()
        return ""

    def _interface(self, rest: list[str]) -> str:
        sw = self.switch
        if rest[:2] != ["pfc", "priority"]:
            raise _Usage("config interface [OPTIONS] COMMAND [ARGS]...",
                         f'No such command "{rest[0]}".' if rest else "Missing command.")
        usage = "config interface pfc priority [OPTIONS] <interface_name> <priority> <status>"
        args = rest[2:]
        if len(args) < 3:
            missing = ["<interface_name>", "<priority>", "<status>"][len(args)]
            raise _Usage(usage, f'Missing argument "{missing}".')
        if len(args) > 3:
            raise _Usage(usage, f"Got unexpected extra argument ({args[3]})")
        port, prio, status = args
        if port not in sw.port_names():
            raise _Fail(f"Error: Interface name {port} is invalid. Please enter a valid interface "
                        "name!!")
        if prio not in [str(p) for p in range(8)]:
            raise _Usage(usage, f'Invalid value for "<priority>": invalid choice: {prio}. '
                                "(choose from 0, 1, 2, 3, 4, 5, 6, 7)")
        if status not in ("on", "off"):
            raise _Usage(usage, f'Invalid value for "<status>": invalid choice: {status}. '
                                "(choose from on, off)")
        with sw.lock:
            prios = set(sw.cfg["PFC"].get(port, []))
            (prios.add if status == "on" else prios.discard)(int(prio))
            sw.cfg["PFC"][port] = sorted(prios)
            sw.apply_config()
        return ""

    def _checkpoints(self, sub: str, rest: list[str]) -> str:
        sw = self.switch
        if sub == "list-checkpoints":
            with sw.lock:
                names = list(sw.checkpoints)
            return "[\n" + ",\n".join(f'    "{n}"' for n in names) + "\n]" if names else "[]"
        usage = f"config {sub} [OPTIONS] CHECKPOINT_NAME"
        if not rest:
            raise _Usage(usage, 'Missing argument "CHECKPOINT_NAME".')
        if len(rest) > 1:
            raise _Usage(usage, f"Got unexpected extra argument ({rest[1]})")
        name = rest[0]
        if not _NAME.match(name):
            raise _Fail(f"Error: Invalid checkpoint name {name!r}")
        with sw.lock:
            if sub == "checkpoint":
                sw.checkpoints[name] = copy.deepcopy(sw.cfg)
                return "\n".join([
                    "Config Rollbacker: Config checkpoint starting.",
                    f"Config Rollbacker: Checkpoint name: {name}.",
                    "Config Rollbacker: Getting current config db.",
                    "Config Rollbacker: Getting checkpoint full-path.",
                    "Config Rollbacker: Ensuring checkpoint directory exist.",
                    f"Config Rollbacker: Saving config db content to "
                    f"/etc/sonic/checkpoints/{name}.cp.json.",
                    "Config Rollbacker: Config checkpoint completed.",
                    "Checkpoint created successfully.",
                ])
            if name not in sw.checkpoints:
                verb = "rollback" if sub == "rollback" else "delete checkpoint"
                return "\n".join([
                    f"Config Rollbacker: Verifying '{name}' exists.",
                    f"Failed to {verb} config",
                    f"Error: Checkpoint '{name}' does not exist",
                ])
            if sub == "delete-checkpoint":
                del sw.checkpoints[name]
                return "Checkpoint deleted successfully."
            sw.cfg = copy.deepcopy(sw.checkpoints[name])
            sw.apply_config()
        return "\n".join([
            "Config Rollbacker: Config rollback starting.",
            f"Config Rollbacker: Checkpoint name: {name}.",
            f"Config Rollbacker: Verifying '{name}' exists.",
            "Config Rollbacker: Loading checkpoint into memory.",
            "Config Rollbacker: Replacing config using 'Config Replacer'.",
            "Config Replacer: Config replacement starting.",
            "Config Replacer: Target config length: 71914.",
            "Config Replacer: Getting current config db.",
            "Config Replacer: Generating patch between target config and current config db.",
            "Config Replacer: Applying patch using 'Patch Applier'.",
            "Config Replacer: Verifying config replacement is reflected on ConfigDB.",
            "Config Replacer: Config replacement completed.",
            "Config Rollbacker: Config rollback completed.",
            "Config rolled back successfully.",
        ])
