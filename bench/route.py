"""Benchmark: messages routed per second on PostgreSQL against the bare stdlib parse of the same mail.

    python -m bench.route            # 10,000 messages (issue 2), a few minutes
    python -m bench.route --quick    # 1,000 messages; last line is one JSON object

The corpus comes from ``bench.corpus`` (2–200 KB, ~30 % attachments, ~50 % multipart/alternative,
~20 % replies, mixed charsets, auto-replies, duplicates, wrong-client tags). Every message is
stored first (``ingest.store.store_inbound``, not timed: that is ingestion), then routed one by one
with ``routing.pipeline.route_inbound`` in one process: parse + decisions + commit, timed. In the
same run the bare stdlib rate is measured on the same bytes: ``email.message_from_bytes(raw,
policy=policy.default)`` plus reading the body (``get_body(('plain', 'html')).get_content()``).
The measurements take turns in chunks of 250 messages (stdlib parse, routing's own parse, routing),
so load from other processes on a shared machine weighs on all of them alike.

The database is a private PostgreSQL database created for the run and dropped afterwards
(``--database-url`` to use another, e.g. SQLite). The per-sender rate limit is set high so the
storm guard's query still runs but the corpus's busy senders are not cut off. The run checks
each outcome against the corpus's ``X-Corpus-Kind`` and prints the mismatches.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import uuid
from collections import Counter
from email import message_from_bytes, policy

from routing.mailparse import parse_message

CHUNK = 250  # messages per turn of the interleaved measurements

EXPECTED = {
    "new": {"ticket_created"},
    "reply": {"ticket_updated"},
    "auto_reply": {"ignored_auto_reply"},
    "duplicate": {"ignored_duplicate"},
    "wrong_client_tag": {"ticket_created"},
}
PG_ADMIN_URL = os.environ.get("TICKETPOST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def stdlib_parse(raw: bytes) -> str:
    """The baseline: full policy.default parse plus reading the body text."""
    msg = message_from_bytes(raw, policy=policy.default)
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        return body.get_content()
    except (LookupError, ValueError, AssertionError, KeyError):
        return ""


def routing_parse(raw: bytes) -> None:
    """The parse step alone (headers, then body and attachments as the write step reads them)."""
    _ = parse_message(raw).body


def timed(work) -> float:
    gc.collect()
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


class PrivateDatabase:
    """A PostgreSQL database that exists for this run only."""

    def __init__(self, admin_url: str):
        from sqlalchemy import create_engine

        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.name = f"tp_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.url = admin_url.rsplit("/", 1)[0] + "/" + self.name

    def __enter__(self) -> str:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        return self.url

    def __exit__(self, *exc) -> None:
        from sqlalchemy import text

        from models.db import dispose_engines

        dispose_engines()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def run(n: int, seed: int, url: str, profile: str | None, threads: int = 1) -> dict:
    from bench.corpus import corpus_kind, generate, seed_database
    from bench.statements import Count, counting
    from ingest.store import store_inbound
    from models.db import make_engine, migrate
    from routing.pipeline import route_inbound
    from core.settings import Settings

    t0 = time.perf_counter()
    corpus = list(generate(n, seed=seed))
    size = sum(len(r) for r in corpus)
    print(f"corpus: {n} messages, {size / 1e6:.1f} MB (mean {size / n / 1024:.1f} KB), "
          f"generated in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    migrate(url)
    engine = make_engine(url)
    seed_database(engine)
    settings = Settings(database_url=url, support_addresses=["support@msp.example"],
                        rate_limit_per_hour=1_000_000)

    t0 = time.perf_counter()
    ids = [store_inbound(raw=raw, source="smtp", envelope_from="sender@example.net",
                         envelope_to=["support@msp.example"], engine=engine) for raw in corpus]
    store_s = time.perf_counter() - t0
    print(f"stored: {n / store_s:.0f} messages/s (not part of the routing rate)", file=sys.stderr)

    # The three measurements take turns chunk by chunk, so a change in the machine's load (it is
    # shared) weighs on all of them alike instead of on whichever ran during it.
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    pool = None
    if threads > 1:  # a worker process's threads: each routes whole messages, in corpus order
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=threads)
    statements = Count()  # at the driver: routing.prepared bypasses SQLAlchemy's events

    stdlib_s = parse_s = route_s = route_cpu_s = 0.0
    outcomes: list[str] = []
    for begin in range(0, n, CHUNK):
        chunk, chunk_ids = corpus[begin:begin + CHUNK], ids[begin:begin + CHUNK]
        stdlib_s += timed(lambda chunk=chunk: [stdlib_parse(raw) for raw in chunk])
        parse_s += timed(lambda chunk=chunk: [routing_parse(raw) for raw in chunk])
        gc.collect()
        if profiler:
            profiler.enable()
        with counting(engine, statements):
            start, start_cpu = time.perf_counter(), time.process_time()
            if pool is None:
                for inbound_id in chunk_ids:
                    outcomes.append(route_inbound(inbound_id, engine=engine, settings=settings).outcome)
            else:
                outcomes += [r.outcome for r in pool.map(
                    lambda i: route_inbound(i, engine=engine, settings=settings), chunk_ids)]
            route_s += time.perf_counter() - start
            route_cpu_s += time.process_time() - start_cpu
        if profiler:
            profiler.disable()
    if pool is not None:
        pool.shutdown()
    stdlib_rate, parse_rate, routed_rate = n / stdlib_s, n / parse_s, n / route_s
    print(f"stdlib parse (policy.default + body): {stdlib_rate:.0f} messages/s", file=sys.stderr)
    print(f"routing's own parse + body, no database: {parse_rate:.0f} messages/s "
          f"({parse_rate / stdlib_rate:.1f}x the stdlib)", file=sys.stderr)
    print(f"routed (parse + decisions + commit), {threads} thread{'s' if threads > 1 else ''}: "
          f"{routed_rate:.0f} messages/s; this process's CPU {route_cpu_s / n * 1000:.2f} ms and "
          f"{statements.statements / n:.2f} SQL statements (without BEGIN/COMMIT) per message", file=sys.stderr)
    if profiler:
        profiler.dump_stats(profile)
        print(f"profile written to {profile}", file=sys.stderr)

    by_outcome = Counter(outcomes)
    mismatches = Counter()
    for raw, outcome in zip(corpus, outcomes):
        kind, _seq = corpus_kind(raw)
        if outcome not in EXPECTED.get(kind, {outcome}):
            mismatches[(kind, outcome)] += 1
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in by_outcome.most_common()), file=sys.stderr)
    if mismatches:
        print("UNEXPECTED outcomes (corpus kind -> outcome): "
              + ", ".join(f"{k} -> {o}: {c}" for (k, o), c in mismatches.most_common()), file=sys.stderr)
    else:
        print("every outcome matches the corpus's expectation", file=sys.stderr)
    engine.dispose()
    return {
        "routed_per_s": round(routed_rate, 1),
        "stdlib_parse_per_s": round(stdlib_rate, 1),
        "ratio": round(routed_rate / stdlib_rate, 3),
        "n": n,
        "cpu_ms_per_message": round(route_cpu_s / n * 1000, 2),
        "statements_per_message": round(statements.statements / n, 2),
        "mismatches": sum(mismatches.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.route", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages instead of 10,000")
    parser.add_argument("--n", type=int, default=None, help="number of messages (overrides --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None,
                        help="route into this (migrated or empty) database instead of a private PostgreSQL one")
    parser.add_argument("--profile", metavar="FILE", default=None, help="write a cProfile of the routing loop")
    parser.add_argument("--threads", type=int, default=1,
                        help="route with this many threads in the one process, as a worker does "
                             "(TICKETPOST_WORKER_THREADS, default 2); default 1")
    args = parser.parse_args(argv)
    n = args.n or (1000 if args.quick else 10_000)
    if args.database_url:
        result = run(n, args.seed, args.database_url, args.profile, args.threads)
    else:
        with PrivateDatabase(PG_ADMIN_URL) as url:
            result = run(n, args.seed, url, args.profile, args.threads)
    print(json.dumps({k: result[k] for k in ("routed_per_s", "stdlib_parse_per_s", "ratio",
                                             "cpu_ms_per_message", "statements_per_message")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
