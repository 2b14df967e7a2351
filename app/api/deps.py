"""FastAPI dependencies: database session and the caller's role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.auth import Principal, authenticate
from app.db.session import session_scope

_bearer = HTTPBearer(auto_error=False, description="API token from `waterline token create`")


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.session_factory) as session:
        yield session


# One transaction per request, committed *before* the response goes out (scope "function";
# FastAPI's default "request" scope commits after it is sent: a client could be told 204 for
# a write that then failed, or read the old state right after). At most 24 requests hold a
# session at once: the 25th waits without taking one of the 40 worker threads, so a burst of
# writes queueing on SQLite's write lock cannot leave no thread for the one that holds it, and
# PostgreSQL's pool (10 + 20) keeps connections for the token check and background loops.
SESSION_CONCURRENCY = 24
SessionDep = Annotated[Session, Depends(get_session, scope="function",
                                        max_concurrency=SESSION_CONCURRENCY)]


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = authenticate(session, credentials.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def require(role: str) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.has(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this needs the {role} role; token has {principal.role}"
            )
        return principal

    return check


# Ids and offsets are bounded so that an absurd number is a 422, not a database overflow.
MAX_ID = 2**31 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
PodQuery = Annotated[int | None, Query(ge=0, le=100_000)]

Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
