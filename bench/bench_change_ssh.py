"""One change applied to 100 virtual SSH switches (SONiC, netmiko, real SSH on 127.0.0.1).

The change workflow plans (reads every switch's QoS config and renders the diff), then applies
in waves: one canary switch, then waves of WAVE_SIZE switches in parallel, each with read-back
verification. Prints wall time of plan and apply, the waves, and the achieved concurrency
(most driver sessions open at once, and the mean over the apply).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.changes.schemas import ChangeCreate
from app.changes.service import ChangeService, SwitchContext, default_opener
from app.db import migrate
from app.db.session import make_engine, make_session_factory
from app.drivers.base import Driver
from app.inventory import dump_yaml, import_inventory, parse_inventory
from fabricsim.ssh import start_lab

SWITCHES = int(os.environ.get("WATERLINE_BENCH_SWITCHES", "100"))
WAVE_SIZE = int(os.environ.get("WATERLINE_BENCH_WAVE", "25"))
NOS = os.environ.get("WATERLINE_BENCH_NOS", "sonic")
PASSWORD = "bench-pw"


class CountingOpener:
    """Counts driver sessions open at once (the achieved concurrency)."""

    def __init__(self) -> None:
        self.inner = default_opener(timeout_s=60)
        self.open = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.samples: list[int] = []

    def __call__(self, ctx: SwitchContext) -> Driver:
        driver = self.inner(ctx)
        with self.lock:
            self.open += 1
            self.peak = max(self.peak, self.open)
        close = driver.close

        def counted_close() -> None:
            close()
            with self.lock:
                self.open -= 1

        driver.close = counted_close  # type: ignore[method-assign]
        return driver


def main() -> None:
    os.environ["SWITCH_PASSWORD"] = PASSWORD
    started = time.perf_counter()
    lab = start_lab(nos=NOS, switches=SWITCHES, password=PASSWORD, live=False)
    print(f"== change on {SWITCHES} virtual {NOS} switches over SSH (waves of {WAVE_SIZE}); "
          f"lab up in {time.perf_counter() - started:.1f} s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{tmp}/bench.db")
            migrate.upgrade(engine)
            factory = make_session_factory(engine)
            with factory() as session:
                import_inventory(session, parse_inventory(dump_yaml(lab.inventory)))
                session.commit()
            opener = CountingOpener()
            service = ChangeService(factory, opener, plan_concurrency=WAVE_SIZE)
            body = ChangeCreate.model_validate({
                "targets": {"all": True}, "wave_size": WAVE_SIZE,
                "waterlines": {str(p): {"kmin_bytes": 51_200, "kmax_bytes": 409_600,
                                        "pmax": 0.2} for p in (3, 4)}})
            t0 = time.perf_counter()
            change_id = service.create(body, "bench")
            plan_s = time.perf_counter() - t0
            plan_peak = opener.peak
            opener.peak = 0
            service.approve(change_id, "bench")
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.wait(0.05):
                    opener.samples.append(opener.open)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            service.start_apply(change_id, "bench", wait=True)
            apply_s = time.perf_counter() - t0
            sampling.set()
            result = service.get(change_id)
            states: dict[str, int] = {}
            for r in result.results:
                states[r.state] = states.get(r.state, 0) + 1
            waves = max(r.wave for r in result.results) + 1
            mean = sum(opener.samples) / max(1, len(opener.samples))
            print(f"plan: {plan_s:.1f} s (read + diff of {SWITCHES} switches, "
                  f"{plan_peak} sessions at once)")
            print(f"apply: {apply_s:.1f} s wall, status {result.status}, {waves} waves "
                  f"(canary + {waves - 1} of <= {WAVE_SIZE}), states {states}")
            print(f"achieved concurrency: peak {opener.peak} sessions, mean {mean:.1f} "
                  f"over the apply; {apply_s / SWITCHES:.2f} s per switch of wall time")
            engine.dispose()
    finally:
        lab.stop()


if __name__ == "__main__":
    main()
