"""Benchmark of the admin API's lookups on PostgreSQL under uvicorn (issue 5).

    .venv/bin/python bench/api.py            # 10,000 clients, 30,000 domains, 50,000 contacts;
                                             # 2,000 requests per endpoint
    .venv/bin/python bench/api.py --quick    # same data, 300 requests per endpoint

It creates a private database (``tp_bench_api_<pid>``) on the server of ``--pg-url``, migrates it,
bulk-loads the data, serves the API with ``ticketpost api`` (uvicorn, one worker) on a free
loopback port and measures, request after request over one keep-alive connection (concurrency 1;
the client is the standard library's ``http.client``, which costs well under a millisecond per
request, so the load generator takes little of the 2 cores from the server):

* ``GET /api/v1/domains/{domain}``: sender domains, half of them subdomains of a registered one
  (``mail.eu.c001234-1.example``), a tenth unknown (404);
* ``GET /api/v1/clients?domain=``: a registered domain, exactly.

It also counts the SQL statements of ``GET /api/v1/clients?limit=100`` (clients with domains and
primary contacts; in-process, with a SQLAlchemy event listener) for 10 and for 100 clients.
The database is dropped at the end. The last line is one JSON object with ``lookup_p99_ms`` (the
worse p99 of the two lookups) and ``list_queries`` (plus details).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import warnings
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("TICKETPOST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TOKEN = "bench-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(admin_url: str) -> str:
    from sqlalchemy import create_engine, text

    name = f"tp_bench_api_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def load(url: str, *, clients: int, domains_per_client: int, contacts_per_client: int) -> float:
    """Bulk-insert the data set; returns the seconds it took."""
    from sqlalchemy import insert

    from models import Client, ClientDomain, Contact
    from models.db import make_engine

    started = time.perf_counter()
    engine = make_engine(url)
    from datetime import datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(Client), [
            {"id": i, "name": f"Client {i:06d} GmbH", "tickets_only_by_primary_contact": i % 3 == 0,
             "require_authenticated_sender": False, "created_at": now, "updated_at": now}
            for i in range(1, clients + 1)
        ])
        conn.execute(insert(ClientDomain), [
            {"client_id": i, "domain": domain(i, j)}
            for i in range(1, clients + 1) for j in range(domains_per_client)
        ])
        conn.execute(insert(Contact), [
            {"client_id": i, "first_name": f"First{k}", "last_name": f"Last{i}",
             "email": f"user{k}@{domain(i, 0)}", "is_primary": k == 0, "ignore_email": False,
             "auto_created": False, "created_at": now, "updated_at": now}
            for i in range(1, clients + 1) for k in range(contacts_per_client)
        ])
        from sqlalchemy import text

        conn.execute(text("SELECT setval('clients_id_seq', (SELECT max(id) FROM clients))"))
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


def domain(i: int, j: int) -> str:
    return f"c{i:06d}-{j}.example"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(conn: http.client.HTTPConnection, path: str) -> int:
    """GET ``path`` as the admin over the keep-alive connection ``conn``; the status code."""
    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    response = conn.getresponse()
    response.read()
    return response.status


def measure(conn: http.client.HTTPConnection, paths: list[str], *, server_pid: int) -> dict:
    statuses: dict[int, int] = {}
    times: list[float] = []
    cpu_before = cpu_seconds(server_pid)
    for path in paths:
        t0 = time.perf_counter()
        status = get(conn, path)
        times.append((time.perf_counter() - t0) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
    cpu_ms = (cpu_seconds(server_pid) - cpu_before) * 1000 / len(paths)
    return {
        "requests": len(paths),
        "server_cpu_ms_per_request": round(cpu_ms, 2),
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "max_ms": round(max(times), 2),
        "statuses": statuses,
    }


def count_list_queries(url: str, limit: int) -> int:
    """SQL statements of one GET /api/v1/clients?limit=N, token check included."""
    from sqlalchemy import event

    from admin_api.app import create_app
    from models.db import make_engine
    from core.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    engine = make_engine(url)
    app = create_app(engine=engine, settings=Settings(database_url=url, admin_token=TOKEN))
    statements: list[str] = []
    with TestClient(app) as http:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        http.get("/api/v1/clients?limit=1", headers=headers)  # token registered, last_used set

        def record(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        response = http.get(f"/api/v1/clients?limit={limit}", headers=headers)
        event.remove(engine, "before_cursor_execute", record)
        assert response.status_code == 200 and len(response.json()["items"]) == limit
    engine.dispose()
    return len(statements)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 requests per endpoint")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    n = args.requests or (300 if args.quick else 2000)

    import httpx

    from models.db import migrate

    url = create_database(args.pg_url)
    proc = None
    try:
        migrate(url)
        load_s = load(url, clients=args.clients, domains_per_client=3, contacts_per_client=5)
        print(f"loaded {args.clients} clients, {args.clients * 3} domains, {args.clients * 5} contacts "
              f"in {load_s:.1f}s", file=sys.stderr)

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
        env.update(TICKETPOST_DATABASE_URL=url, TICKETPOST_ADMIN_TOKEN=TOKEN, TICKETPOST_LOG_LEVEL="WARNING")
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "ticketpost"), "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        rng = random.Random(args.seed)

        def sender_domain() -> str:
            i, j = rng.randint(1, args.clients), rng.randrange(3)
            roll = rng.random()
            if roll < 0.1:
                return f"unknown-{rng.randrange(10**6)}.example"
            if roll < 0.55:
                return f"mail.eu.{domain(i, j)}"
            return domain(i, j).upper()

        lookup_paths = [f"/api/v1/domains/{sender_domain()}" for _ in range(n)]
        filter_paths = [
            f"/api/v1/clients?domain={domain(rng.randint(1, args.clients), rng.randrange(3))}" for _ in range(n)
        ]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for path in lookup_paths[:50] + filter_paths[:50]:  # warm-up: pool, prepared statements
                get(conn, path)
            load_before = os.getloadavg()[0]
            lookup = measure(conn, lookup_paths, server_pid=proc.pid)
            by_domain = measure(conn, filter_paths, server_pid=proc.pid)
            load_after = os.getloadavg()[0]
        finally:
            conn.close()

        list_10 = count_list_queries(url, 10)
        list_100 = count_list_queries(url, 100)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        from models.db import dispose_engines

        dispose_engines()
        drop_database(args.pg_url, url)

    print(f"GET /api/v1/domains/{{domain}}    {lookup}")
    print(f"GET /api/v1/clients?domain=     {by_domain}")
    print(f"GET /api/v1/clients?limit=10    {list_10} SQL statements")
    print(f"GET /api/v1/clients?limit=100   {list_100} SQL statements")
    print(json.dumps({
        "lookup_p99_ms": max(lookup["p99_ms"], by_domain["p99_ms"]),
        "domain_lookup_p99_ms": lookup["p99_ms"],
        "clients_by_domain_p99_ms": by_domain["p99_ms"],
        "domain_lookup_p50_ms": lookup["p50_ms"],
        "domain_lookup_server_cpu_ms": lookup["server_cpu_ms_per_request"],
        "clients_by_domain_server_cpu_ms": by_domain["server_cpu_ms_per_request"],
        "clients_by_domain_p50_ms": by_domain["p50_ms"],
        "list_queries": list_100,
        "list_queries_10": list_10,
        "load_average_1m": round(load_after, 2),
        "load_average_1m_at_start": round(load_before, 2),
        "requests_per_endpoint": n,
        "clients": args.clients,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
