"""``ticketpost smtp``: the SMTP listener role of the scaled-out shape (PostgreSQL + Redis)."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "smtp",
        help="run only the SMTP listener (needs TICKETPOST_REDIS_URL; scale by running more)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from ticketpost.up import run_smtp

    return run_smtp()
