"""Benchmark: what answering costs routing, and how fast the dispatcher sends.

    python -m bench.outbox            # 4,000 messages routed each way, 4,000 mails sent
    python -m bench.outbox --quick    # 1,000 and 1,000; last line is one JSON object

1. ``route_ratio_ack_on_off``: routing throughput (``bench.route``'s corpus and method:
   ``routing.pipeline.route_inbound`` one message after another in one process) with
   acknowledgements on, divided by the same with them off. Two private PostgreSQL databases hold
   the same stored corpus; routing takes turns between them in chunks of 100 messages (which
   database goes first alternates), so the shared machine's load weighs on both alike. The
   figure is the median over the chunks of (time off / time on) for the same 100 messages;
   ``route_ratio_totals`` is the ratio of the two overall rates, for comparison. "On" is the worst case: TICKETPOST_OUTBOUND_URL
   set and the per-recipient cap out of the way, so every new ticket writes its acknowledgement
   (outbox row + Message-ID) and is handed to the dispatcher queue (an in-process one here).
2. ``sent_per_s``: the acknowledgements that run wrote, sent by the dispatcher (``send_outbox``'s
   body in TICKETPOST_WORKER_THREADS threads, default 2) to a local SMTP sink in its own process
   (aiosmtpd with STARTTLS and AUTH: ``bench.smtp_sink``), over TICKETPOST_OUTBOX_CONNECTIONS
   connections (default 4), from the first claim to the last recorded ``sent``; more rows are
   added first when the corpus opened fewer tickets than asked.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.route import PG_ADMIN_URL, PrivateDatabase

CHUNK = 100  # messages per turn; each turn routes a chunk into one database, then into the other

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(directory: Path) -> tuple[subprocess.Popen, int, str]:
    """The SMTP sink (STARTTLS + AUTH) in its own process; (process, port, CA file)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.smtp_sink", str(directory), str(port), "--count-only"],
                            cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    info = json.loads(proc.stdout.readline())
    return proc, info["port"], info["cert"]


def route_both(n: int, seed: int, url_off: str, url_on: str, outbound_url: str, ca_file: str) -> dict:
    """Route the same corpus into both databases, alternating chunks; rates of each."""
    from bench.corpus import generate, seed_database
    from bench.statements import Count, counting
    from core.settings import Settings
    from ingest.store import store_inbound
    from models.db import make_engine, migrate
    from routing.broker import setup_broker
    from routing.pipeline import route_inbound

    corpus = list(generate(n, seed=seed))
    base = dict(support_addresses=["support@msp.example"], rate_limit_per_hour=1_000_000)
    runs = {}
    for name, url, extra in (("off", url_off, {}),
                             ("on", url_on, dict(outbound_url=outbound_url, outbound_ca_file=ca_file,
                                                 acknowledge_per_hour=1_000_000))):
        migrate(url)
        engine = make_engine(url)
        seed_database(engine)
        settings = Settings(database_url=url, **base, **extra)
        ids = [store_inbound(raw=raw, source="smtp", envelope_from="sender@example.net",
                             envelope_to=["support@msp.example"], engine=engine) for raw in corpus]
        runs[name] = {"engine": engine, "settings": settings, "ids": ids, "seconds": 0.0, "outcomes": [],
                      "chunks": []}
    setup_broker(runs["on"]["settings"])  # the hand-over goes to an in-process queue nobody drains
    for run in runs.values():
        run["count"] = Count()
        run["cpu"] = 0.0
    for begin in range(0, n, CHUNK):
        for name in (("off", "on") if (begin // CHUNK) % 2 == 0 else ("on", "off")):
            run = runs[name]
            gc.collect()
            with counting(run["engine"], run["count"]):
                start, cpu = time.perf_counter(), time.process_time()
                for inbound_id in run["ids"][begin:begin + CHUNK]:
                    run["outcomes"].append(route_inbound(inbound_id, engine=run["engine"],
                                                         settings=run["settings"]).outcome)
                run["seconds"] += time.perf_counter() - start
                run["chunks"].append(time.perf_counter() - start)
                run["cpu"] += time.process_time() - cpu
    if runs["on"]["outcomes"] != runs["off"]["outcomes"]:
        raise SystemExit("acknowledgements changed routing outcomes")
    rate = {name: n / run["seconds"] for name, run in runs.items()}
    pairs = sorted(off / on for off, on in zip(runs["off"]["chunks"], runs["on"]["chunks"]))
    for run in runs.values():
        run["engine"].dispose()
    return {"routed_per_s_ack_off": round(rate["off"], 1), "routed_per_s_ack_on": round(rate["on"], 1),
            # the same chunk routed back to back with and without: the median is robust to the
            # shared machine's load swings, which the totals are not
            "route_ratio_ack_on_off": round(pairs[len(pairs) // 2], 3),
            "route_ratio_totals": round(rate["on"] / rate["off"], 3),
            "statements_per_message_ack_off": round(runs["off"]["count"].statements / n, 2),
            "statements_per_message_ack_on": round(runs["on"]["count"].statements / n, 2),
            "cpu_ms_per_message_ack_off": round(runs["off"]["cpu"] / n * 1000, 2),
            "cpu_ms_per_message_ack_on": round(runs["on"]["cpu"] / n * 1000, 2),
            "acknowledgements": runs["on"]["outcomes"].count("ticket_created")}


def top_up(url: str, want: int) -> int:
    """Make sure at least ``want`` acknowledgements are pending (copies of the first); how many are."""
    from sqlalchemy import func, insert, select

    from models import OutboxItem
    from models.db import make_engine

    engine = make_engine(url)
    table = OutboxItem.__table__
    with engine.begin() as db:
        have = db.scalar(select(func.count()).select_from(table).where(table.c.status == "pending"))
        template = db.execute(select(table).where(table.c.status == "pending").limit(1)).mappings().first()
        if have < want and template is not None:
            rows = [dict(template, id=None, message_id=f"bench.{i}.{template['message_id']}")
                    for i in range(want - have)]
            for row in rows:
                row.pop("id")
            db.execute(insert(table), rows)
            have = want
    engine.dispose()
    return have


def send_all(url: str, outbound_url: str, ca_file: str, threads: int, connections: int | None = None) -> dict:
    """Run the dispatcher's actor body in ``threads`` threads until nothing is due; the rate."""
    from sqlalchemy import func, select

    from core.settings import Settings
    from models import OutboxItem
    from models.db import make_engine
    from routing.outbox.dispatcher import dispatch
    from routing.outbox.transport import close_transports

    settings = Settings(database_url=url, outbound_url=outbound_url, outbound_ca_file=ca_file,
                        support_addresses=["support@msp.example"])
    if connections:
        settings = settings.model_copy(update={"outbox_connections": connections})
    engine = make_engine(url, pool_size=threads + 2)
    totals = {"sent": 0, "retrying": 0, "failed": 0}
    lock = threading.Lock()

    def work():
        while True:
            counts = dispatch(engine=engine, settings=settings)
            with lock:
                for k, v in counts.items():
                    totals[k] += v
            if not sum(counts.values()):
                return

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    with engine.connect() as db:
        sent = db.scalar(select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "sent"))
    close_transports()
    engine.dispose()
    return {"sent": sent, "send_failures": totals["retrying"] + totals["failed"], "seconds": round(seconds, 2),
            "sent_per_s": round(totals["sent"] / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages and mails instead of 4,000")
    parser.add_argument("--n", type=int, default=None, help="messages routed each way (overrides --quick)")
    parser.add_argument("--mails", type=int, default=None, help="mails the dispatcher sends (default: --n)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="dispatcher threads (default TICKETPOST_WORKER_THREADS)")
    parser.add_argument("--connections", type=int, default=None,
                        help="connections per process (default TICKETPOST_OUTBOX_CONNECTIONS)")
    args = parser.parse_args(argv)
    n = args.n or (1000 if args.quick else 4000)
    mails = args.mails or n
    from core.settings import Settings

    threads = args.threads or Settings().worker_threads
    with tempfile.TemporaryDirectory() as tmp:
        sink, port, ca_file = start_sink(Path(tmp))
        outbound_url = f"smtp://ticketpost:s3cret-pass@127.0.0.1:{port}"
        try:
            with PrivateDatabase(PG_ADMIN_URL) as url_off, PrivateDatabase(PG_ADMIN_URL) as url_on:
                routed = route_both(n, args.seed, url_off, url_on, outbound_url, ca_file)
                print(f"routing {n} messages: acknowledgements off {routed['routed_per_s_ack_off']:.0f}/s, "
                      f"on {routed['routed_per_s_ack_on']:.0f}/s ({routed['acknowledgements']} acknowledgements "
                      f"written): ratio {routed['route_ratio_ack_on_off']:.3f} (median of chunk pairs; "
                      f"{routed['route_ratio_totals']:.3f} from the totals); per message: statements "
                      f"{routed['statements_per_message_ack_off']} off, {routed['statements_per_message_ack_on']} on; "
                      f"this process's CPU {routed['cpu_ms_per_message_ack_off']} ms off, "
                      f"{routed['cpu_ms_per_message_ack_on']} ms on", file=sys.stderr)
                pending = top_up(url_on, mails)
                sent = send_all(url_on, outbound_url, ca_file, threads, args.connections)
                print(f"dispatcher, {threads} threads: {sent['sent']} of {pending} mails sent in {sent['seconds']} s: "
                      f"{sent['sent_per_s']:.0f}/s ({sent['send_failures']} failed attempts)", file=sys.stderr)
        finally:
            sink.kill()
            sink.wait(10)
    result = {**routed, **sent, "threads": threads, "n": n, "loadavg": os.getloadavg()[0]}
    print(json.dumps({"route_ratio_ack_on_off": result["route_ratio_ack_on_off"], "sent_per_s": result["sent_per_s"],
                      **{k: v for k, v in result.items() if k not in ("route_ratio_ack_on_off", "sent_per_s")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
