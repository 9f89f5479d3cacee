"""Benchmark of IMAP intake against a private Dovecot (issue 4).

    .venv/bin/python bench/imap_backlog.py            # 5,000 corpus messages, 50 IDLE samples
    .venv/bin/python bench/imap_backlog.py --quick    # 1,000 messages, 20 IDLE samples
    .venv/bin/python bench/imap_backlog.py --pg       # PostgreSQL + Redis + a worker process

It starts a throwaway Dovecot (``bench/dovecot.py``: Debian ``dovecot-imapd``, loopback,
plain IMAP), creates a migrated database seeded with the corpus clients, and adds one mailbox.
Two shapes:

* default, the embedded ``ticketpost up`` shape: SQLite file in a temporary directory, the
  in-process queue, and the routing worker threads in the same process as the poller (they share
  one interpreter lock, so routing slows intake down);
* ``--pg``, the scaled-out shape: a private PostgreSQL database ``tp_bench_imap_<pid>``, the Redis
  queue (a private namespace) and one ``ticketpost worker`` process routing.

1. **Backlog**: the poller has seen the (empty) folder once and is stopped — an outage — while
   ``--n`` messages of ``bench.corpus`` (2–200 KB, realistic MIME) are APPENDed. Measured: from
   ``ImapService.start()`` until every message is stored *and* flagged ``\\Seen`` (the
   checkpoint's ``acked_uid`` reaches the last UID). Routing runs at the same time and is reported
   separately (time until every message is routed). ``--route-after`` starts routing only once the
   backlog is in: intake alone, as when workers run on other cores or hosts.
2. **IDLE latency**: with the poller idle in IDLE, one ``new``-kind corpus message at a time is
   APPENDed; measured from just before the APPEND until its ticket exists in the database.

The per-sender rate limit is off (``TICKETPOST_RATE_LIMIT_PER_HOUR=0``): the corpus has few
senders, and the limit would turn most of the backlog into ``ignored_loop``.
The last line is one JSON object with ``ingested_per_s`` and ``idle_p50_ms`` (plus details).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("TICKETPOST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TICKETPOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET_KEY = "bench-imap-secret"


def _database(pg: bool, workdir: str) -> tuple[str, callable]:
    """A migrated, empty database URL and a function that removes it."""
    from sqlalchemy import create_engine, text

    from models.db import migrate

    if not pg:
        url = f"sqlite:///{workdir}/bench.db"
        migrate(url)
        return url, lambda: None
    name = f"tp_bench_imap_{os.getpid()}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    migrate(url)

    def drop() -> None:
        from models.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def _wait(check, *, timeout: float, every: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("benchmark step did not finish in time")


def _redis_namespace_cleanup(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def run(n: int, samples: int, pg: bool, route_after: bool = False) -> dict:
    import subprocess

    from sqlalchemy import func, select

    from bench.corpus import corpus_kind, generate, seed_database
    from bench.dovecot import Dovecot

    workdir = tempfile.mkdtemp(prefix="tp-bench-imap-")
    dovecot = Dovecot.create()
    dovecot.start()
    url, drop = _database(pg, workdir)
    env = dict(
        TICKETPOST_DATABASE_URL=url,
        TICKETPOST_SECRET_KEY=SECRET_KEY,
        TICKETPOST_RATE_LIMIT_PER_HOUR="0",
        TICKETPOST_IMAP_SWEEP_INTERVAL_S="600",
    )
    namespace = f"tp-bench-imap-{os.getpid()}"
    if pg:
        env.update(TICKETPOST_REDIS_URL=REDIS_URL, TICKETPOST_REDIS_NAMESPACE=namespace)
    os.environ.update(env)
    from core.settings import get_settings, reset_settings

    reset_settings()
    settings = get_settings()

    from admin_api.services.mailboxes import create_mailbox
    from ingest.imap import ImapService
    from routing.mailparse import header_message_id
    from models import InboundMessage, Mailbox
    from models.db import get_engine, session_scope
    from routing.broker import setup_broker, start_worker, stop_worker

    engine = get_engine(url)
    seed_database(engine)
    corpus = list(generate(n + samples * 8, seed=11))
    backlog = corpus[:n]
    spare = [raw for raw in corpus[n:] if corpus_kind(raw)[0] == "new"][:samples]
    with session_scope(engine) as session:
        mailbox = create_mailbox(
            session, name="bench", host=dovecot.host, port=dovecot.port, security="none",
            username=dovecot.user, password=dovecot.password, secret_key=SECRET_KEY,
        )
        session.flush()
        mailbox_id = mailbox.id

    def checkpoint() -> tuple[int, int]:
        with session_scope(engine) as session:
            row = session.get(Mailbox, mailbox_id)
            return (row.last_uid or 0, row.acked_uid or 0) if row.uidvalidity else (-1, -1)

    def unrouted() -> int:
        with session_scope(engine) as session:
            return session.scalar(
                select(func.count(InboundMessage.id)).where(InboundMessage.status == "received")
            )

    setup_broker(settings)
    worker = process = None

    def start_routing():
        nonlocal worker, process
        if pg:
            process = subprocess.Popen(
                [sys.executable, "-m", "ticketpost.cli", "worker"], cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        else:
            worker = start_worker(settings.worker_threads, settings)

    if not route_after:
        start_routing()

    # the poller sees the empty folder once, then is down while the backlog arrives
    service = ImapService(engine=engine, settings=settings).start()
    _wait(lambda: checkpoint()[0] == 0, timeout=60)
    service.stop(30)
    started = time.perf_counter()
    dovecot.append(backlog)
    append_s = time.perf_counter() - started
    total_bytes = sum(len(raw) for raw in backlog)

    try:
        service = ImapService(engine=engine, settings=settings)
        started = time.perf_counter()
        service.start()
        _wait(lambda: checkpoint()[1] >= n, timeout=600)
        ingest_s = time.perf_counter() - started
        if route_after:
            start_routing()
        _wait(lambda: unrouted() == 0, timeout=1800, every=0.1)
        routed_s = time.perf_counter() - started
        with session_scope(engine) as session:
            stored = session.scalar(select(func.count(InboundMessage.id)))
        seen = sum(1 for flags in dovecot.flags().values() if b"\\Seen" in flags)

        client = dovecot.client()
        latencies = []
        try:
            for raw in spare:
                message_id = header_message_id(raw)
                time.sleep(0.2)  # let the poller settle back into IDLE
                t0 = time.perf_counter()
                client.append("INBOX", raw)

                def ticketed(message_id=message_id):
                    with session_scope(engine) as session:
                        return session.scalar(
                            select(InboundMessage.ticket_id)
                            .where(InboundMessage.message_id == message_id)
                        )

                _wait(ticketed, timeout=60, every=0.005)
                latencies.append((time.perf_counter() - t0) * 1000)
        finally:
            client.logout()
    finally:
        service.stop(30)
        if worker is not None:
            stop_worker(worker, 30)
        if process is not None:
            process.terminate()
            process.wait(30)
            _redis_namespace_cleanup(REDIS_URL, namespace)
        dovecot.destroy()
        drop()

    latencies.sort()
    return {
        "shape": ("postgresql+redis, worker process" if pg else "sqlite, in-process worker")
        + (", routing after intake" if route_after else ", routing during intake"),
        "messages": n,
        "megabytes": round(total_bytes / 1e6, 1),
        "append_s": round(append_s, 2),
        "ingest_s": round(ingest_s, 2),
        "ingested_per_s": round(n / ingest_s, 1),
        "ingest_mb_per_s": round(total_bytes / 1e6 / ingest_s, 1),
        "all_routed_s": round(routed_s, 2),
        "stored": stored,
        "flagged_seen": seen,
        "idle_samples": len(latencies),
        "idle_p50_ms": round(statistics.median(latencies), 1),
        "idle_p90_ms": round(latencies[int(0.9 * (len(latencies) - 1))], 1),
        "idle_max_ms": round(latencies[-1], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages, 20 IDLE samples")
    parser.add_argument("--n", type=int, default=None, help="backlog size (default 5,000)")
    parser.add_argument("--samples", type=int, default=None, help="IDLE samples (default 50)")
    parser.add_argument("--pg", action="store_true",
                        help="PostgreSQL + Redis + a worker process instead of SQLite in-process")
    parser.add_argument("--route-after", action="store_true",
                        help="start routing only once the backlog is in (intake alone)")
    args = parser.parse_args()
    n = args.n or (1000 if args.quick else 5000)
    samples = args.samples or (20 if args.quick else 50)
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = run(n, samples, args.pg, args.route_after)
    for key, value in result.items():
        print(f"{key:>16}: {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
