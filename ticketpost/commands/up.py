"""``ticketpost up``: everything in one process (SMTP, admin API, workers, sweeper, IMAP)."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "up",
        help="run everything in one process: migrate, SMTP, admin API, workers, IMAP pollers",
        description="Migrates the database, then runs the SMTP listener, the admin API, the "
        "routing workers, the sweeper and the IMAP pollers until SIGTERM or Ctrl-C.",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from ticketpost.up import run_up

    return run_up()
