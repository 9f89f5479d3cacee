"""Benchmark: messages routed per second on PostgreSQL against the bare stdlib parse of the same mail.

    python -m bench.route            # 10,000 messages (issue 2), a few minutes
    python -m bench.route --quick    # 1,000 messages; last line is one JSON object

The corpus comes from ``bench.corpus`` (2–200 KB, ~30 % attachments, ~50 % multipart/alternative,
~20 % replies, mixed charsets, auto-replies, duplicates, wrong-client tags). Every message is
stored first (``ingest.store.store_inbound``, not timed: that is ingestion), then routed in one
process as a worker routes a backlog: ``routing.batch.route_batch`` on up to ``--batch`` ready ids
at a time (``TICKETPOST_ROUTE_BATCH_SIZE``, 32: one transaction, pipelined on PostgreSQL, one
commit), or with ``--batch 1`` one ``routing.pipeline.route_inbound`` transaction per message:
parse + decisions + commit, timed. In the
same run, on the same bytes, in ONE thread each, the baselines:

* the stdlib parse with ``policy.default`` (the headline baseline, ``ratio``/``ratio_one_thread``):
  ``email.message_from_bytes(raw, policy=policy.default)`` plus reading the body
  (``get_body(('plain', 'html')).get_content()``). ``policy.default`` is the stdlib's slowest mode:
  it parses every header into structured objects;
* the stdlib ``compat32`` header parse (``BytesHeaderParser(policy=compat32)`` and reading
  From, To, Subject, Message-ID, In-Reply-To and References): much cheaper, it reads no body
  (``ratio_compat32``).

Routing is measured in one thread (the headline) and, beside it and labelled, with ``--threads``
threads (default 2, a worker's default) on a second private database holding the same corpus
(``routed_per_s_multi``, ``ratio_multi``: several routing threads against one parsing thread).
The measurements take turns in chunks of 250 messages (the parses, routing in one thread, routing
in N threads), so load from other processes on a shared machine weighs on all of them alike.
Statements are counted at the driver, BEGIN and COMMIT included (``bench/statements.py``).

The database is a private PostgreSQL database created for the run and dropped afterwards
(``--database-url`` to use another, e.g. SQLite; then only the one-thread figure is measured). The
per-sender rate limit is set high so the storm guard's query still runs but the corpus's busy
senders are not cut off. The run checks each outcome against the corpus's ``X-Corpus-Kind`` and
prints the mismatches. The last line is one JSON object; it carries ``/proc/loadavg`` at the start
and the end of the timed part.
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
from email.parser import BytesHeaderParser

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


_COMPAT32_HEADERS = BytesHeaderParser(policy=policy.compat32)


def compat32_headers(raw: bytes) -> tuple:
    """The cheap baseline: the stdlib's compat32 header parse, reading the headers routing needs."""
    msg = _COMPAT32_HEADERS.parsebytes(raw)
    return (msg["From"], msg["To"], msg["Subject"], msg["Message-ID"], msg["In-Reply-To"],
            msg["References"])


def load_average() -> str:
    """``/proc/loadavg``'s first three fields (1, 5, 15 minutes)."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


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


class Routing:
    """One database holding the stored corpus, and routing it chunk by chunk with T threads."""

    def __init__(self, url: str, corpus: list[bytes], threads: int, settings_url: str, batch: int = 1) -> None:
        from bench.corpus import seed_database
        from bench.statements import Count
        from core.settings import Settings
        from ingest.store import store_inbound
        from models.db import make_engine, migrate

        migrate(url)
        self.engine = make_engine(url)
        seed_database(self.engine)
        self.settings = Settings(database_url=settings_url, support_addresses=["support@msp.example"],
                                 rate_limit_per_hour=1_000_000)
        self.threads, self.batch = threads, batch
        t0 = time.perf_counter()
        self.ids = [store_inbound(raw=raw, source="smtp", envelope_from="sender@example.net",
                                  envelope_to=["support@msp.example"], engine=self.engine) for raw in corpus]
        print(f"stored for {threads} thread{'s' if threads > 1 else ''}: "
              f"{len(corpus) / (time.perf_counter() - t0):.0f} messages/s (not part of the routing rate)",
              file=sys.stderr)
        self.pool = None
        if threads > 1:  # a worker process's threads: each routes whole messages, in corpus order
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=threads)
        self.statements = Count()  # at the driver: routing.prepared bypasses SQLAlchemy's events
        self.seconds = self.cpu_seconds = 0.0
        self.outcomes: list[str] = []

    def route(self, begin: int, end: int, profiler=None) -> None:
        from bench.statements import counting
        from routing.pipeline import route_inbound

        def one(inbound_id: int) -> str:
            return route_inbound(inbound_id, engine=self.engine, settings=self.settings).outcome

        def batch(ids: list[int]) -> list[str]:
            """As a worker given several ready ids: one transaction (routing.batch)."""
            from routing.batch import route_batch

            done = route_batch(ids, engine=self.engine, settings=self.settings)
            return [done.results[i].outcome if i in done.results else one(i) for i in ids]

        chunk_ids = self.ids[begin:end]
        groups = [chunk_ids[i:i + self.batch] for i in range(0, len(chunk_ids), self.batch)]
        gc.collect()
        if profiler:
            profiler.enable()
        with counting(self.engine, self.statements):
            start, start_cpu = time.perf_counter(), time.process_time()
            if self.batch > 1:
                for outcomes in (map(batch, groups) if self.pool is None else self.pool.map(batch, groups)):
                    self.outcomes += outcomes
            elif self.pool is None:
                self.outcomes += [one(inbound_id) for inbound_id in chunk_ids]
            else:
                self.outcomes += list(self.pool.map(one, chunk_ids))
            self.seconds += time.perf_counter() - start
            self.cpu_seconds += time.process_time() - start_cpu
        if profiler:
            profiler.disable()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        self.engine.dispose()


def _mismatches(corpus: list[bytes], outcomes: list[str]) -> Counter:
    from bench.corpus import corpus_kind

    mismatches = Counter()
    for raw, outcome in zip(corpus, outcomes, strict=True):
        kind, _seq = corpus_kind(raw)
        if outcome not in EXPECTED.get(kind, {outcome}):
            mismatches[(kind, outcome)] += 1
    return mismatches


def run(n: int, seed: int, urls: list[str], profile: str | None, threads: int = 2, batch: int = 1) -> dict:
    """Route the corpus in one thread (``urls[0]``) and, given a second URL, in ``threads``."""
    from bench.corpus import generate

    t0 = time.perf_counter()
    corpus = list(generate(n, seed=seed))
    size = sum(len(r) for r in corpus)
    print(f"corpus: {n} messages, {size / 1e6:.1f} MB (mean {size / n / 1024:.1f} KB), "
          f"generated in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    sides = [Routing(urls[0], corpus, 1, urls[0], batch)]
    if len(urls) > 1 and threads > 1:
        sides.append(Routing(urls[1], corpus, threads, urls[1], batch))

    # The measurements take turns chunk by chunk, so a change in the machine's load (it is
    # shared) weighs on all of them alike instead of on whichever ran during it.
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    load_start = load_average()
    stdlib_s = compat32_s = parse_s = 0.0
    for begin in range(0, n, CHUNK):
        chunk = corpus[begin:begin + CHUNK]
        stdlib_s += timed(lambda chunk=chunk: [stdlib_parse(raw) for raw in chunk])
        compat32_s += timed(lambda chunk=chunk: [compat32_headers(raw) for raw in chunk])
        parse_s += timed(lambda chunk=chunk: [routing_parse(raw) for raw in chunk])
        for i, side in enumerate(sides):
            side.route(begin, begin + CHUNK, profiler if i == 0 else None)
    load_end = load_average()
    for side in sides:
        side.close()

    one = sides[0]
    stdlib_rate, compat32_rate, parse_rate = n / stdlib_s, n / compat32_s, n / parse_s
    routed_rate = n / one.seconds
    print(f"load average at start / end: {load_start} / {load_end}", file=sys.stderr)
    print(f"stdlib parse (policy.default + body), 1 thread: {stdlib_rate:.0f} messages/s", file=sys.stderr)
    print(f"stdlib compat32 header parse (no body), 1 thread: {compat32_rate:.0f} messages/s", file=sys.stderr)
    print(f"routing's own parse + body, no database: {parse_rate:.0f} messages/s "
          f"({parse_rate / stdlib_rate:.1f}x the policy.default parse)", file=sys.stderr)
    count = one.statements
    print(f"routed (parse + decisions + commit), 1 thread: {routed_rate:.0f} messages/s = "
          f"{routed_rate / stdlib_rate:.2f}x policy.default, {routed_rate / compat32_rate:.2f}x compat32 "
          f"headers; this process's CPU {one.cpu_seconds / n * 1000:.2f} ms per message; per message "
          f"{count.statements / n:.2f} statements with BEGIN/COMMIT ({count.queries / n:.2f} without), "
          f"{count.durable_commits / n:.2f} commits", file=sys.stderr)
    result = {
        "routed_per_s": round(routed_rate, 1),
        "stdlib_parse_per_s": round(stdlib_rate, 1),
        "ratio": round(routed_rate / stdlib_rate, 3),
        "ratio_one_thread": round(routed_rate / stdlib_rate, 3),
        "compat32_header_parse_per_s": round(compat32_rate, 1),
        "ratio_compat32": round(routed_rate / compat32_rate, 3),
        "own_parse_per_s": round(parse_rate, 1),
        "n": n,
        "cpu_ms_per_message": round(one.cpu_seconds / n * 1000, 2),
        "statements_per_message": round(count.statements / n, 2),
        "queries_per_message": round(count.queries / n, 2),
        "commits_per_message": round(count.durable_commits / n, 2),
        "mismatches": 0,
        "load_average_start": load_start,
        "load_average_end": load_end,
    }
    if len(sides) > 1:
        multi = sides[1]
        multi_rate = n / multi.seconds
        print(f"routed, {multi.threads} threads in one process (the worker's shape; against ONE parsing "
              f"thread): {multi_rate:.0f} messages/s = {multi_rate / stdlib_rate:.2f}x; CPU "
              f"{multi.cpu_seconds / n * 1000:.2f} ms per message", file=sys.stderr)
        multi_mismatches = _mismatches(corpus, multi.outcomes)
        if multi_mismatches:  # expected: parallel routing reorders ticket numbers (see BENCHMARKS.md)
            print(f"  {multi.threads}-thread outcomes differing from the corpus's one-by-one expectation: "
                  + ", ".join(f"{k} -> {o}: {c}" for (k, o), c in multi_mismatches.most_common()),
                  file=sys.stderr)
        result.update({"threads_multi": multi.threads, "routed_per_s_multi": round(multi_rate, 1),
                       "ratio_multi": round(multi_rate / stdlib_rate, 3),
                       "cpu_ms_per_message_multi": round(multi.cpu_seconds / n * 1000, 2)})
    if profiler:
        profiler.dump_stats(profile)
        print(f"profile written to {profile}", file=sys.stderr)

    by_outcome = Counter(one.outcomes)
    mismatches = _mismatches(corpus, one.outcomes)
    result["mismatches"] = sum(mismatches.values())
    print("outcomes (1 thread): " + ", ".join(f"{k} {v}" for k, v in by_outcome.most_common()), file=sys.stderr)
    if mismatches:
        print("UNEXPECTED outcomes (corpus kind -> outcome): "
              + ", ".join(f"{k} -> {o}: {c}" for (k, o), c in mismatches.most_common()), file=sys.stderr)
    else:
        print("every outcome matches the corpus's expectation", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.route", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages instead of 10,000")
    parser.add_argument("--n", type=int, default=None, help="number of messages (overrides --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None,
                        help="route into this (migrated or empty) database instead of a private PostgreSQL "
                             "one (one thread only)")
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="write a cProfile of the one-thread routing loop")
    parser.add_argument("--threads", type=int, default=2,
                        help="also route the corpus with this many threads in one process, as a worker does "
                             "(TICKETPOST_WORKER_THREADS, default 2), on a second private database; 1: skip")
    parser.add_argument("--batch", type=int, default=None,
                        help="route up to this many ready ids at once, as a worker given a batch does "
                             "(routing.batch: one transaction, a savepoint each, one commit); default "
                             "TICKETPOST_ROUTE_BATCH_SIZE (32); 1: one transaction per message")
    args = parser.parse_args(argv)
    if args.batch is None:
        from core.settings import Settings

        args.batch = Settings().route_batch_size
    n = args.n or (1000 if args.quick else 10_000)
    if args.database_url:
        result = run(n, args.seed, [args.database_url], args.profile, 1, args.batch)
    elif args.threads > 1:
        with PrivateDatabase(PG_ADMIN_URL) as url, PrivateDatabase(PG_ADMIN_URL) as url_multi:
            result = run(n, args.seed, [url, url_multi], args.profile, args.threads, args.batch)
    else:
        with PrivateDatabase(PG_ADMIN_URL) as url:
            result = run(n, args.seed, [url], args.profile, 1, args.batch)
    result["batch"] = args.batch
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
