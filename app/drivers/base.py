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
    lines that ``commit`` would send; ``commit`` sends them after saving a rollback point;
    ``rollback`` restores the configuration saved by the last commit.
    """

    name: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def get_facts(self) -> Facts: ...

    def get_telemetry(self) -> list[QueueSample]: ...

    def get_qos_config(self) -> QosConfig: ...

    def load_candidate(self, config: QosConfig) -> None: ...

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
