"""Benchmark: what one ``GET /metrics`` scrape costs as the inbound table grows.

Run: ``.venv/bin/python -m bench.metrics_scrape [--rows 10000 100000] [--scrapes 20]
[--pg postgresql+psycopg://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/0]``.

For each row count it builds a fresh database (SQLite in a temporary directory, and PostgreSQL in
a private database created on the server given by ``--pg`` and dropped afterwards), fills
``inbound_messages`` with that many rows spread over 3 sources and every outcome (1 % still
unrouted) and 5 mailboxes (PostgreSQL then gets ``VACUUM ANALYZE``, as autovacuum would), and
times ``render_metrics``: the whole scrape (the GROUP BY, the oldest-unrouted MIN, the
mailboxes, the queue depth and the event store). With ``--redis`` the
queue depth and event metrics come from Redis (a private namespace, deleted afterwards).
Prints the median and the 95th percentile in milliseconds.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, insert, text

from models import InboundMessage, Mailbox
from models.db import make_engine, migrate
from models.inbound import OUTCOMES
from admin_api.metrics import render_metrics
from core.settings import Settings

SOURCES = ("smtp", "imap:support", "imap:billing")


def fill(engine, rows: int) -> None:
    """``rows`` inbound messages over every source and outcome, 1 % not routed yet."""
    now = datetime.now(timezone.utc)
    raw = b"From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n"
    sha = hashlib.sha256(raw).hexdigest()
    batch = []
    with engine.begin() as conn:
        for i in range(rows):
            unrouted = i % 100 == 0
            batch.append(
                {
                    "source": SOURCES[i % len(SOURCES)],
                    "raw": raw,
                    "size": len(raw),
                    "sha256": sha,
                    "envelope_to": [],
                    "explanation": [],
                    "received_at": now - timedelta(seconds=rows - i),
                    "status": "received" if unrouted else "routed",
                    "outcome": None if unrouted else OUTCOMES[i % len(OUTCOMES)],
                    "attempts": 0,
                }
            )
            if len(batch) == 5000:
                conn.execute(insert(InboundMessage), batch)
                batch = []
        if batch:
            conn.execute(insert(InboundMessage), batch)
        for n in range(5):
            conn.execute(
                insert(Mailbox),
                [
                    {
                        "name": f"mb{n}",
                        "host": "imap.example",
                        "username": "u",
                        "enabled": True,
                        "security": "ssl",
                        "folder": "INBOX",
                        "consecutive_failures": n,
                    }
                ],
            )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE inbound_messages"))  # as autovacuum would


def time_scrapes(engine, settings: Settings, scrapes: int) -> tuple[float, float]:
    render_metrics(engine=engine, settings=settings)  # warm the connection pool
    times = []
    for _ in range(scrapes):
        start = time.perf_counter()
        render_metrics(engine=engine, settings=settings)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--pg", default=None, help="PostgreSQL admin URL (a private db is made)")
    parser.add_argument("--redis", default=None, help="Redis URL for queue and event metrics")
    args = parser.parse_args()

    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    print(f"{'database':<11} {'rows':>8} {'median ms':>10} {'p95 ms':>8}")
    for rows in args.rows:
        targets = []
        tmp = tempfile.mkdtemp()
        targets.append(("sqlite", f"sqlite:///{tmp}/bench.db", None))
        if args.pg:
            name = f"tp_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            targets.append(("postgresql", args.pg.rsplit("/", 1)[0] + "/" + name, (admin, name)))
        for label, url, cleanup in targets:
            try:
                migrate(url)
                engine = make_engine(url)
                fill(engine, rows)
                settings = Settings(
                    database_url=url, redis_url=args.redis, redis_namespace=namespace
                )
                median, p95 = time_scrapes(engine, settings, args.scrapes)
                print(f"{label:<11} {rows:>8} {median:>10.1f} {p95:>8.1f}")
                engine.dispose()
            finally:
                if cleanup is not None:
                    admin, name = cleanup
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
    if args.redis:
        import redis

        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=f"{namespace}:*"))
        if keys:
            client.delete(*keys)


if __name__ == "__main__":
    main()
