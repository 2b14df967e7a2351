"""Generate Waterline's Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are committed (Grafana provisions them as they are); this script is their
source. Edit it, then run

    .venv/bin/python deploy/grafana/generate_dashboards.py

tests/deploy/test_deploy.py fails when the committed JSON and this script disagree, and checks
that every query uses only metrics the service exports or recording rules from
deploy/prometheus/rules. Fleet-wide panels read the recording rules (cheap at 1,000 switches);
drill-down panels read the raw series with `max without (instance, job)`, because the API and
the collectors may export the same stored snapshot.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "waterline-prom"}
SCHEMA_VERSION = 39
PROFILES = ("idle", "allreduce", "incast", "websearch", "hadoop")
PROFILE_COLOURS = ("text", "blue", "red", "green", "orange")
WATERLINE_GAUGES = (  # metric, title, unit
    ("roce_ecn_kmin_bytes", "ECN Kmin", "bytes"),
    ("roce_ecn_kmax_bytes", "ECN Kmax", "bytes"),
    ("roce_ecn_pmax_ratio", "ECN Pmax", "percentunit"),
    ("roce_pfc_xoff_bytes", "PFC xoff", "bytes"),
    ("roce_pfc_xon_bytes", "PFC xon", "bytes"),
    ("roce_pfc_headroom_bytes", "PFC headroom", "bytes"),
    ("roce_buffer_alpha_ratio", "Buffer alpha", "short"),
)
FRAMES = "suffix: frames/s"

Json = dict[str, Any]


# --- building blocks ---------------------------------------------------------------------------


def target(expr: str, legend: str = "", *, ref: str = "A", instant: bool = False,
           table: bool = False) -> Json:
    out: Json = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }
    if table:
        out["format"] = "table"
    return out


def targets(*queries: tuple[str, str], instant: bool = False, table: bool = False) -> list[Json]:
    return [target(expr, legend, ref=chr(ord("A") + i), instant=instant, table=table)
            for i, (expr, legend) in enumerate(queries)]


def timeseries(title: str, queries: list[Json], *, unit: str = "short", description: str = "",
               stack: bool = False, bars: bool = False, overrides: list[Json] | None = None,
               min_zero: bool = True) -> Json:
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else (30 if stack else 10),
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    defaults: Json = {"unit": unit, "custom": custom}
    if min_zero:
        defaults["min"] = 0
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": queries,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "max"],
                       "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title: str, queries: list[Json], *, unit: str = "short", description: str = "",
         thresholds: list[tuple[float | None, str]] | None = None,
         mappings: list[Json] | None = None, text_mode: str = "auto",
         graph: bool = False) -> Json:
    steps = [{"color": colour, "value": value}
             for value, colour in (thresholds or [(None, "green")])]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": queries,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "mappings": mappings or [],
                "thresholds": {"mode": "absolute", "steps": steps},
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background" if thresholds else "value",
            "graphMode": "area" if graph else "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": text_mode,
        },
    }


def table(title: str, queries: list[Json], *, description: str = "", value_unit: str = "short",
          rename: dict[str, str] | None = None, merge: bool = False,
          overrides: list[Json] | None = None, sort_by: str | None = None) -> Json:
    transformations: list[Json] = []
    if merge:
        transformations.append({"id": "merge", "options": {}})
    transformations.append({
        "id": "organize",
        "options": {"excludeByName": {"Time": True}, "renameByName": rename or {},
                    "indexByName": {}},
    })
    options: Json = {"showHeader": True, "cellHeight": "sm",
                     "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": queries,
        "transformations": transformations,
        "fieldConfig": {
            "defaults": {"unit": value_unit, "custom": {"align": "auto"},
                         "thresholds": {"mode": "absolute",
                                        "steps": [{"color": "green", "value": None}]}},
            "overrides": overrides or [],
        },
        "options": options,
    }


def state_timeline(title: str, queries: list[Json], *, mappings: list[Json],
                   description: str = "") -> Json:
    return {
        "type": "state-timeline",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": queries,
        "fieldConfig": {
            "defaults": {"mappings": mappings, "color": {"mode": "thresholds"},
                         "thresholds": {"mode": "absolute",
                                        "steps": [{"color": "text", "value": None}]},
                         "custom": {"fillOpacity": 80, "lineWidth": 0}},
            "overrides": [],
        },
        "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
                    "alignValue": "left",
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
                    "tooltip": {"mode": "single", "sort": "none"}},
    }


def value_text(mapping: dict[str, tuple[str, str]]) -> list[Json]:
    """Value mappings: raw value -> (text, colour)."""
    return [{"type": "value", "options": {
        value: {"text": text, "color": colour, "index": i}
        for i, (value, (text, colour)) in enumerate(mapping.items())}}]


def link_to_switch(field: str = "switch") -> Json:
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [{"id": "links", "value": [{
            "title": "Switch drill-down",
            "url": "/d/waterline-switch/switch-drilldown?var-switch=${__value.raw}&${__url_time_range}",
        }]}],
    }


def unit_override(field: str, unit: str) -> Json:
    return {"matcher": {"id": "byName", "options": field},
            "properties": [{"id": "unit", "value": unit}]}


def dashed(regex: str) -> Json:
    return {"matcher": {"id": "byRegexp", "options": regex},
            "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                           {"id": "custom.lineWidth", "value": 2}]}


def query_variable(name: str, label: str, query: str, *, multi: bool = False) -> Json:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "definition": query,
        "query": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".+" if multi else None,
        "current": {},
        "options": [],
        "hide": 0,
        "regex": "",
    }


def custom_variable(name: str, label: str, values: list[str], default: str) -> Json:
    return {
        "type": "custom",
        "name": name,
        "label": label,
        "query": ",".join(values),
        "current": {"text": default, "value": default, "selected": True},
        "options": [{"text": v, "value": v, "selected": v == default} for v in values],
        "multi": False,
        "includeAll": False,
        "hide": 0,
    }


class Layout:
    """Places panels left to right in rows of 24 columns and numbers them."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "datasource": DATASOURCE,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y}})
        self._y += 1

    def add(self, panel: Json, w: int, h: int) -> None:
        if self._x + w > 24:
            self._newline()
        panel["gridPos"] = {"h": h, "w": w, "x": self._x, "y": self._y}
        self.panels.append(panel)
        self._x += w
        self._row_height = max(self._row_height, h)

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_height
        self._x = 0
        self._row_height = 0

    def numbered(self) -> list[Json]:
        for i, panel in enumerate(self.panels, start=1):
            panel["id"] = i
        return self.panels


def dashboard(uid: str, title: str, description: str, layout: Layout, *,
              variables: list[Json] | None = None,
              annotations: list[Json] | None = None) -> Json:
    builtin = {
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts", "type": "dashboard",
    }
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["waterline", "roce"],
        "editable": False,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [{"type": "dashboards", "tags": ["waterline"], "asDropdown": True,
                   "title": "Waterline", "includeVars": False, "keepTime": True,
                   "icon": "external link", "targetBlank": False, "tooltip": "", "url": ""}],
        "annotations": {"list": [builtin, *(annotations or [])]},
        "templating": {"list": variables or []},
        "panels": layout.numbered(),
    }


# --- fabric overview ---------------------------------------------------------------------------


def fabric_overview() -> Json:
    lay = Layout()
    lay.row("Fabric health")
    lay.add(stat("Switches up", targets(("fabric:roce_switches_up:sum", "up")),
                 description="Switches whose last poll succeeded."), 4, 4)
    lay.add(stat("Switches down",
                 targets(("fabric:roce_switches:count - fabric:roce_switches_up:sum", "down")),
                 thresholds=[(None, "green"), (1, "red")]), 4, 4)
    lay.add(stat("Collectors up", targets(('sum(up{job="waterline-collector"})', "collectors")),
                 thresholds=[(None, "red"), (1, "green")],
                 description="Collector processes Prometheus can scrape."), 4, 4)
    lay.add(stat("ECN mark ratio (fabric)",
                 targets(("sum(switch:roce_ecn_marked_packets:rate2m)"
                          " / sum(switch:roce_tx_packets:rate2m)", "ratio")),
                 unit="percentunit", graph=True,
                 description="ECN-marked over transmitted packets, all polled queues."), 4, 4)
    lay.add(stat("PFC pauses received (fabric)",
                 targets(('sum(switch:roce_pfc_pause_frames:rate2m{direction="rx"})', "rx")),
                 unit=FRAMES, graph=True), 4, 4)
    lay.add(stat("Drops (fabric)", targets(("sum(switch:roce_dropped_packets:rate2m)", "drops")),
                 unit="pps", thresholds=[(None, "green"), (0.001, "red")],
                 description="Drops on the polled (lossless) queues: should be 0."), 4, 4)
    lay.add(table("Switches",
                  targets(("switch:roce_switch_up:max", ""), instant=True, table=True),
                  description="1 = the last poll succeeded. Click a switch to drill down.",
                  rename={"Value": "state"},
                  overrides=[link_to_switch(), {
                      "matcher": {"id": "byName", "options": "state"},
                      "properties": [
                          {"id": "mappings", "value": value_text(
                              {"1": ("UP", "green"), "0": ("DOWN", "red")})},
                          {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                      ]}]), 12, 9)
    lay.add(table("Firing alerts",
                  targets(('ALERTS{alertstate="firing", alertname=~"Waterline.*"}', ""),
                          instant=True, table=True),
                  description="Waterline alerts firing now (deploy/prometheus/rules).",
                  rename={"Value": "firing"}, overrides=[link_to_switch()]), 12, 9)

    lay.row("PFC and ECN by switch")
    lay.add(timeseries("PFC pause frames received by switch",
                       targets(('switch:roce_pfc_pause_frames:rate2m{direction="rx"}',
                                "{{switch}}")), unit=FRAMES,
                       description="Received pauses: the switch's egress queues were paused "
                       "by their peers."), 12, 8)
    lay.add(timeseries("PFC pause frames sent by switch",
                       targets(('switch:roce_pfc_pause_frames:rate2m{direction="tx"}',
                                "{{switch}}")), unit=FRAMES,
                       description="Sent pauses: the switch paused its upstream senders."), 12, 8)
    lay.add(timeseries("ECN-marked packets by switch",
                       targets(("switch:roce_ecn_marked_packets:rate2m", "{{switch}}")),
                       unit="pps"), 12, 8)
    lay.add(timeseries("ECN mark ratio by switch",
                       targets(("switch:roce_ecn_mark:ratio_rate2m", "{{switch}}")),
                       unit="percentunit"), 12, 8)
    lay.add(timeseries("Throughput by switch (polled queues)",
                       targets(("switch:roce_tx_bytes:rate2m", "{{switch}}")), unit="Bps"), 12, 8)
    lay.add(timeseries("Drops by switch (polled queues)",
                       targets(("switch:roce_dropped_packets:rate2m > 0", "{{switch}}")),
                       unit="pps"), 12, 8)

    lay.row("Top congested ports")
    port_cols = {"Value": "value"}
    lay.add(table("Top ports by watermark / buffer limit",
                  targets(("topk($topn, queue:roce_queue_watermark:limit_ratio)", ""),
                          instant=True, table=True),
                  description="Queue watermark over the largest share the dynamic threshold "
                  "allows one queue (buffer x alpha / (1 + alpha)).",
                  value_unit="percentunit", rename=port_cols, sort_by="value",
                  overrides=[link_to_switch()]), 12, 9)
    lay.add(table("Top ports by ECN mark ratio",
                  targets(("topk($topn, queue:roce_ecn_mark:ratio_rate2m)", ""),
                          instant=True, table=True),
                  value_unit="percentunit", rename=port_cols, sort_by="value",
                  overrides=[link_to_switch()]), 12, 9)
    lay.add(table("Top ports by PFC pause rate (rx + tx)",
                  targets(("topk($topn, sum without (direction) "
                           "(queue:roce_pfc_pause_frames:rate2m))", ""),
                          instant=True, table=True),
                  value_unit=FRAMES, rename=port_cols, sort_by="value",
                  overrides=[link_to_switch()]), 12, 9)
    lay.add(table("Top ports by utilisation",
                  targets(("topk($topn, interface:roce_utilisation:ratio_rate2m)", ""),
                          instant=True, table=True),
                  description="Transmit rate of the polled (lossless) priorities over line rate.",
                  value_unit="percentunit", rename=port_cols, sort_by="value",
                  overrides=[link_to_switch()]), 12, 9)

    lay.row("Collectors and polling")
    lay.add(timeseries("Poll cycles per second",
                       targets(("sum by (instance) (rate(waterline_poll_cycles_total"
                                "[$__rate_interval]))", "{{instance}}")), unit="ops"), 8, 8)
    lay.add(timeseries("Poll errors by reason",
                       targets(("sum by (reason) (rate(waterline_poll_errors_total"
                                "[$__rate_interval]))", "{{reason}}")), unit="ops",
                       stack=True), 8, 8)
    lay.add(timeseries("Poll duration per switch",
                       targets(("histogram_quantile(0.5, sum by (le, driver) (rate("
                                "waterline_poll_duration_seconds_bucket[$__rate_interval])))",
                                "p50 {{driver}}"),
                               ("histogram_quantile(0.99, sum by (le, driver) (rate("
                                "waterline_poll_duration_seconds_bucket[$__rate_interval])))",
                                "p99 {{driver}}")), unit="s"), 8, 8)
    lay.add(timeseries("Switches per collector",
                       targets(('waterline_collector_switches{job="waterline-collector"}',
                                "{{instance}}")), stack=True), 8, 8)
    lay.add(timeseries("Time since the last poll cycle",
                       targets(("time() - waterline_poll_last_cycle_timestamp_seconds"
                                " and waterline_poll_last_cycle_timestamp_seconds > 0",
                                "{{instance}}")), unit="s",
                       description="WaterlineCollectorStalled fires above 60 s."), 8, 8)
    lay.add(timeseries("Samples ingested per second",
                       targets(("sum by (instance) (rate(waterline_samples_ingested_total"
                                "[$__rate_interval]))", "{{instance}}")), unit="ops"), 8, 8)
    lay.add(timeseries("Ingest outage buffer",
                       targets(("waterline_ingest_buffer_depth", "waiting {{instance}}")),
                       description="Samples waiting for the database; 0 unless writes fail."),
            8, 8)
    lay.add(timeseries("Ingest errors and discarded samples",
                       targets(("sum by (instance) (rate(waterline_ingest_errors_total"
                                "[$__rate_interval]))", "write errors {{instance}}"),
                               ("sum by (instance) (rate(waterline_ingest_buffer_overflow_total"
                                "[$__rate_interval]))", "discarded {{instance}}")),
                       unit="ops"), 8, 8)
    return dashboard(
        "waterline-fabric", "Waterline / Fabric overview",
        "PFC and ECN by switch, the most congested ports, switch and collector health.",
        lay, variables=[custom_variable("topn", "Top N", ["5", "10", "20", "50"], "10")])


# --- switch drill-down -------------------------------------------------------------------------

SEL = 'switch="$switch", interface=~"$interface", priority=~"$priority"'
SW_PRIO = 'switch="$switch", priority=~"$priority"'
QUEUE = "{{interface}} p{{priority}}"


def _rate(metric: str, extra: str = "") -> str:
    return (f"max without (instance, job) (rate({metric}{{{SEL}{extra}}}"
            f"[$__rate_interval]))")


def switch_drilldown() -> Json:
    lay = Layout()
    lay.row("$switch")
    lay.add(stat("State", targets(('switch:roce_switch_up:max{switch="$switch"}',
                                   "{{role}} pod {{pod}}")),
                 mappings=value_text({"1": ("UP", "green"), "0": ("DOWN", "red")}),
                 thresholds=[(None, "red"), (1, "green")]), 4, 4)
    lay.add(stat("Packet buffer",
                 targets(('max by (switch) (roce_switch_buffer_bytes{switch="$switch"})',
                          "buffer")), unit="bytes"), 4, 4)
    lay.add(stat("Throughput (polled queues)",
                 targets(('switch:roce_tx_bytes:rate2m{switch="$switch"}', "tx")),
                 unit="Bps", graph=True), 4, 4)
    lay.add(stat("ECN mark ratio",
                 targets(('switch:roce_ecn_mark:ratio_rate2m{switch="$switch"}', "ratio")),
                 unit="percentunit", graph=True), 4, 4)
    lay.add(stat("PFC pauses received / sent",
                 targets(('switch:roce_pfc_pause_frames:rate2m{switch="$switch"}',
                          "{{direction}}")), unit=FRAMES, graph=True), 4, 4)
    lay.add(stat("Drops", targets(('switch:roce_dropped_packets:rate2m{switch="$switch"}',
                                   "drops")),
                 unit="pps", thresholds=[(None, "green"), (0.001, "red")]), 4, 4)

    lay.row("PFC")
    lay.add(timeseries("PFC pause frames received (queue was paused)",
                       targets((_rate("roce_pfc_pause_frames_total", ', direction="rx"'), QUEUE)),
                       unit=FRAMES), 12, 8)
    lay.add(timeseries("PFC pause frames sent (paused the upstream)",
                       targets((_rate("roce_pfc_pause_frames_total", ', direction="tx"'), QUEUE)),
                       unit=FRAMES), 12, 8)

    lay.row("ECN and throughput")
    lay.add(timeseries("ECN mark ratio",
                       targets((f'{_rate("roce_ecn_marked_packets_total")} / '
                                f'({_rate("roce_tx_packets_total")} > 0)', QUEUE)),
                       unit="percentunit"), 12, 8)
    lay.add(timeseries("ECN-marked packets",
                       targets((_rate("roce_ecn_marked_packets_total"), QUEUE)), unit="pps"),
            12, 8)
    lay.add(timeseries("Utilisation (share of line rate)",
                       targets((f'{_rate("roce_tx_bytes_total")} / on (switch, interface) '
                                "group_left max without (instance, job) "
                                '(roce_interface_speed_bytes_per_second{switch="$switch"})',
                                QUEUE)), unit="percentunit"), 12, 8)
    lay.add(timeseries("Drops", targets((_rate("roce_dropped_packets_total"), QUEUE)),
                       unit="pps"), 12, 8)

    lay.row("Buffer")
    lay.add(timeseries(
        "Queue occupancy vs ECN Kmin / Kmax",
        targets((f"max without (instance, job) (roce_queue_occupancy_bytes{{{SEL}}})", QUEUE),
                (f'max without (instance, job) (roce_ecn_kmin_bytes{{{SW_PRIO}, kind="observed"}})',
                 "Kmin p{{priority}}"),
                (f'max without (instance, job) (roce_ecn_kmax_bytes{{{SW_PRIO}, kind="observed"}})',
                 "Kmax p{{priority}}")),
        unit="bytes", overrides=[dashed("/^K(min|max) /")],
        description="Occupancy at each poll. Below Kmin nothing is marked, above Kmax "
        "everything."), 12, 9)
    lay.add(timeseries(
        "Queue watermark vs buffer limit",
        targets((f"max without (instance, job) (roce_queue_watermark_bytes{{{SEL}}})", QUEUE),
                (f"switch_priority:roce_queue_share_limit_bytes:dt{{{SW_PRIO}}}",
                 "limit p{{priority}}")),
        unit="bytes", overrides=[dashed("/^limit /")],
        description="Peak since the last clear, against the largest share one queue can take "
        "(buffer x alpha / (1 + alpha)). WaterlineQueueWatermarkNearLimit fires at 80%."), 12, 9)

    lay.row("Waterlines: observed (on the switch) vs desired (Waterline)")
    queries = [target(f"max without (instance, job) ({metric}{{{SW_PRIO}}})",
                      ref=chr(ord("A") + i), instant=True, table=True)
               for i, (metric, _, _) in enumerate(WATERLINE_GAUGES)]
    rename = {f"Value #{chr(ord('A') + i)}": title
              for i, (_, title, _) in enumerate(WATERLINE_GAUGES)}
    lay.add(table("Waterlines now", queries, merge=True, rename=rename,
                  description="One row per priority and kind; observed = read back from the "
                  "switch, desired = what Waterline wants there.",
                  overrides=[unit_override(title, unit)
                             for _, title, unit in WATERLINE_GAUGES]), 24, 6)
    for metric, title, unit in WATERLINE_GAUGES:
        lay.add(timeseries(title, targets((f"max without (instance, job) ({metric}{{{SW_PRIO}}})",
                                           "{{kind}} p{{priority}}")),
                           unit=unit, overrides=[dashed("/^desired /")]), 8, 7)
    return dashboard(
        "waterline-switch", "Waterline / Switch drill-down",
        "Per interface and priority: PFC, ECN, buffer occupancy and watermark, and the "
        "configured waterlines, observed vs desired.",
        lay, variables=[
            query_variable("switch", "Switch", "label_values(roce_switch_up, switch)"),
            query_variable("interface", "Interface",
                           'label_values(roce_tx_bytes_total{switch="$switch"}, interface)',
                           multi=True),
            query_variable("priority", "Priority",
                           'label_values(roce_tx_bytes_total{switch="$switch"}, priority)',
                           multi=True),
        ])


# --- tuner -------------------------------------------------------------------------------------

PORT = "{{switch}} {{interface}} p{{priority}}"


def _profile_code() -> str:
    """Each port's current profile as a number, for the state timeline (value mappings)."""
    parts = [f'(max without (instance, job, profile) (waterline_port_profile{{switch="$switch", '
             f'profile="{name}"}} == 1) * {code})'
             for code, name in enumerate(PROFILES)]
    return "\nor ".join(parts)


def tuner() -> Json:
    lay = Layout()
    lay.row("Daemon")
    lay.add(stat("Mode", targets(("max by (mode) (waterline_tuner_mode) == 1", "{{mode}}")),
                 text_mode="name",
                 description="off, observe (classify only), propose, or auto (apply)."), 4, 4)
    for title, expr, unit in (
        ("Cycles", "sum(increase(waterline_tuner_cycles_total[$__range]))", "short"),
        ("Proposals", "sum(increase(waterline_tuner_proposals_total[$__range]))", "short"),
        ("Changes applied", "sum(increase(waterline_tuner_changes_applied_total[$__range]))",
         "short"),
        ("Changes rolled back",
         "sum(increase(waterline_tuner_changes_rolled_back_total[$__range]))", "short"),
    ):
        thresholds: list[tuple[float | None, str]] | None = (
            [(None, "green"), (1, "orange")] if "rolled" in title else None)
        lay.add(stat(f"{title} (time range)", targets((expr, title)), unit=unit,
                     thresholds=thresholds), 4, 4)
    lay.add(stat("Ports with a low-confidence profile",
                 targets(("count(max without (instance, job) "
                          "(waterline_port_profile_probability) < 0.6) or vector(0)", "ports")),
                 description="Classifier probability below 0.6: the tuner is conservative there."),
            4, 4)
    lay.add(timeseries("Cycles by outcome",
                       targets(("sum by (outcome) (increase(waterline_tuner_cycles_total"
                                "[$__rate_interval]))", "{{outcome}}")), bars=True, stack=True),
            8, 8)
    lay.add(timeseries("Proposals by profile",
                       targets(("sum by (profile) (increase(waterline_tuner_proposals_total"
                                "[$__rate_interval]))", "{{profile}}")), bars=True, stack=True),
            8, 8)
    lay.add(timeseries(
        "Changes applied and rolled back",
        targets(("sum(increase(waterline_tuner_changes_applied_total[$__rate_interval]))",
                 "tuner applied"),
                ("sum(increase(waterline_tuner_changes_rolled_back_total[$__rate_interval]))",
                 "tuner rolled back"),
                ("sum(increase(waterline_tuner_held_for_other_ports_total[$__rate_interval]))",
                 "tuner held (would slow other ports)"),
                ("sum by (outcome) (increase(waterline_changes_total[$__rate_interval]))",
                 "change sets {{outcome}}"),
                ("sum(increase(waterline_change_rollbacks_total[$__rate_interval]))",
                 "switches rolled back")),
        bars=True,
        overrides=[{"matcher": {"id": "byRegexp", "options": "/rolled back/"},
                    "properties": [{"id": "color",
                                    "value": {"mode": "fixed", "fixedColor": "red"}}]}]),
        8, 8)

    lay.row("Virtual fabric ground truth (mock switches only)")
    lay.add(timeseries(
        "Objective per profile (simulator)",
        targets(("max without (instance, job) (waterline_virtual_fabric_profile_kpi"
                 '{kpi="objective"})', "{{profile}}"),
                ('max without (instance, job) (waterline_virtual_fabric_kpi{kpi="objective"})',
                 "all busy ports")),
        min_zero=False, overrides=[dashed("/^all /")],
        description="The simulator's objective (lower is better) of the ports that truly carry "
        "each profile: whether the tuner helps one profile at another's expense. Only with the "
        "virtual fabric behind mock switches."), 12, 8)
    lay.add(timeseries(
        "Utilisation and pause time per profile (simulator)",
        targets(("max without (instance, job) (waterline_virtual_fabric_profile_kpi"
                 '{kpi="utilisation"})', "utilisation {{profile}}"),
                ("max without (instance, job) (waterline_virtual_fabric_profile_kpi"
                 '{kpi="pause_time_fraction"})', "paused {{profile}}")),
        unit="percentunit", overrides=[dashed("/^paused /")]), 12, 8)

    lay.row("Traffic profiles")
    lay.add(timeseries("Ports per profile (fabric)",
                       targets(("count by (profile) (max without (instance, job) "
                                "(waterline_port_profile == 1))", "{{profile}}")),
                       stack=True), 12, 8)
    lay.add(timeseries("Mean classifier probability by profile (fabric)",
                       targets(("avg by (profile) (max without (instance, job) "
                                "(waterline_port_profile_probability) * on (switch, interface, "
                                "priority) group_left (profile) max without (instance, job) "
                                "(waterline_port_profile == 1))", "{{profile}}")),
                       unit="percentunit"), 12, 8)
    colours = dict(zip(PROFILES, PROFILE_COLOURS, strict=True))
    lay.add(state_timeline(
        "Profile per port on $switch",
        targets((_profile_code(), PORT)),
        mappings=value_text({str(code): (name, colours[name])
                             for code, name in enumerate(PROFILES)}),
        description="The classifier's current profile of each port over time."), 24, 10)
    lay.add(table("Current profile per port on $switch",
                  targets(('max without (instance, job) (waterline_port_profile_probability'
                           '{switch="$switch"}) * on (switch, interface, priority) group_left '
                           '(profile) max without (instance, job) (waterline_port_profile'
                           '{switch="$switch"} == 1)', ""), instant=True, table=True),
                  value_unit="percentunit", rename={"Value": "probability"}), 24, 8)

    lay.row("Waterlines applied on $switch")
    for metric, title, unit in WATERLINE_GAUGES:
        lay.add(timeseries(title, targets(
            (f'max without (instance, job) ({metric}{{switch="$switch", priority=~"$priority"}})',
             "{{kind}} p{{priority}}")), unit=unit, overrides=[dashed("/^desired /")]), 8, 7)

    lay.row("KPIs before and after the last change on $switch")
    kpi = 'waterline_tuner_kpi{switch="$switch", priority=~"$priority", phase="%s"}'
    before = f"max without (instance, job, phase) ({kpi % 'before'})"
    after = f"max without (instance, job, phase) ({kpi % 'after'})"
    lay.add(table("KPIs before / after",
                  [target(before, ref="A", instant=True, table=True),
                   target(after, ref="B", instant=True, table=True),
                   target(f"{after} / {before} - 1", ref="C", instant=True, table=True)],
                  merge=True,
                  rename={"Value #A": "before", "Value #B": "after", "Value #C": "change"},
                  overrides=[unit_override("change", "percentunit")],
                  description="Per KPI (drops, pause time, utilisation, queue depth, FCT "
                  "slowdown...): the window before the tuner's last change and the "
                  "verification window after it."), 12, 9)
    lay.add(timeseries("KPIs over time",
                       targets(('max without (instance, job) (waterline_tuner_kpi'
                                '{switch="$switch", priority=~"$priority"})',
                                "{{kpi}} {{phase}} p{{priority}}")),
                       overrides=[dashed("/ before /")], min_zero=False), 12, 9)
    lay.add(timeseries("ECN mark ratio and PFC pauses on $switch",
                       targets(('switch:roce_ecn_mark:ratio_rate2m{switch="$switch"}',
                                "ECN mark ratio"),
                               ('switch:roce_pfc_pause_frames:rate2m{switch="$switch"}',
                                "PFC {{direction}} frames/s")),
                       overrides=[{"matcher": {"id": "byRegexp", "options": "/^PFC/"},
                                   "properties": [{"id": "unit", "value": FRAMES},
                                                  {"id": "custom.axisPlacement",
                                                   "value": "right"}]},
                                  unit_override("ECN mark ratio", "percentunit")],
                       description="The fabric's response to the tuner's changes (annotations "
                       "mark applied changes and rollbacks)."), 24, 8)

    annotations = [
        {"datasource": DATASOURCE, "enable": True, "hide": False, "iconColor": "green",
         "name": "Tuner change applied", "step": "60s",
         "expr": "sum(increase(waterline_tuner_changes_applied_total[1m])) > 0",
         "titleFormat": "Tuner change applied", "textFormat": "{{value}} change(s)"},
        {"datasource": DATASOURCE, "enable": True, "hide": False, "iconColor": "red",
         "name": "Tuner change rolled back", "step": "60s",
         "expr": "sum(increase(waterline_tuner_changes_rolled_back_total[1m])) > 0",
         "titleFormat": "Tuner change rolled back", "textFormat": "{{value}} change(s)"},
    ]
    return dashboard(
        "waterline-tuner", "Waterline / Tuner",
        "The AI-ECN tuner and its daemon: profiles over time, proposals, applied and "
        "rolled-back changes, waterlines applied and KPIs before/after.",
        lay,
        variables=[
            query_variable("switch", "Switch", "label_values(roce_switch_up, switch)"),
            query_variable("priority", "Priority",
                           'label_values(roce_ecn_kmin_bytes{switch="$switch"}, priority)',
                           multi=True),
        ],
        annotations=annotations)


DASHBOARDS = {
    "fabric-overview.json": fabric_overview,
    "switch-drilldown.json": switch_drilldown,
    "tuner.json": tuner,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, build in DASHBOARDS.items():
        path = DASHBOARD_DIR / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run deploy/grafana/generate_dashboards.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
