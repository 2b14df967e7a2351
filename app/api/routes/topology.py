"""Topology export: the inventory (without credential references) as JSON or YAML."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from app.api.deps import SessionDep, Viewer
from app.inventory import dump_yaml, export_inventory

router = APIRouter(tags=["topology"])


@router.get("/topology", response_model=None)
def topology(
    session: SessionDep, _: Viewer, format: Literal["json", "yaml"] = "json"
) -> dict[str, Any] | PlainTextResponse:
    """Fabric, switches with interfaces, and links, in the inventory file format."""
    data = export_inventory(session, include_credentials_ref=False)
    if format == "yaml":
        return PlainTextResponse(dump_yaml(data), media_type="application/yaml")
    return data
