# ruff: noqa: N999 - the file name bench/import.py is asked for
"""Benchmark of the bulk import (SPEC §8) on PostgreSQL: clients with domains, then contacts.

    .venv/bin/python bench/import.py            # 10,000 clients (30,000 domains) + 50,000 contacts,
                                                # then the same at 10x in a fresh database for RSS
    .venv/bin/python bench/import.py --quick    # 1,000 clients + 5,000 contacts, no 10x run

Each import runs in a child process of its own, so the peak RSS it reports (ru_maxrss) belongs
to that import alone. The database is a private one (``tp_bench_<pid>``) created on the server
of ``--pg-url`` and dropped at the end. The last line printed is one JSON object with
``rows_per_s``, ``total_s`` and ``peak_rss_mb`` of the base-size run (plus details).
"""

from __future__ import annotations

import argparse
import codecs
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("TICKETPOST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FIRST = ["Anna", "Ben", "Chloé", "David", "Eva", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karin",
         "Lukas", "Marie", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sven", "Tina"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
        "Hoffmann", "O'Brien", "García", "Nowak", "Smith", "Jones", "Brown", "Taylor", "Wilson"]
CITIES = ["Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Leipzig"]


def write_files(directory: Path, clients: int, domains_per_client: int, contacts_per_client: int,
                seed: int = 7) -> tuple[Path, Path]:
    """A clients.csv like Excel writes it (``;``, UTF-8 BOM) and a contacts.csv like Google Sheets."""
    rng = random.Random(seed)
    clients_path = directory / f"clients-{clients}.csv"
    contacts_path = directory / f"contacts-{clients}.csv"
    with clients_path.open("w", encoding="utf-8", newline="") as out:
        out.write(codecs.BOM_UTF8.decode("utf-8"))
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["Name", "Rank", "Domains", "Business_ID", "Phone", "Address", "City",
                         "Zip_Code", "Country", "Notes", "Tickets_Only_By_Primary_Contact"])
        for i in range(clients):
            domains = "; ".join(f"client{i:06d}-{j}.com" for j in range(domains_per_client))
            writer.writerow([
                f"Client {i:06d} GmbH", rng.choice(["A", "B", "C"]), domains, f"DE{i:09d}",
                f"+49 30 {rng.randrange(10**6, 10**7)}", f"Hauptstraße {i % 200 + 1}\n2. OG",
                rng.choice(CITIES), f"{rng.randrange(10000, 99999)}", "Germany",
                "Serviced since 2019; remote monitoring", rng.choice(["TRUE", "FALSE", ""]),
            ])
    with contacts_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["client", "first_name", "last_name", "email", "phone", "job_title",
                         "is_primary", "ignore_email"])
        for i in range(clients):
            for k in range(contacts_per_client):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                local = f"{first}.{last}{k}".lower().replace("'", "")
                writer.writerow([
                    f"Client {i:06d} GmbH", first, last, f"{local}@client{i:06d}-0.com",
                    f"+49 171 {rng.randrange(10**6, 10**7)}", rng.choice(["CEO", "IT", "Office"]),
                    "TRUE" if k == 0 else "FALSE", "FALSE",
                ])
    return clients_path, contacts_path


def child(url: str, clients_csv: str, contacts_csv: str) -> None:
    """Import both files into ``url`` (timed), then print one JSON line with times and RSS."""
    from admin_api.services.imports import import_file
    from models.db import make_engine, session_factory

    engine = make_engine(url)
    result: dict = {}
    for kind, path in (("clients", clients_csv), ("contacts", contacts_csv)):
        for attempt in ("first", "again"):
            started, cpu_started = time.perf_counter(), time.process_time()
            with open(path, "rb") as source, session_factory(engine)() as session:
                report = import_file(session=session, kind=kind, source=source)
                if report.applied:
                    session.commit()
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            if report.errors:
                raise SystemExit(f"{kind}: {report.errors[:5]}")
            result[f"{kind}_{attempt}"] = {"s": round(elapsed, 3), "cpu_s": round(cpu, 3), **{
                k: v for k, v in report.as_dict().items() if k in ("created", "updated", "unchanged")}}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    engine.dispose()
    print(json.dumps(result))


def run_in_fresh_database(admin_url: str, clients_csv: Path, contacts_csv: Path) -> dict:
    from sqlalchemy import create_engine, text

    from models.db import migrate

    name = f"tp_bench_{os.getpid()}_{int(time.time())}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        migrate(url)
        out = subprocess.run(
            [sys.executable, __file__, "--child", url, str(clients_csv), str(contacts_csv)],
            check=True, capture_output=True, text=True, cwd=ROOT)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the base size, no 10x run")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--no-10x", action="store_true", help="skip the 10x run")
    parser.add_argument("--child", nargs=3, metavar=("URL", "CLIENTS", "CONTACTS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    clients = args.clients // 10 if args.quick else args.clients
    scales = [clients] if args.quick or args.no_10x else [clients, clients * 10]
    results = {}
    with tempfile.TemporaryDirectory(prefix="tp-bench-") as tmp:
        for n in scales:
            clients_csv, contacts_csv = write_files(Path(tmp), n, 3, 5)
            size_mb = (clients_csv.stat().st_size + contacts_csv.stat().st_size) / 2**20
            result = run_in_fresh_database(args.pg_url, clients_csv, contacts_csv)
            result["file_mb"] = round(size_mb, 1)
            results[n] = result
            total = result["clients_first"]["s"] + result["contacts_first"]["s"]
            print(f"{n} clients ({3 * n} domains) + {5 * n} contacts, {size_mb:.1f} MB of CSV: "
                  f"clients {result['clients_first']['s']} s (our CPU "
                  f"{result['clients_first']['cpu_s']} s), contacts {result['contacts_first']['s']} s "
                  f"(our CPU {result['contacts_first']['cpu_s']} s), total {total:.2f} s; "
                  "again (unchanged): "
                  f"{result['clients_again']['s']} s + {result['contacts_again']['s']} s; "
                  f"peak RSS {result['peak_rss_mb']} MB", flush=True)
    base = results[clients]
    total_s = base["clients_first"]["s"] + base["contacts_first"]["s"]
    rows = clients + 5 * clients
    summary = {"rows_per_s": round(rows / total_s, 1), "total_s": round(total_s, 3),
               "peak_rss_mb": base["peak_rss_mb"], "clients": clients, "contacts": 5 * clients}
    if len(scales) > 1:
        big = results[scales[1]]
        summary["peak_rss_mb_10x"] = big["peak_rss_mb"]
        summary["total_s_10x"] = round(big["clients_first"]["s"] + big["contacts_first"]["s"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
