"""API tokens: generated once, shown once, stored as a SHA-256 hash. Roles are ordered."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import TOKEN_ROLES, ApiToken
from app.timestamps import as_utc

TOKEN_PREFIX = "wl_"
ROLE_RANK = {role: rank for rank, role in enumerate(TOKEN_ROLES)}


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (used as the audit actor) and its role."""

    name: str
    role: str

    def has(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(session: Session, *, name: str, role: str) -> str:
    """Store a new token's hash and return the token itself (the only time it exists)."""
    if role not in ROLE_RANK:
        raise TokenError(f"unknown role {role!r}; choose one of {', '.join(TOKEN_ROLES)}")
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise TokenError("token name must be 1-64 letters, digits, '-' or '_'")
    if session.scalars(select(ApiToken).where(ApiToken.name == name)).first() is not None:
        raise TokenError(f"a token named {name!r} already exists")
    token = new_token()
    session.add(
        ApiToken(name=name, role=role, token_hash=hash_token(token), prefix=token[:10])
    )
    session.flush()
    return token


def _live_token(session: Session, token: str) -> ApiToken | None:
    """The stored, unrevoked token ``token`` is, if any."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    if row is None or row.revoked or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row


def token_is_live(session: Session, token: str) -> bool:
    """Whether ``token`` would authenticate (read only: no use is recorded)."""
    return _live_token(session, token) is not None


def authenticate(session: Session, token: str) -> Principal | None:
    row = _live_token(session, token)
    if row is None:
        return None
    now = datetime.now(UTC)
    last = row.last_used_at
    # Record use at most once a minute: a write per request would contend with ingest.
    if last is None or (now - as_utc(last)).total_seconds() > 60:
        row.last_used_at = now
    return Principal(name=row.name, role=row.role)
