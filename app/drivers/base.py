"""The driver contract (like NAPALM's NetworkDriver, narrowed to RoCE) and its registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from app.drivers.errors import DriverError
from app.drivers.models import Facts, QosConfig, QueueSample


@dataclass(frozen=True)
class SwitchTarget:
    """What a driver needs to reach one switch. ``password`` is resolved from the switch's
    credentials reference just before connecting and is never logged or returned."""

    name: str
    host: str
    port: int
    username: str = "admin"
    password: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)
    interfaces: tuple[str, ...] = ()
    timeout_s: float = 10.0


@runtime_checkable
class Driver(Protocol):
    """One switch session. Getters read; config goes candidate -> compare -> commit.

    ``load_candidate`` only stores the intent (nothing is sent); ``compare`` renders the CLI
    lines that ``commit`` would send; ``commit`` sends them after saving a rollback point (and
    raises CommitFailed naming the line the switch rejected); ``rollback`` restores the
    configuration saved by the last commit of this session. The change workflow restores
    explicitly (``load_candidate(before, restore=True)`` + ``commit``) so that recovery works
    from a fresh session too.
    """

    name: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def get_facts(self) -> Facts: ...

    def get_telemetry(self) -> list[QueueSample]: ...

    def get_qos_config(self) -> QosConfig: ...

    def expected_readback(self, config: QosConfig) -> QosConfig:
        """``config`` as this NOS will report it after a commit (device units, rounding),
        for verifying a read-back. Pure: touches nothing."""
        ...

    def load_candidate(self, config: QosConfig, *, restore: bool = False) -> None:
        """Store the intent (nothing is sent). ``restore`` marks a config read back from the
        switch earlier (a rollback): policy checks are relaxed, text and range checks are not."""
        ...

    def compare(self) -> str: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...

    def rollback(self) -> None: ...


DriverFactory = Callable[[SwitchTarget], Driver]

_REGISTRY: dict[str, DriverFactory] = {}


def register(name: str) -> Callable[[DriverFactory], DriverFactory]:
    def decorator(factory: DriverFactory) -> DriverFactory:
        _REGISTRY[name] = factory
        return factory

    return decorator


def driver_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_driver(name: str, target: SwitchTarget) -> Driver:
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise DriverError(f"unknown driver {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(target)


KNOWN_DRIVERS: tuple[str, ...] = ("mock", "hp_comware", "sonic")
"""Driver names the inventory accepts (the built-in drivers)."""


def _load_builtin() -> None:
    # Imported lazily so that importing the contract does not import netmiko.
    import importlib

    for module in ("app.drivers.mock", "app.drivers.comware.driver", "app.drivers.sonic.driver"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
