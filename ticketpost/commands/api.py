"""``ticketpost api``: serve the admin API with uvicorn on TICKETPOST_API_HOST:API_PORT."""

from __future__ import annotations

import sys


def register(sub) -> None:
    parser = sub.add_parser("api", help="serve the admin API (HTTP, /api/v1)")
    parser.add_argument("--host", help="default: TICKETPOST_API_HOST")
    parser.add_argument("--port", type=int, help="default: TICKETPOST_API_PORT")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.set_defaults(func=run)


def schema_problem(engine) -> str | None:
    """Why the database cannot serve the API (unreachable, or not migrated), or None."""
    from sqlalchemy import inspect

    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    except Exception as exc:  # noqa: BLE001 - report any connection failure plainly
        return f"the database is not reachable: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    missing = {"alembic_version", "clients", "api_tokens"} - tables
    if missing:
        return "the database has no ticketpost schema yet: run `ticketpost migrate` first"
    return None


def run(args) -> int:
    import uvicorn

    from models.db import get_engine
    from core.settings import get_settings

    settings = get_settings()
    problem = schema_problem(get_engine(settings.database_url))
    if problem:
        print(f"ticketpost api: {problem}", file=sys.stderr)
        return 2
    host = args.host or settings.api_host
    port = args.port or settings.api_port
    if args.workers > 1:
        uvicorn.run(
            "admin_api.app:create_app", factory=True, host=host, port=port,
            workers=args.workers, log_config=None, proxy_headers=False,
        )
    else:
        from admin_api.app import create_app

        uvicorn.run(create_app(settings=settings), host=host, port=port, log_config=None)
    return 0
