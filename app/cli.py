"""The `waterline` command line."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, SettingsError, load_settings

app = typer.Typer(
    name="waterline",
    help="Waterline: an open controller for RoCE lossless fabrics (ECN/PFC waterlines).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
fabric_app = typer.Typer(help="Generate Spine/Leaf/TOR fabrics.", no_args_is_help=True)
inventory_app = typer.Typer(help="Import and export the switch inventory.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens (viewer < operator < admin).", no_args_is_help=True)
app.add_typer(fabric_app, name="fabric")
app.add_typer(inventory_app, name="inventory")
app.add_typer(token_app, name="token")


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def engine_or_exit(settings: Settings) -> Engine:
    """The migrated database of ``settings``, or a message naming what is wrong: no database
    file (never created here: a mistyped path stays a mistake), unreachable, or a schema not
    at this version's head (`waterline migrate`). The URL is shown without its password."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a check, not a migration
    from sqlalchemy.engine import make_url

    from app.db import migrate as migrations
    from app.db.session import is_sqlite, make_engine

    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    if is_sqlite(settings.database_url) and url.database not in (None, "", ":memory:") \
            and not Path(str(url.database)).exists():
        fail(f"no database at {shown}: run `waterline migrate` first (or set "
             "WATERLINE_DATABASE_URL)")
    engine = make_engine(settings.database_url)
    try:
        revision = migrations.current_revision(engine)
    except Exception as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        fail(f"database {shown} unreachable: {type(exc).__name__}: {first[0] if first else ''}")
    head = migrations.head_revision()
    if revision != head:
        fail(f"database {shown} is at schema {revision or 'none'}, this version needs {head}: "
             "run `waterline migrate`")
    return engine


def _session_factory(settings: Settings) -> sessionmaker[Session]:
    from app.db.session import make_session_factory

    return make_session_factory(engine_or_exit(settings))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [env WATERLINE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535,
                                             help="Bind port [env WATERLINE_PORT]")] = None,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs)."""
    import uvicorn

    from app.api.main import create_app

    settings = settings_or_exit()
    uvicorn.run(
        create_app(settings, background=True),
        host=host or settings.host,
        port=port if port is not None else settings.port,
        log_level=settings.log_level.lower(),
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to REVISION instead")] = False,
) -> None:
    """Migrate the database schema (Alembic) to head, or down to a revision."""
    from app.db import migrate as migrations
    from app.db.session import make_engine

    settings = settings_or_exit()
    engine = make_engine(settings.database_url)
    try:
        if down:
            migrations.downgrade(engine, revision)
        else:
            migrations.upgrade(engine, revision)
    except Exception as exc:
        fail(f"migration failed: {type(exc).__name__}: {exc}")
    typer.echo(f"database at revision {migrations.current_revision(engine)}")


@app.command()
def collector(
    name: Annotated[str | None, typer.Option(help="Worker name (default host-pid)")] = None,
    metrics_port: Annotated[int, typer.Option(min=1, max=65535,
                                              help="Port of this collector's /metrics")] = 9108,
    metrics_host: Annotated[str, typer.Option(help="Bind address of /metrics")] = "127.0.0.1",
    concurrency: Annotated[int | None, typer.Option(min=1, max=1024,
                                                    help="Switches polled at once")] = None,
    lease_s: Annotated[float, typer.Option(min=0.5, max=3600.0,
                                           help="Lease period (PostgreSQL scale-out)")] = 30.0,
    leases: Annotated[
        bool | None, typer.Option("--leases/--no-leases",
                                  help="Share switches with other collectors (default: on "
                                  "with PostgreSQL, off with SQLite)")
    ] = None,
) -> None:
    """Run the telemetry poller as its own process; several share the fabric via leases."""
    import signal
    import threading

    from prometheus_client import REGISTRY, start_http_server

    from app.metrics import FabricCollector
    from app.telemetry import load_snapshot
    from collectors.service import CollectorOptions, CollectorService, default_worker_name

    settings = settings_or_exit()
    engine = engine_or_exit(settings)
    use_leases = leases if leases is not None else engine.dialect.name == "postgresql"
    # A separate process cannot see the API process's virtual fabric: mock switches are left
    # to `waterline serve`.
    options = CollectorOptions.from_settings(
        settings, concurrency=concurrency, use_leases=use_leases, lease_s=lease_s,
        worker_name=name or default_worker_name(), drivers="real")
    service = CollectorService(engine, options)
    REGISTRY.register(FabricCollector(
        lambda: load_snapshot(engine, sorted(service.owned_switch_ids() or [])
                              if use_leases else None)))
    try:
        start_http_server(metrics_port, addr=metrics_host)
    except (OSError, ValueError) as exc:
        fail(f"--metrics-host/--metrics-port: cannot serve metrics on "
             f"{metrics_host}:{metrics_port}: {exc}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.start()
    typer.echo(f"collector {options.worker_name} running; metrics on "
               f"http://{metrics_host}:{metrics_port}/metrics", err=True)
    stop.wait()
    service.stop()


@app.command()
def daemon(
    once: Annotated[bool, typer.Option("--once", help="Run one cycle and exit")] = False,
) -> None:
    """Run the auto-tuning daemon as its own process (`serve` embeds it by default)."""
    import json
    import signal
    import threading

    from sqlalchemy import func, select

    from app.changes.service import ChangeService
    from app.daemon import DaemonOptions, TunerDaemon
    from app.db.models import Switch
    from app.db.session import make_session_factory

    settings = settings_or_exit()
    factory = make_session_factory(engine_or_exit(settings))
    with factory() as session:
        mocks = session.scalar(select(func.count(Switch.id)).where(Switch.driver == "mock"))
    if mocks:
        # their virtual fabric lives in the `serve` process that polls them: a fabric of this
        # process's own would take changes nobody reads back (as `collector` does)
        typer.echo(f"{mocks} mock switches are left to `waterline serve`: its embedded "
                   "daemon tunes them, and stands by while this daemon holds the tuner lease "
                   "(run one or the other)", err=True)
    changes = ChangeService(factory)
    changes.recover(wait=True)
    tuner = TunerDaemon(factory, changes, options=DaemonOptions(
        interval_s=settings.tuner_interval_s, window_s=settings.tuner_window_s,
        verify_s=settings.tuner_verify_s, initial_mode=settings.tuner_mode,
        real_switches_only=True))
    if once:
        report = tuner.cycle()
        left = changes.wait_all()  # the changes it started, applied before it exits
        tuner.release_lease()
        typer.echo(json.dumps(report.__dict__, default=str))
        if left:
            fail(f"changes {left} still running after 300 s; `serve` or the next daemon "
                 "recovers them")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    tuner.start()
    typer.echo(f"tuning daemon running, a cycle every {settings.tuner_interval_s:g} s", err=True)
    stop.wait()
    tuner.stop()
    left = changes.wait_all()  # no change left half-applied by the exit
    if left:
        fail(f"changes {left} still running after 300 s; `serve` or the next daemon "
             "recovers them")


@app.command()
def bootstrap() -> None:
    """First-run set-up for `make run`: load the demo fabric into an empty inventory and write
    a bootstrap admin token file if no token exists yet."""
    from sqlalchemy import func, select

    from app.auth import create_token
    from app.db.models import ApiToken, Switch
    from app.db.session import session_scope
    from app.inventory import dump_yaml, import_inventory, parse_inventory
    from fabricsim.topology import FabricParams, generate_fabric

    settings = settings_or_exit()
    factory = _session_factory(settings)
    with session_scope(factory) as session:
        if settings.demo_switches and not session.scalar(select(func.count(Switch.id))):
            inventory = parse_inventory(dump_yaml(generate_fabric(FabricParams())))
            summary = import_inventory(session, inventory)
            typer.echo(f"loaded the demo fabric: {summary.switches_created} mock switches")
        if not session.scalar(select(func.count(ApiToken.id))):
            token = create_token(session, name="bootstrap-admin", role="admin")
            path = Path(settings.admin_token_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(token + "\n")
            typer.echo(f"wrote an admin API token to {path} (mode 0600)")


@fabric_app.command("generate")
def fabric_generate(
    pods: Annotated[int, typer.Option(help="Number of pods")] = 2,
    tors_per_pod: Annotated[int, typer.Option(help="TOR switches per pod")] = 2,
    leaves_per_pod: Annotated[int, typer.Option(help="Leaf switches per pod")] = 2,
    spines: Annotated[int, typer.Option(help="Spine switches")] = 2,
    hosts_per_tor: Annotated[int, typer.Option(help="GPU hosts per TOR")] = 8,
    access_speed_gbps: Annotated[int, typer.Option(help="Host port speed: 100 or 200")] = 100,
    driver: Annotated[str, typer.Option(help="mock, hp_comware or sonic")] = "mock",
    name: Annotated[str, typer.Option(help="Fabric name")] = "demo",
    mgmt_host: Annotated[str, typer.Option(help="Management address of every switch")] = "127.0.0.1",
    mgmt_port_base: Annotated[
        int, typer.Option(help="If set, switch N listens on base+N (lab); else 22")
    ] = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default stdout)")] = None,
) -> None:
    """Generate a Spine/Leaf/TOR fabric inventory as YAML."""
    from app.drivers.base import KNOWN_DRIVERS
    from app.inventory import InventoryError, dump_yaml, parse_inventory
    from fabricsim.topology import FabricParams, generate_fabric

    if driver not in KNOWN_DRIVERS:
        fail(f"--driver: unknown driver {driver!r}; known: {', '.join(KNOWN_DRIVERS)}")
    params = FabricParams(
        pods=pods, tors_per_pod=tors_per_pod, leaves_per_pod=leaves_per_pod, spines=spines,
        hosts_per_tor=hosts_per_tor, access_speed_gbps=access_speed_gbps, driver=driver,
        name=name, mgmt_host=mgmt_host, mgmt_port_base=mgmt_port_base,
    )
    try:
        text = dump_yaml(generate_fabric(params))
    except ValueError as exc:
        fail(str(exc))
    try:  # what it writes must import: the options are checked as the file would be
        parse_inventory(text)
    except InventoryError as exc:
        fail(f"these options make an inventory that would not import: {exc}")
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            output.write_text(text)
        except OSError as exc:
            fail(f"-o: cannot write {output}: {exc.strerror or exc}")
        typer.echo(f"wrote {output}", err=True)


@inventory_app.command("import")
def inventory_import(
    file: Annotated[Path, typer.Argument(help="Inventory YAML file")],
) -> None:
    """Import an inventory file: all-or-nothing; switches are upserted by name."""
    from app.db.session import session_scope
    from app.inventory import InventoryError, import_inventory, parse_inventory

    settings = settings_or_exit()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"{file}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        fail(f"{file}: not UTF-8 text (byte {exc.start})")
    try:
        inventory = parse_inventory(text)
    except InventoryError as exc:
        fail(f"{file}: {exc}")
    with session_scope(_session_factory(settings)) as session:
        summary = import_inventory(session, inventory)
    typer.echo(
        f"imported {file}: {summary.switches_created} switches created, "
        f"{summary.switches_updated} updated, {summary.interfaces} interfaces, "
        f"{summary.links} links"
    )


@inventory_app.command("export")
def inventory_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default stdout)")] = None,
) -> None:
    """Export the inventory as YAML (the import format)."""
    from app.db.session import session_scope
    from app.inventory import dump_yaml, export_inventory

    settings = settings_or_exit()
    with session_scope(_session_factory(settings)) as session:
        text = dump_yaml(export_inventory(session))
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            output.write_text(text)
        except OSError as exc:
            fail(f"-o: cannot write {output}: {exc.strerror or exc}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="A name for the token (the audit actor)")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "viewer",
) -> None:
    """Create an API token; it is printed once and only its hash is stored."""
    from app.auth import TokenError, create_token
    from app.db.session import session_scope

    settings = settings_or_exit()
    try:
        with session_scope(_session_factory(settings)) as session:
            token = create_token(session, name=name, role=role)
    except TokenError as exc:
        fail(str(exc))
    typer.echo(token)


@token_app.command("list")
def token_list() -> None:
    """List tokens (name, role, prefix; never the token)."""
    from sqlalchemy import select

    from app.db.models import ApiToken
    from app.db.session import session_scope

    settings = settings_or_exit()
    with session_scope(_session_factory(settings)) as session:
        for row in session.scalars(select(ApiToken).order_by(ApiToken.id)):
            state = "revoked" if row.revoked else "active"
            typer.echo(f"{row.name}\t{row.role}\t{row.prefix}...\t{state}")


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="Token name")]) -> None:
    """Revoke a token by name."""
    from sqlalchemy import select

    from app.db.models import ApiToken
    from app.db.session import session_scope

    settings = settings_or_exit()
    with session_scope(_session_factory(settings)) as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == name)).first()
        if row is None:
            fail(f"no token named {name!r}")
        was = row.revoked
        row.revoked = True
    typer.echo(f"{name} was already revoked" if was else f"revoked {name}")


def _mount_optional() -> None:
    """Sub-commands that live beside the packages they drive."""
    try:
        from fabricsim.cli import app as sim_app
    except ImportError:
        pass
    else:
        app.add_typer(sim_app, name="sim", help="Run the virtual fabric's physics.")
    try:
        from fabricsim.lab_cli import app as lab_app
    except ImportError:
        pass
    else:
        app.add_typer(lab_app, name="lab", help="Virtual SSH switches (Comware, SONiC).")
    try:
        from app.tuner_cli import app as tuner_app
    except ImportError:
        pass
    else:
        app.add_typer(tuner_app, name="tuner", help="Train and evaluate the AI-ECN tuner.")
    from app.drivers.cli import headroom, parse

    app.command("parse")(parse)
    app.command("headroom")(headroom)


_mount_optional()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
