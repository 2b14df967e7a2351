"""``waterline lab`` commands: start virtual SSH switches that netmiko (and Waterline) can poll.

Mounted by the main CLI as ``waterline lab``.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
import yaml

app = typer.Typer(help="Virtual SSH switches (Comware, SONiC) backed by the virtual fabric.",
                  no_args_is_help=True, add_completion=False)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@app.command()
def up(
    switches: Annotated[int, typer.Option("--switches", "-n", min=1, max=2000,
                                          help="How many switches")] = 4,
    nos: Annotated[str, typer.Option(help="comware or sonic")] = "sonic",
    inventory_out: Annotated[Path, typer.Option("--inventory-out", "-o",
                                                help="Where to write the inventory YAML")]
    = Path("lab-inventory.yaml"),
    base_port: Annotated[int, typer.Option(min=0, max=65000,
                                           help="First SSH port (0: any free ports)")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the traffic mix")] = 0,
    password_env: Annotated[str, typer.Option(
        help="Environment variable with the switches' password (the inventory's "
             "credentials_ref env:NAME); a random password is printed when it is unset")]
    = "SWITCH_PASSWORD",
    hosts_per_tor: Annotated[int, typer.Option(min=1, max=64, help="GPU hosts per TOR")] = 8,
    scenario: Annotated[Path | None, typer.Option(help="Traffic scenario YAML")] = None,
) -> None:
    """Start N virtual switches on 127.0.0.1 and write their inventory; runs until Ctrl-C.

    The fabric is a Spine/Leaf/TOR mini fabric of exactly N switches (spines, then each pod's
    leaves and TORs, cut at N). Each switch listens on its own port and answers with the
    NOS's prompts and command output, backed by the live simulated fabric.
    """
    from fabricsim.ssh.lab import NOS_DRIVER, start_lab

    if nos not in NOS_DRIVER:
        raise typer.BadParameter("must be comware or sonic", param_hint="--nos")
    if not _ENV_NAME.match(password_env):
        raise typer.BadParameter("not an environment variable name", param_hint="--password-env")
    password = os.environ.get(password_env)
    generated = not password
    if not password:
        password = secrets.token_urlsafe(12)
    typer.echo(f"starting {switches} virtual {nos} switches (simulating the traffic classes)...",
               err=True)
    lab = start_lab(nos=nos, switches=switches, password=password, seed=seed, live=True,
                    base_port=base_port, credentials_ref=f"env:{password_env}",
                    hosts_per_tor=hosts_per_tor,
                    scenario=str(scenario) if scenario is not None else None,
                    workers=max(1, min(4, os.cpu_count() or 1)))
    try:
        inventory_out.write_text(yaml.safe_dump(lab.inventory, sort_keys=False))
        ports = sorted(lab.port_of(n) for n in lab.names())
        where = f"ports {ports[0]}-{ports[-1]}" if base_port else "free ports (see the inventory)"
        typer.echo(f"{switches} {nos} switches listening on 127.0.0.1, {where}, user "
                   f"{lab.username}; inventory: {inventory_out}")
        typer.echo(f"import it:   waterline inventory import {inventory_out}")
        if generated:
            typer.echo(f"password:    export {password_env}='{password}'   (shown once)")
        else:
            typer.echo(f"password:    taken from ${password_env}")
        typer.echo("Ctrl-C stops the lab.")
        stop = threading.Event()
        # both set explicitly: a process started in the background by a non-interactive
        # shell inherits SIGINT ignored, and `kill -INT` must still stop the lab
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
    finally:
        lab.stop()
        typer.echo("lab stopped", err=True)
