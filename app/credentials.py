"""Resolve a switch's credentials reference (`env:NAME` or `file:/path`) to the secret.

The secret is returned to the driver that connects and nowhere else: never logged, stored or
sent back through the API. Errors name the reference, not the value.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.drivers.errors import AuthFailed


def resolve_secret(reference: str, *, switch: str | None = None) -> str:
    if not reference:
        return ""
    kind, _, where = reference.partition(":")
    if kind == "env":
        value = os.environ.get(where)
        if value is None:
            raise AuthFailed(f"credentials reference {reference} is not set", switch=switch)
        return value
    if kind == "file":
        try:
            return Path(where).read_text().strip()
        except OSError as exc:
            raise AuthFailed(
                f"credentials reference {reference} unreadable: {exc.strerror}", switch=switch
            ) from None
    raise AuthFailed(f"credentials reference {reference!r} must be env:NAME or file:/path",
                     switch=switch)
