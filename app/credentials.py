"""Resolve a switch's credentials reference (`env:NAME` or `file:/path`) to the secret.

The secret is returned to the driver that connects and nowhere else: never logged, stored or
sent back through the API. Errors name the reference, not the value.

A reference cannot name just anything: environment variables must start with one of
`WATERLINE_CREDENTIALS_ENV_PREFIXES` (default `SWITCH_`), and files must lie in
`WATERLINE_SECRETS_DIR` (default `/etc/waterline/secrets`), be regular files and small. So an
inventory edit cannot make Waterline send, say, the database URL or /etc/shadow to a host as a
password.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from app.drivers.errors import AuthFailed

MAX_SECRET_FILE_BYTES = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def resolve_secret(reference: str, *, switch: str | None = None) -> str:
    from app.config import get_settings

    if not reference:
        return ""
    settings = get_settings()
    kind, _, where = reference.partition(":")
    if kind == "env":
        prefixes = tuple(p for p in settings.credentials_env_prefixes.split(",") if p)
        if not where.startswith(prefixes) or where.startswith("WATERLINE_"):
            raise AuthFailed(f"credentials reference {reference} is not allowed: environment "
                             f"variables must start with {' or '.join(prefixes) or '(none)'} "
                             "(WATERLINE_CREDENTIALS_ENV_PREFIXES)", switch=switch)
        value = os.environ.get(where)
        if value is None:
            raise AuthFailed(f"credentials reference {reference} is not set", switch=switch)
        return _checked(value, reference, switch)
    if kind == "file":
        root = Path(settings.secrets_dir).resolve()
        path = Path(where).resolve()
        if root not in path.parents:
            raise AuthFailed(f"credentials reference {reference} is not allowed: files must be "
                             f"in {root} (WATERLINE_SECRETS_DIR)", switch=switch)
        try:
            if not path.is_file() or path.stat().st_size > MAX_SECRET_FILE_BYTES:
                raise AuthFailed(f"credentials reference {reference} is not a small regular file",
                                 switch=switch)
            text = path.read_bytes().decode("utf-8").strip()
        except OSError as exc:
            raise AuthFailed(
                f"credentials reference {reference} unreadable: {exc.strerror}", switch=switch
            ) from None
        except UnicodeDecodeError:
            raise AuthFailed(f"credentials reference {reference} is not UTF-8 text",
                             switch=switch) from None
        return _checked(text, reference, switch)
    raise AuthFailed(f"credentials reference {reference!r} must be env:NAME or file:/path",
                     switch=switch)


def _checked(secret: str, reference: str, switch: str | None) -> str:
    # A newline in a password would be a second command in an interactive `sudo -s`.
    if _CONTROL.search(secret):
        raise AuthFailed(f"the secret of {reference} contains control characters",
                         switch=switch)
    return secret
