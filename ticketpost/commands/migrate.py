"""``ticketpost migrate``: bring the configured database to the newest schema."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("migrate", help="create or upgrade the database schema")
    parser.set_defaults(func=run)


def run(args) -> int:
    from models.db import migrate
    from core.settings import get_settings

    url = get_settings().database_url
    migrate(url)
    print(f"database at {_redact(url)} is at the newest schema")
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
