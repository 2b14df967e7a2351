"""Inventory helpers for collector tests."""

from __future__ import annotations

from sqlalchemy import select

from app.db.models import Interface, Switch
from app.inventory import dump_yaml, import_inventory, parse_inventory
from fabricsim.topology import FabricParams, generate_fabric
from tests.conftest import Database


def load_fabric(db: Database, **params: object) -> dict[str, Switch]:
    inv = generate_fabric(FabricParams(**params))  # type: ignore[arg-type]
    with db.session() as s:
        import_inventory(s, parse_inventory(dump_yaml(inv)))
        s.commit()
        return {sw.name: sw for sw in s.scalars(select(Switch))}


def interface_ids(db: Database, switch: str) -> dict[str, int]:
    with db.session() as s:
        rows = s.execute(
            select(Interface.name, Interface.id).join(Switch).where(Switch.name == switch)
        ).all()
    return {name: iid for name, iid in rows}
