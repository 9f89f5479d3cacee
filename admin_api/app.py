"""The admin API application: ``create_app()`` wires routers, errors, health and the session."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from admin_api.routes import (
    clients,
    contacts,
    contracts,
    domains,
    imports,
    inbound,
    mailboxes,
    metrics,
    onboarding,
    outbox,
    slas,
    templates,
    threshold_profiles,
    tickets,
    tokens,
    webhooks,
)
from admin_api.services.errors import Conflict, Invalid, NotFound
from models.db import get_engine, reading, session_factory
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

# Every resource router, in the order they appear in the OpenAPI document. Add new ones here.
ROUTERS: tuple[APIRouter, ...] = (
    clients.router,
    domains.router,
    contracts.router,
    slas.router,
    threshold_profiles.router,
    contacts.router,
    onboarding.router,
    tickets.router,
    inbound.router,
    outbox.router,
    webhooks.router,
    templates.router,
    mailboxes.router,
    tokens.router,
    imports.router,
)


# Answers any /api/v1 operation can give, documented once for all of them in OpenAPI (FastAPI
# documents 422 itself, with its HTTPValidationError shape, which our own 422s share).
COMMON_RESPONSES: dict[int | str, dict] = {
    400: {"description": "a multipart body could not be parsed (a body that is not JSON is a 422)"},
    401: {"description": "no bearer token, or an unknown or revoked one"},
    409: {"description": "a concurrent change got in the way (nothing was changed): retry"},
    413: {"description": "the request body is larger than the configured limit"},
    503: {"description": "the database is busy or unavailable (nothing was changed): retry later"},
}

# Error answers stay short: at most this many validation errors, each message at most this long,
# each part of a field location at most this long. Input values are never echoed.
MAX_ERRORS = 20
MAX_MESSAGE_CHARS = 300
MAX_LOC_CHARS = 100
# PostgreSQL's "serialization failure", "deadlock detected" and "lock not available": a lost
# race between transactions, rolled back as a whole, so the client may simply send it again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def check_database(app: FastAPI) -> None:
    """Readiness: the database answers and carries our schema (``ticketpost migrate`` ran)."""
    with reading(app.state.engine).connect() as conn:  # never waits for SQLite's write lock
        conn.execute(text("SELECT version_num FROM alembic_version")).first()


# Readiness checks by name; each raises when its dependency is not usable.
READINESS_CHECKS: dict[str, Callable[[FastAPI], None]] = {
    "database": check_database,
    "broker": metrics.check_broker,
}


def create_app(*, engine: Engine | None = None, settings: Settings | None = None) -> FastAPI:
    """The FastAPI app on ``engine`` (default: the configured database) with ``settings``."""
    settings = settings or get_settings()
    engine = engine or get_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.admin_token:
            _ensure_admin_token(app)
        yield

    app = FastAPI(
        title="ticketpost admin API",
        version="1",
        description="Clients, domains, contracts, SLAs, contacts, tickets, the inbound log, "
        "mailboxes and tokens of ticketpost. Authenticate with `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        # 413 above this (TICKETPOST_API_MAX_BODY_BYTES); CSV imports get their own limit below.
        max_body_size=settings.api_max_body_bytes,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = session_factory(engine)
    # Reads (GET, HEAD) autocommit on PostgreSQL and take no write lock on SQLite: see
    # admin_api.deps.get_session.
    app.state.read_sessionmaker = (
        session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
        if engine.dialect.name == "postgresql"
        else session_factory(reading(engine))
        if engine.dialect.name == "sqlite"
        else None
    )
    app.state.readiness_checks = dict(READINESS_CHECKS)

    _install_error_handlers(app)
    app.include_router(_health_router())
    app.include_router(metrics.router)  # /metrics, beside /healthz and /readyz
    for router in ROUTERS:
        limit = settings.api_max_import_bytes if router is imports.router else None
        app.include_router(router, prefix=API_PREFIX, responses=COMMON_RESPONSES, max_body_size=limit)
    return app


def _ensure_admin_token(app: FastAPI) -> None:
    from admin_api.services.tokens import ensure_token

    try:
        with app.state.sessionmaker() as session:
            token = ensure_token(session, secret=app.state.settings.admin_token)
            session.commit()
        if token is None:
            log.warning("TICKETPOST_ADMIN_TOKEN holds a revoked token, which stays revoked; "
                        "set a new value to rotate it")
    except Exception as exc:  # noqa: BLE001 - the auth dependency retries on first use
        log.warning(
            "could not register TICKETPOST_ADMIN_TOKEN at start; it is checked on first use",
            extra={"error": f"{type(exc).__name__}: {exc}"},
        )


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="the process is up (no auth)")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="the database (and queue) are reachable",
        responses={503: {"description": "a dependency is not reachable"}},
    )
    def readyz(request: Request):
        results: dict[str, str] = {}
        ready = True
        for name, check in request.app.state.readiness_checks.items():
            try:
                check(request.app)
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - report, do not crash
                # The answer needs no token, so it says only which dependency is down; the
                # error (hosts, ports, driver text) goes to the log for the operator.
                ready = False
                results[name] = "unavailable"
                log.warning("readiness: %s is unavailable", name, extra={"error": _first_line(exc)})
        body = {"status": "ready" if ready else "not ready", "checks": results}
        return JSONResponse(body, status_code=200 if ready else 503)

    return router


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _short(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _loc(loc) -> list:
    """A field location with every part short (a 10 MB unknown key is not echoed either)."""
    return [part if isinstance(part, int) else _short(str(part), MAX_LOC_CHARS) for part in loc]


def validation_body(loc, message: str) -> dict:
    """A 422 body in FastAPI's own shape: ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``."""
    loc = list(loc)
    if not loc or loc[0] not in ("body", "query", "path", "header"):
        loc = ["body", *loc]
    return {"detail": [{"loc": _loc(loc), "msg": _short(message), "type": "value_error"}]}


def request_validation_body(errors) -> dict:
    """FastAPI's 422 body without the echoed ``input`` and ``ctx``: location, message and type.

    Pydantic puts the offending value (all of it, also of unknown fields such as a secret
    sent by mistake, also a NaN that JSON cannot carry) into ``input``; the answer never
    repeats it, and it stays short however large or numerous the errors are.
    """
    detail = []
    for error in errors[:MAX_ERRORS]:
        message = str(error.get("msg", ""))
        if error.get("type") == "json_invalid" and isinstance(error.get("ctx"), dict):
            message = f"{message}: {error['ctx'].get('error', '')}"  # json's reason, no input
        detail.append({
            "loc": _loc(error.get("loc", ("body",))),
            "msg": _short(message),
            "type": _short(str(error.get("type", "value_error")), MAX_LOC_CHARS),
        })
    if len(errors) > MAX_ERRORS:
        detail.append({"loc": ["body"], "msg": f"{len(errors) - MAX_ERRORS} more errors not shown",
                       "type": "too_many_errors"})
    return {"detail": detail}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(Invalid)
    async def _invalid(request: Request, exc: Invalid):
        return JSONResponse(validation_body(exc.loc, exc.message), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError):
        return JSONResponse(request_validation_body(exc.errors()), status_code=422)

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError):
        # The transaction was rolled back whole (the session closes without commit).
        if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return JSONResponse(
                {"detail": "a concurrent change got in the way and nothing was changed; retry"},
                status_code=409,
            )
        log.warning("database error answered 503", extra={"error": _first_line(exc.orig or exc)})
        return JSONResponse(
            {"detail": "the database is busy or unavailable and nothing was changed; retry later"},
            status_code=503, headers={"Retry-After": "5"},
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError):
        # Last line of defence for races the services' own checks could not see.
        detail = _short(str(exc.orig).splitlines()[0]) if exc.orig else "constraint violated"
        return JSONResponse(
            {"detail": f"the change conflicts with existing data ({detail}); reload and retry"},
            status_code=409,
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError):
        detail = _short(str(exc.orig).splitlines()[0], 200) if exc.orig else "value out of range"
        return JSONResponse(validation_body(["body"], f"a value was refused by the database: {detail}"), status_code=422)
