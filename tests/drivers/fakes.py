"""Minimal stand-ins for a switch's config store, used by the render -> parse round trips.

Each fake applies rendered CLI lines (refusing any line it does not know, like a NOS would)
and prints the read-back commands in the real output formats (the same layouts as the recorded
files). They also show the virtual-switch emulator what it must accept and print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def sonic_table(headers: list[str], rows: list[list[str]], *, align: str = "right") -> list[str]:
    """tabulate "simple": column width = max(header + 2, cells), two spaces between columns."""
    widths = [max(len(h) + 2, *(len(r[i]) for r in rows)) if rows else len(h) + 2
              for i, h in enumerate(headers)]
    just = (lambda s, w: s.rjust(w)) if align == "right" else (lambda s, w: s.ljust(w))
    out = ["  ".join(just(h, w) for h, w in zip(headers, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(just(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


def sonic_kv(title: str, pairs: list[tuple[str, str]]) -> list[str]:
    w0 = max(len(k) for k, _ in pairs)
    w1 = max(len(v) for _, v in pairs)
    rule = "-" * w0 + "  " + "-" * w1
    return [title, rule, *[(k.ljust(w0) + "  " + v).rstrip() for k, v in pairs], rule, ""]


@dataclass
class FakeSonic:
    ports: list[str]
    wred: dict[str, int] = field(
        default_factory=lambda: {"gmin": 1048576, "gmax": 2097152, "gdrop": 5}
    )
    profile: dict[str, int] = field(
        default_factory=lambda: {"xon": 18432, "xoff": 92160, "size": 110592, "dynamic_th": 0}
    )
    ecn_queues: set[int] = field(default_factory=lambda: {3, 4})
    pfc: dict[str, set[int]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for p in self.ports:
            self.pfc.setdefault(p, {3, 4})

    def apply(self, lines: list[str]) -> None:
        for line in lines:
            self.log.append(line)
            if m := re.fullmatch(r"ecnconfig -p AZURE_LOSSLESS((?: -g(?:min|max|drop) \d+)+)",
                                 line):
                for k, v in re.findall(r"-g(min|max|drop) (\d+)", m.group(1)):
                    self.wred["g" + k] = int(v)
            elif m := re.fullmatch(r"config buffer profile set (\S+)((?: --(?:xon|xoff|size) \d+)+)",
                                   line):
                for k, v in re.findall(r"--(xon|xoff|size) (\d+)", m.group(2)):
                    self.profile[k] = int(v)
            elif m := re.fullmatch(r"config mmu -p (\S+) -a (-?\d+)", line):
                self.profile["dynamic_th"] = int(m.group(2))
            elif m := re.fullmatch(r"ecnconfig -q ([0-7]) (on|off)", line):
                (self.ecn_queues.add if m.group(2) == "on" else self.ecn_queues.discard)(
                    int(m.group(1))
                )
            elif m := re.fullmatch(r"config interface pfc priority (\S+) ([0-7]) (on|off)", line):
                assert m.group(1) in self.pfc, line
                s = self.pfc[m.group(1)]
                (s.add if m.group(3) == "on" else s.discard)(int(m.group(2)))
            else:
                raise AssertionError(f"switch rejects: {line!r}")

    def show_ecn(self) -> str:
        w = self.wred
        return "\n".join(sonic_kv("Profile: AZURE_LOSSLESS", [
            ("ecn", "ecn_all"), ("green_max_threshold", str(w["gmax"])),
            ("green_min_threshold", str(w["gmin"])), ("wred_green_enable", "true"),
            ("green_drop_probability", str(w["gdrop"])),
        ]))

    def show_buffer_configuration(self, profile: str) -> str:
        p = self.profile
        lines = sonic_kv("Pool: ingress_lossless_pool", [("mode", "dynamic"), ("type", "ingress")])
        lines += sonic_kv(f"Profile: {profile}", [
            ("dynamic_th", str(p["dynamic_th"])), ("pool", "ingress_lossless_pool"),
            ("xon", str(p["xon"])), ("xoff", str(p["xoff"])), ("size", str(p["size"])),
        ])
        return "\n".join(lines)

    def ecnconfig_q(self) -> str:
        return "\n".join(["ECN status:"] + [
            f"queue {q}: {'on' if q in self.ecn_queues else 'off'}" for q in range(8)
        ])

    def show_pfc_priority(self) -> str:
        rows = [[p, ",".join(map(str, sorted(s)))] for p, s in self.pfc.items()]
        return "\n" + "\n".join(sonic_table(["Interface", "Lossless priorities"], rows,
                                            align="left")) + "\n"


@dataclass
class FakeComware:
    interfaces: list[str]
    tables: dict[str, dict[int, dict[str, object]]] = field(default_factory=dict)
    ifcfg: dict[str, dict[str, object]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i in self.interfaces:
            self.ifcfg.setdefault(i, {"pfc": False, "no_drop": set(), "apply": None,
                                      "headroom": {}, "dynamic": {}, "offset": {}})

    def apply(self, lines: list[str]) -> None:
        mode: tuple[str, str] | None = None  # ("table", name) | ("if", name) | ("system", "")
        for line in lines:
            self.log.append(line)
            if line == "system-view":
                mode = ("system", "")
                continue
            if line == "return":
                mode = None
                continue
            if line == "quit":
                assert mode is not None and mode[0] != "system", line
                mode = ("system", "")
                continue
            assert mode is not None, f"not in system-view: {line!r}"
            if mode[0] == "system":
                if m := re.fullmatch(r"qos wred queue table (\S+)", line):
                    self.tables.setdefault(m.group(1), {})
                    mode = ("table", m.group(1))
                elif m := re.fullmatch(r"interface (\S+)", line):
                    assert m.group(1) in self.ifcfg, line
                    mode = ("if", m.group(1))
                else:
                    raise AssertionError(f"switch rejects: {line!r}")
            elif mode[0] == "table":
                self._table_line(self.tables[mode[1]], line)
            else:
                self._if_line(self.ifcfg[mode[1]], line)

    @staticmethod
    def _table_line(t: dict[int, dict[str, object]], line: str) -> None:
        if m := re.fullmatch(r"queue ([0-7]) drop-level ([0-2]) low-limit (\d+) high-limit (\d+) "
                             r"discard-probability (\d+)", line):
            q = t.setdefault(int(m.group(1)), {"levels": {}, "ecn": False, "wc": None})
            q["levels"][int(m.group(2))] = (int(m.group(3)), int(m.group(4)),  # type: ignore[index]
                                            int(m.group(5)))
        elif m := re.fullmatch(r"queue ([0-7]) weighting-constant (\d+)", line):
            t.setdefault(int(m.group(1)), {"levels": {}, "ecn": False, "wc": None})["wc"] = \
                int(m.group(2))
        elif m := re.fullmatch(r"queue ([0-7]) ecn", line):
            t.setdefault(int(m.group(1)), {"levels": {}, "ecn": False, "wc": None})["ecn"] = True
        elif m := re.fullmatch(r"undo queue ([0-7]) ecn", line):
            if int(m.group(1)) in t:
                t[int(m.group(1))]["ecn"] = False
        elif m := re.fullmatch(r"undo queue ([0-7])", line):
            t.pop(int(m.group(1)), None)
        else:
            raise AssertionError(f"switch rejects: {line!r}")

    @staticmethod
    def _if_line(c: dict[str, object], line: str) -> None:
        pfx = r"priority-flow-control dot1p ([0-7])"
        if m := re.fullmatch(r"qos wred apply (\S+)", line):
            c["apply"] = m.group(1)
        elif line == "undo qos wred apply":
            c["apply"] = None
        elif line == "priority-flow-control enable":
            c["pfc"] = True
        elif line == "undo priority-flow-control enable":
            c["pfc"] = False
        elif m := re.fullmatch(r"priority-flow-control no-drop dot1p((?: [0-7])+)", line):
            c["no_drop"] = {int(x) for x in m.group(1).split()}
        elif line == "undo priority-flow-control no-drop dot1p":
            c["no_drop"] = set()
        elif m := re.fullmatch(pfx + r" (headroom|ingress-buffer dynamic|ingress-threshold-offset)"
                               r" (\d+)", line):
            key = {"headroom": "headroom", "ingress-buffer dynamic": "dynamic",
                   "ingress-threshold-offset": "offset"}[m.group(2)]
            c[key][int(m.group(1))] = int(m.group(3))  # type: ignore[index]
        elif m := re.fullmatch(r"undo " + pfx + r" (headroom|ingress-buffer dynamic|"
                               r"ingress-threshold-offset)", line):
            key = {"headroom": "headroom", "ingress-buffer dynamic": "dynamic",
                   "ingress-threshold-offset": "offset"}[m.group(2)]
            c[key].pop(int(m.group(1)), None)  # type: ignore[attr-defined]
        else:
            raise AssertionError(f"switch rejects: {line!r}")

    def current_configuration(self) -> str:
        out = ["#", " version 7.1.070, Release 6710", "#", " sysname fake", "#"]
        for name, t in self.tables.items():
            out.append(f"qos wred queue table {name}")
            for q in sorted(t):
                levels = t[q]["levels"]
                for lvl, (lo, hi, pr) in sorted(levels.items()):  # type: ignore[attr-defined]
                    out.append(f" queue {q} drop-level {lvl} low-limit {lo} high-limit {hi} "
                               f"discard-probability {pr}")
                if t[q]["wc"] is not None:
                    out.append(f" queue {q} weighting-constant {t[q]['wc']}")
                if t[q]["ecn"]:
                    out.append(f" queue {q} ecn")
            out.append("#")
        for name, c in self.ifcfg.items():
            out += [f"interface {name}", " port link-mode bridge"]
            if c["pfc"]:
                out.append(" priority-flow-control enable")
            if c["no_drop"]:
                out.append(" priority-flow-control no-drop dot1p "
                           + " ".join(map(str, sorted(c["no_drop"]))))  # type: ignore[call-overload]
            for key, word in (("headroom", "headroom"), ("dynamic", "ingress-buffer dynamic"),
                              ("offset", "ingress-threshold-offset")):
                for p, v in sorted(c[key].items()):  # type: ignore[attr-defined]
                    out.append(f" priority-flow-control dot1p {p} {word} {v}")
            if c["apply"]:
                out.append(f" qos wred apply {c['apply']}")
            out.append("#")
        out.append("return")
        return "\n".join(out) + "\n"
