"""The collector as a running service: poller + (optional) leases + rollups + /metrics.

`waterline collector` runs it as its own process; `waterline serve` embeds it (without leases)
so that `make run` polls the virtual fabric out of the box.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from app.config import Settings
from collectors.ingest import Ingestor, apply_retention, run_rollups
from collectors.leases import LeaseManager
from collectors.poller import Poller

log = logging.getLogger("waterline.collector")


@dataclass(frozen=True)
class CollectorOptions:
    concurrency: int = 32
    interval_s: float = 10.0
    timeout_s: float = 10.0
    use_leases: bool = False
    lease_s: float = 30.0
    worker_name: str = ""
    rollup_every_s: float = 60.0
    raw_retention_days: float = 7.0
    rollup_1m_retention_days: float = 90.0
    # Which switches: "all", "mock" (the in-process virtual fabric only) or "real" (all but
    # mock: a separate collector process cannot see another process's virtual fabric).
    drivers: str = "all"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CollectorOptions:
        values: dict[str, Any] = {
            "concurrency": settings.poll_concurrency,
            "interval_s": settings.poll_interval_s,
            "timeout_s": settings.poll_timeout_s,
            "raw_retention_days": settings.raw_retention_days,
            "rollup_1m_retention_days": settings.rollup_1m_retention_days,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _driver_filter(drivers: str) -> Callable[[str], bool]:
    if drivers == "mock":
        return lambda name: name == "mock"
    if drivers == "real":
        return lambda name: name != "mock"
    return lambda name: True


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class CollectorService:
    def __init__(self, engine: Engine, options: CollectorOptions) -> None:
        self.engine = engine
        self.options = options
        self.leases = (
            LeaseManager(engine, options.worker_name or default_worker_name(),
                         lease_s=options.lease_s, real_only=options.drivers == "real")
            if options.use_leases else None
        )
        self.poller = Poller(
            engine, ingestor=Ingestor(engine), concurrency=options.concurrency,
            default_interval_s=options.interval_s, timeout_s=options.timeout_s,
            owned=(lambda: self.leases.current() if self.leases else None),
            driver_filter=_driver_filter(options.drivers),
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def owned_switch_ids(self) -> set[int] | None:
        return self.leases.current() if self.leases else None

    def start(self) -> None:
        if self.leases is not None:
            self._claim()
        self._threads = [
            threading.Thread(target=self._poll_loop, name="poller", daemon=True),
            threading.Thread(target=self._lease_loop, name="leases", daemon=True),
            # Rollups and retention can take a while: never on the lease renewal's thread.
            threading.Thread(target=self._rollup_loop, name="rollups", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _claim(self) -> None:
        assert self.leases is not None
        try:
            before = set(self.leases.owned)
            owned = self.leases.claim()
            if owned != before:
                # the poller picks the new set up at its next reload (every renewal period)
                log.info("collector %s now polls %d switches", self.leases.worker, len(owned))
        except Exception as exc:  # until the held leases expire we keep polling them
            log.warning("lease renewal failed: %s", exc)

    def _poll_loop(self) -> None:
        reload_s = self.leases.renew_interval_s if self.leases else 30.0
        self.poller.run(self._stop, reload_s=reload_s)

    def _lease_loop(self) -> None:
        if self.leases is None:
            return
        while not self._stop.wait(self.leases.renew_interval_s):
            self._claim()

    def _rollup_loop(self) -> None:
        while not self._stop.wait(self.options.rollup_every_s):
            self._rollup()

    def _rollup(self) -> None:
        try:
            if self.engine.dialect.name == "postgresql":
                # One worker at a time does the rollups; the others skip this round.
                with self.engine.begin() as conn:
                    if not conn.execute(text("SELECT pg_try_advisory_xact_lock(4242)")).scalar():
                        return
                    self._rollup_now()
            else:
                self._rollup_now()
        except Exception as exc:
            log.warning("rollup failed: %s", exc)

    def _rollup_now(self) -> None:
        run_rollups(self.engine)
        apply_retention(self.engine, raw_days=self.options.raw_retention_days,
                        rollup_1m_days=self.options.rollup_1m_retention_days)

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self.poller.close()
        if self.leases is not None and release:
            try:
                self.leases.release_all()
            except Exception as exc:
                log.warning("could not release leases: %s", exc)
