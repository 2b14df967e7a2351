"""Prometheus metrics.

Service metrics are module-level instruments (prometheus/client_python style) named
`waterline_*`. Fabric telemetry is exported by a custom Collector (`FabricCollector`) that reads
the latest stored snapshot from the database — a scrape never talks to a switch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("waterline.metrics")

# --- service metrics (collectors, ingest, changes, tuner) --------------------------------------

POLL_DURATION = Histogram(
    "waterline_poll_duration_seconds",
    "Time to poll one switch (connect if needed, read telemetry).",
    ["driver"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
POLL_ERRORS = Counter(
    "waterline_poll_errors_total", "Failed switch polls by reason.", ["reason"]
)
POLL_CYCLES = Counter("waterline_poll_cycles_total", "Completed poll cycles.")
LAST_CYCLE = Gauge(
    "waterline_poll_last_cycle_timestamp_seconds", "Unix time the last poll cycle finished."
)
SWITCHES_OWNED = Gauge(
    "waterline_collector_switches", "Switches this collector currently polls."
)
SAMPLES_INGESTED = Counter(
    "waterline_samples_ingested_total", "Telemetry samples written to the database."
)
INGEST_BUFFER_DEPTH = Gauge(
    "waterline_ingest_buffer_depth", "Samples waiting for the database (outage buffer)."
)
INGEST_BUFFER_OVERFLOW = Counter(
    "waterline_ingest_buffer_overflow_total",
    "Samples discarded because the outage buffer was full.",
)
INGEST_ERRORS = Counter("waterline_ingest_errors_total", "Failed database writes of samples.")
INGEST_REJECTED = Counter(
    "waterline_ingest_rejected_total",
    "Samples the database refused as data (e.g. of a deleted interface), dropped.",
)
SNAPSHOT_ERRORS = Counter(
    "waterline_snapshot_errors_total",
    "Failed reads of the telemetry snapshot for /metrics (the last good one is served).",
)
CHANGES = Counter(
    "waterline_changes_total", "Change sets that finished, by outcome.", ["outcome"]
)
CHANGE_ROLLBACKS = Counter(
    "waterline_change_rollbacks_total", "Switches rolled back by the change workflow."
)


# --- fabric telemetry ------------------------------------------------------------------------

QUEUE_LABELS = ("switch", "interface", "priority")


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    switch: str
    interface: str
    priority: int
    tx_bytes: int | None
    tx_packets: int | None
    ecn_marked_packets: int | None
    rx_pause_frames: int | None
    tx_pause_frames: int | None
    drop_packets: int | None
    occupancy_bytes: int | None
    watermark_bytes: int | None


@dataclass(frozen=True, slots=True)
class SwitchSnapshot:
    name: str
    role: str
    pod: int | None
    up: bool
    buffer_bytes: int


@dataclass(frozen=True, slots=True)
class WaterlineSnapshot:
    switch: str
    priority: int
    kind: str
    values: dict[str, float | None]


@dataclass(frozen=True)
class FabricSnapshot:
    queues: list[QueueSnapshot]
    switches: list[SwitchSnapshot]
    waterlines: list[WaterlineSnapshot]
    interface_speeds: list[tuple[str, str, int]]  # switch, interface, speed_gbps


WATERLINE_GAUGES: dict[str, tuple[str, str]] = {
    "kmin_bytes": ("roce_ecn_kmin_bytes", "ECN marking starts at this egress queue depth."),
    "kmax_bytes": ("roce_ecn_kmax_bytes", "ECN marks every packet above this queue depth."),
    "pmax": ("roce_ecn_pmax_ratio", "ECN marking probability at Kmax (0..1)."),
    "xoff_bytes": ("roce_pfc_xoff_bytes", "PFC xoff headroom of the lossless priority group."),
    "xon_bytes": ("roce_pfc_xon_bytes", "PFC xon (resume) hysteresis of the priority group."),
    "headroom_bytes": ("roce_pfc_headroom_bytes", "Reserved headroom of the priority group."),
    "alpha": ("roce_buffer_alpha_ratio", "Shared-buffer dynamic threshold alpha."),
}

FABRIC_METRIC_NAMES: tuple[str, ...] = (
    "roce_pfc_pause_frames_total",
    "roce_ecn_marked_packets_total",
    "roce_tx_bytes_total",
    "roce_tx_packets_total",
    "roce_dropped_packets_total",
    "roce_queue_occupancy_bytes",
    "roce_queue_watermark_bytes",
    "roce_switch_up",
    "roce_switch_buffer_bytes",
    "roce_interface_speed_bytes_per_second",
    *(name for name, _ in WATERLINE_GAUGES.values()),
)


class FabricCollector(Collector):
    """Exports the latest stored telemetry snapshot. ``load`` is called at most once per
    ``cache_s`` seconds, so frequent scrapes do not hammer the database."""

    def __init__(self, load: Callable[[], FabricSnapshot], cache_s: float = 5.0) -> None:
        self._load = load
        self._cache_s = cache_s
        self._cached: FabricSnapshot | None = None
        self._loaded_at = 0.0

    def snapshot(self) -> FabricSnapshot:
        now = time.monotonic()
        if self._cached is None or now - self._loaded_at > self._cache_s:
            try:
                self._cached = self._load()
            except Exception:  # the database is down: /metrics must still serve the rest
                SNAPSHOT_ERRORS.inc()
                log.warning("telemetry snapshot unavailable", exc_info=True)
                if self._cached is None:
                    return FabricSnapshot([], [], [], [])
            self._loaded_at = now
        return self._cached

    def describe(self) -> Iterable[Metric]:
        # Declared without loading: registering must not touch the database.
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        pause = CounterMetricFamily(
            "roce_pfc_pause_frames",
            "PFC pause frames per priority; direction rx = received (we were paused), "
            "tx = sent (we paused the upstream).",
            labels=[*QUEUE_LABELS, "direction"],
        )
        counters: dict[str, CounterMetricFamily] = {
            "ecn_marked_packets": CounterMetricFamily(
                "roce_ecn_marked_packets", "Packets ECN-marked on the egress queue.",
                labels=list(QUEUE_LABELS)),
            "tx_bytes": CounterMetricFamily(
                "roce_tx_bytes", "Bytes transmitted by the egress queue.", labels=list(QUEUE_LABELS)),
            "tx_packets": CounterMetricFamily(
                "roce_tx_packets", "Packets transmitted by the egress queue.",
                labels=list(QUEUE_LABELS)),
            "drop_packets": CounterMetricFamily(
                "roce_dropped_packets", "Packets dropped on the queue.", labels=list(QUEUE_LABELS)),
        }
        occupancy = GaugeMetricFamily(
            "roce_queue_occupancy_bytes", "Egress queue occupancy at the last poll.",
            labels=list(QUEUE_LABELS))
        watermark = GaugeMetricFamily(
            "roce_queue_watermark_bytes", "Egress queue watermark (peak since last clear).",
            labels=list(QUEUE_LABELS))
        for q in snap.queues:
            labels = [q.switch, q.interface, str(q.priority)]
            if q.rx_pause_frames is not None:
                pause.add_metric([*labels, "rx"], q.rx_pause_frames)
            if q.tx_pause_frames is not None:
                pause.add_metric([*labels, "tx"], q.tx_pause_frames)
            for field, family in counters.items():
                value = getattr(q, field)
                if value is not None:
                    family.add_metric(labels, value)
            if q.occupancy_bytes is not None:
                occupancy.add_metric(labels, q.occupancy_bytes)
            if q.watermark_bytes is not None:
                watermark.add_metric(labels, q.watermark_bytes)
        yield pause
        yield from counters.values()
        yield occupancy
        yield watermark

        up = GaugeMetricFamily("roce_switch_up", "1 if the last poll of the switch succeeded.",
                               labels=["switch", "role", "pod"])
        buffer = GaugeMetricFamily("roce_switch_buffer_bytes", "Packet buffer of the switch ASIC.",
                                   labels=["switch"])
        for s in snap.switches:
            up.add_metric([s.name, s.role, "" if s.pod is None else str(s.pod)], 1.0 if s.up else 0.0)
            buffer.add_metric([s.name], s.buffer_bytes)
        yield up
        yield buffer

        speed = GaugeMetricFamily(
            "roce_interface_speed_bytes_per_second", "Interface line rate.",
            labels=["switch", "interface"])
        for switch, interface, speed_gbps in snap.interface_speeds:
            speed.add_metric([switch, interface], speed_gbps * 1e9 / 8)
        yield speed

        gauges = {
            field: GaugeMetricFamily(name, doc, labels=["switch", "priority", "kind"])
            for field, (name, doc) in WATERLINE_GAUGES.items()
        }
        for w in snap.waterlines:
            for field, gauge in gauges.items():
                value = w.values.get(field)
                if value is not None:
                    gauge.add_metric([w.switch, str(w.priority), w.kind], float(value))
        yield from gauges.values()


def new_registry(*collectors: Any) -> CollectorRegistry:
    """A fresh registry (tests) holding the given collectors."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


# --- tuner and daemon --------------------------------------------------------------------------

TUNER_CYCLES = Counter("waterline_tuner_cycles_total", "Daemon cycles, by outcome.", ["outcome"])
TUNER_PROPOSALS = Counter(
    "waterline_tuner_proposals_total", "Proposals made by the tuner, by profile.", ["profile"]
)
TUNER_APPLIED = Counter(
    "waterline_tuner_changes_applied_total", "Tuner proposals applied through the change workflow."
)
TUNER_ROLLED_BACK = Counter(
    "waterline_tuner_changes_rolled_back_total",
    "Tuner changes rolled back after the verification window (regression or failure).",
)
TUNER_HELD_FOR_OTHERS = Counter(
    "waterline_tuner_held_for_other_ports_total",
    "Tuner moves held because they would slow a switch's ports of other traffic.",
)
TUNER_MODE = Gauge(
    "waterline_tuner_mode", "1 for the daemon's current mode.", ["mode"]
)
class PortProfileCollector(Collector):
    """``waterline_port_profile`` (1 for the traffic profile the classifier sees on a port)
    and ``waterline_port_profile_probability``, from the daemon's last verdicts
    (``export_port_profiles``), built when scraped: a 1,000-switch fabric has 128,000 ports,
    and a labelled child gauge per port cost ~4 s to create in the daemon's first cycle
    (prometheus_client checks the label names of each), more than the scrape's families."""

    def __init__(self) -> None:
        # (switch, interface, priority) -> (profile, probability); replaced, never mutated
        self._ports: dict[tuple[str, str, str], tuple[str, float]] = {}

    def set(self, ports: Iterable[tuple[str, str, str, str, float]]) -> None:
        """Exactly these ports from now on: series of ports no longer seen are gone."""
        self._ports = {(switch, interface, priority): (profile, float(probability))
                       for switch, interface, priority, profile, probability in ports}

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        ports = self._ports
        profile = GaugeMetricFamily(
            "waterline_port_profile",
            "1 for the traffic profile the classifier sees on a port (probability in the "
            "sibling metric).", labels=["switch", "interface", "priority", "profile"])
        probability = GaugeMetricFamily(
            "waterline_port_profile_probability",
            "Classifier probability of the port's current profile.",
            labels=["switch", "interface", "priority"])
        for (switch, interface, priority), (name, p) in ports.items():
            profile.add_metric([switch, interface, priority, name], 1.0)
            probability.add_metric([switch, interface, priority], p)
        yield profile
        yield probability


PORT_PROFILES = PortProfileCollector()
REGISTRY.register(PORT_PROFILES)


def export_port_profiles(ports: Iterable[tuple[str, str, str, str, float]]) -> None:
    """Set the per-port profile series to exactly ``ports`` = (switch, interface, priority,
    profile, probability): ports no longer seen are removed."""
    PORT_PROFILES.set(ports)


TUNER_KPI = Gauge(
    "waterline_tuner_kpi",
    "A KPI of a switch x priority before and after the tuner's last change.",
    ["switch", "priority", "kpi", "phase"],
)


# the families VirtualFabricCollector exports (only with the virtual fabric's mock switches)
VIRTUAL_FABRIC_METRIC_NAMES: tuple[str, ...] = (
    "waterline_virtual_fabric_kpi", "waterline_virtual_fabric_profile_kpi")
ALL_PROFILES = "all"  # the virtual fabric's KPIs over every busy port, whatever it carries


class VirtualFabricCollector(Collector):
    """Ground truth of the virtual fabric behind mock switches (the simulator's KPIs), so the
    tuner's effect can be watched on a dashboard: ``waterline_virtual_fabric_kpi{kpi}`` over
    every busy port and ``waterline_virtual_fabric_profile_kpi{profile,kpi}`` per profile the
    ports truly carry (the loader's ``ALL_PROFILES`` entry and the others)."""

    def __init__(self, load: Callable[[], dict[str, dict[str, float]] | None]) -> None:
        self._load = load

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        values = self._load()
        if not values:
            return
        family = GaugeMetricFamily(
            "waterline_virtual_fabric_kpi",
            "Mean over the virtual fabric's busy ports of a simulator KPI (objective: lower is "
            "better).", labels=["kpi"])
        for name, value in sorted(values.get(ALL_PROFILES, {}).items()):
            family.add_metric([name], value)
        yield family
        per_profile = GaugeMetricFamily(
            "waterline_virtual_fabric_profile_kpi",
            "Mean of a simulator KPI over the virtual fabric's busy ports that carry one traffic "
            "profile (ground truth, not the classifier's reading).", labels=["profile", "kpi"])
        for profile, kpis in sorted(values.items()):
            if profile == ALL_PROFILES:
                continue
            for name, value in sorted(kpis.items()):
                per_profile.add_metric([profile, name], value)
        yield per_profile
