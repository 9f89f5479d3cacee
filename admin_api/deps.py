"""FastAPI dependencies: one database session per request, the caller's token and its role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from admin_api.services import tokens as token_service
from admin_api.services.pages import DEFAULT_LIMIT, MAX_LIMIT
from models import utcnow
from core.settings import Settings

MAX_ID = 2**31 - 1
MAX_OFFSET = 2**31 - 1
READ_METHODS = frozenset({"GET", "HEAD"})

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for this request; routes commit what they change, anything else is rolled back.

    Creating a session does no I/O, so it happens on the event loop; closing it returns the
    connection to the pool (a rollback on the wire), so that runs in the thread pool.

    Reads (GET, HEAD) on PostgreSQL use ``app.state.read_sessionmaker``, whose connections
    autocommit. At PostgreSQL's READ COMMITTED every statement takes its own snapshot anyway, so
    a read sees the same data; what goes away is the BEGIN before the first statement and the
    ROLLBACK at the end (two round trips), and with them the thread-pool hop for closing: psycopg
    sends nothing when an idle autocommit connection goes back to the pool. A token's last use
    (written at most once a minute) commits on its own.

    Reads on SQLite use a deferred ``BEGIN`` (a WAL read snapshot) instead of the ``BEGIN
    IMMEDIATE`` of every other transaction, so a read never waits for, nor holds up, a writer
    such as the SMTP intake or an import. Its close is a ROLLBACK, so it runs in the thread pool.
    """
    read_sessionmaker = request.app.state.read_sessionmaker
    if read_sessionmaker is not None and request.method in READ_METHODS:
        session = read_sessionmaker()
        try:
            yield session
        finally:
            if request.app.state.engine.dialect.name == "sqlite":
                await run_in_threadpool(session.close)
            else:
                session.close()  # autocommit: nothing to roll back, no I/O
        return
    session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


async def get_settings_dep(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's id (None for the configured admin token), name and role."""

    token_id: int | None
    name: str
    role: str


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def current_caller(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller of this request; raises 401 when the bearer token is missing, unknown or revoked."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token: send `Authorization: Bearer <token>`")
    secret = credentials.credentials
    token = token_service.authenticate(session, secret=secret)
    if token is None and token_service.same_secret(secret, settings.admin_token):
        # TICKETPOST_ADMIN_TOKEN means an admin token with that value exists (registered at
        # start; here if the schema appeared after the app started), unless it was revoked.
        row = token_service.ensure_token(session, secret=secret)
        if row is not None:
            row.last_used_at = utcnow()
            token = token_service.TokenIdentity(id=row.id, name=row.name, role=row.role, touched=True)
    if token is None:
        session.rollback()
        raise _unauthorized("invalid or revoked token")
    if token.touched:
        try:
            session.commit()  # the token's last use (at most once a minute) or its registration
        except OperationalError:
            # Bookkeeping only: a busy database (SQLite's write lock taken by a writer while this
            # read held a snapshot) must not fail the request; the next use writes it.
            session.rollback()
    return Caller(token_id=token.id, name=token.name, role=token.role)


async def require_technician_or_admin(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    """Any valid token: technicians read everything and work on tickets."""
    return caller


async def require_admin(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    """An admin token; technicians get 403."""
    if caller.role != "admin":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"this needs an admin token; token {caller.name!r} has role {caller.role!r}",
        )
    return caller


AnyRole = Annotated[Caller, Depends(require_technician_or_admin)]
AdminRole = Annotated[Caller, Depends(require_admin)]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@dataclass(frozen=True)
class Paging:
    """``?limit=`` (default 50, at most 500) and ``?offset=`` of a list request."""

    limit: int
    offset: int


async def paging(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size, at most 500")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
) -> Paging:
    return Paging(limit=limit, offset=offset)


PagingDep = Annotated[Paging, Depends(paging)]
