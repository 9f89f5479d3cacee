"""``ticketpost imap``: the mailbox poller role — poll every enabled mailbox until SIGTERM:
IMAP mailboxes and Microsoft Graph ones (``kind: graph``) alike.

With ``TICKETPOST_REDIS_URL`` the stored ids go to the Redis queue for ``ticketpost worker``
processes (the scaled-out shape). Without it this process also routes what it stores, with an
in-process routing worker and sweeper, so ``ticketpost imap`` alone is a complete intake.
Any number of ``ticketpost imap`` processes may run: each mailbox is polled by one of them at a
time (PostgreSQL advisory lock; a lock file beside an SQLite database), the others stand by.
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    parser = sub.add_parser(
        "imap", help="poll the enabled mailboxes (IMAP and Graph) in the foreground until SIGTERM"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from ingest.graph import GraphService
    from ingest.imap import ImapService
    from models.db import get_engine
    from routing.broker import is_in_process, setup_broker
    from core.settings import get_settings
    from ticketpost.up import Running, _start_worker_and_sweeper, install_stop_signals, stop_all

    settings = get_settings()
    stop = install_stop_signals()
    engine = get_engine(settings.database_url)
    broker = setup_broker(settings)
    running = Running()
    if is_in_process(broker):
        _start_worker_and_sweeper(running, settings, engine, settings.worker_threads)
        queue = "in-process routing worker"
    else:
        queue = f"Redis queue (namespace {settings.redis_namespace})"
    running.imap = ImapService(engine=engine, settings=settings).start()
    running.graph = GraphService(engine=engine, settings=settings).start()
    print(f"ticketpost imap: polling {len(running.imap.pollers)} enabled IMAP and "
          f"{len(running.graph.pollers)} Graph mailbox(es); "
          f"stored messages go to the {queue}; mailbox changes are picked up every "
          f"{settings.imap_reload_interval_s:g} s", flush=True)
    while not stop.wait(1.0):
        pass
    print("ticketpost imap: stopping", file=sys.stderr, flush=True)
    stop_all(running, getattr(settings, "shutdown_timeout_s", 10.0))
    return 0
