"""Benchmark of Microsoft Graph intake against the local Graph server (issue 16).

    .venv/bin/python -m bench.graph_backlog            # 5,000 corpus messages
    .venv/bin/python -m bench.graph_backlog --quick    # 1,000 messages
    .venv/bin/python -m bench.graph_backlog --pg       # PostgreSQL instead of the SQLite file

A ``kind: graph`` mailbox (client credentials, ``token_url`` and ``graph_base_url`` pointing at
``bench/graph_server.py`` on loopback) finds a backlog of ``--n`` ``bench.corpus`` messages
(2-200 KB, realistic MIME) in its inbox, all received after its ``since``. Measured: from
``GraphService.start()`` until every message is stored *and* marked read (``graph_messages.acked``
for all), i.e. the delta pages, one ``$value`` and one ``PATCH isRead`` per message, and the
commits. Intake only: stored ids are handed to a no-op (routing is measured by ``bench.route``).
The local server answers on the same 2 cores, so its own work is part of the time.

The last line is one JSON object with ``ingested_per_s``, ``token_requests`` (requests to the
token endpoint during the run), ``token_requests_per_1000`` and details.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET_KEY = "bench-graph-secret"


def run(n: int, *, pg: bool, page_size: int) -> dict:
    from sqlalchemy import func, select

    from admin_api.services.mailboxes import create_mailbox
    from bench.corpus import generate
    from bench.imap_backlog import _database
    from core.settings import Settings
    from ingest.graph import GraphService
    from models import GraphMessage
    from models.db import get_engine, session_scope
    from bench.graph_server import GraphServer

    import multiprocessing

    import httpx

    from bench.graph_server import serve_corpus

    workdir = tempfile.mkdtemp(prefix="tp-bench-graph-")
    url, drop = _database(pg, workdir)
    engine = get_engine(url)
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    parent, child = multiprocessing.Pipe()
    server_process = multiprocessing.get_context("spawn").Process(
        target=serve_corpus, args=(n, 16, past, child), daemon=True)
    server_process.start()
    graph = GraphServer(port=parent.recv())  # the child's; only its URLs and secrets are used here
    try:
        with session_scope(engine) as session:
            mailbox = create_mailbox(
                session, name="support", kind="graph", user="support@msp.example",
                graph_base_url=graph.url, since=past - timedelta(minutes=1),
                oauth2={"provider": "microsoft", "client_id": graph.client_id,
                        "client_secret": graph.client_secret, "token_url": graph.token_url},
                secret_key=SECRET_KEY,
            )
            session.flush()
            mailbox_id = mailbox.id
        total_bytes = sum(len(raw) for raw in generate(n, seed=16))
        settings = Settings(database_url=url, secret_key=SECRET_KEY, graph_poll_seconds=0.2,
                            graph_page_size=page_size)

        def acked() -> int:
            with session_scope(engine) as session:
                return session.scalar(select(func.count(GraphMessage.id)).where(
                    GraphMessage.mailbox_id == mailbox_id, GraphMessage.acked.is_(True)))

        load = os.getloadavg()[0]
        began = time.monotonic()
        service = GraphService(engine=engine, settings=settings, hand_over=lambda _id: True).start()
        try:
            deadline = began + 600
            while acked() < n and time.monotonic() < deadline:
                time.sleep(0.05)
            elapsed = time.monotonic() - began
        finally:
            service.stop(30)
        done = acked()
        stats = httpx.get(f"{graph.url}/_stats").json()
        read = stats["read"]
        return {
            "messages": n, "stored_and_marked_read": done, "read_on_server": read,
            "seconds": round(elapsed, 2), "ingested_per_s": round(done / elapsed, 1),
            "mb": round(total_bytes / 1e6, 1), "page_size": page_size,
            "token_requests": stats["token_requests"],
            "token_requests_per_1000": round(stats["token_requests"] * 1000 / max(1, done), 3),
            "api_requests": stats["api_requests"], "database": "postgresql" if pg else "sqlite",
            "loadavg_1m_at_start": round(load, 2),
        }
    finally:
        server_process.kill()
        server_process.join(10)
        from models.db import dispose_engines

        dispose_engines()
        drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="1,000 messages")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args(argv)
    n = 1000 if args.quick else args.n
    result = run(n, pg=args.pg, page_size=args.page_size)
    print(f"{result['stored_and_marked_read']:,} of {n:,} Graph messages stored and marked read "
          f"in {result['seconds']} s ({result['ingested_per_s']}/s); "
          f"{result['token_requests']} token request(s)", file=sys.stderr)
    print(json.dumps(result))
    return 0 if result["stored_and_marked_read"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
