"""Benchmark: webhook deliveries per second, and latency of healthy endpoints next to a hanging one.

    python -m bench.webhooks            # 8,000 deliveries; 20 s of events with one endpoint hanging
    python -m bench.webhooks --quick    # 2,000 deliveries; 6 s; last line is one JSON object
    python -m bench.webhooks --sqlite   # on an SQLite file instead of a private PostgreSQL database

The receiver (``bench.webhook_receiver``, asyncio) runs in its own process on 127.0.0.1; the
webhook runner and sender (``routing.webhooks.delivery``: claim, sign, POST over httpx, record
the results in batches) run in this one, as in a worker process, with the default settings
except ``TICKETPOST_WEBHOOKS_ALLOW_PRIVATE``.

1. ``delivered_per_s``: N deliveries spread over 8 endpoints are written to the outbox first; from
   the runner's start to the last delivery recorded as ``sent`` in the database.
2. ``p99_other_ms``: 4 healthy endpoints and one that never answers (its requests hang until the
   read timeout, 10 s) all subscribe to ``ticket.created``; events are written at ``--rate`` a
   second (each event: one delivery per endpoint) for ``--seconds``, each handed to the outbox
   dispatcher right after its commit as routing hands its rows over (``dispatch(ids=...)``, the
   body of the ``send_outbox`` actor, here in the writing thread). The latency of a delivery is
   its arrival at the receiver minus the moment its outbox row was written; the 99th percentile
   over the healthy endpoints' deliveries. ``p99_baseline_ms``: the same run first without the
   hanging endpoint (the same load on the machine, for comparison).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.webhook_receiver", str(port)], cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    json.loads(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def received(base: str) -> list[tuple[str, str, float]]:
    with urllib.request.urlopen(base + "/stats", timeout=60) as response:
        return json.loads(response.read())


def add_webhooks(engine, base: str, paths: list[str], secret_key: str) -> dict[str, int]:
    from models import Webhook
    from models.db import session_scope
    from models.secrets import encrypt_secret
    from models.webhook import events_column
    from routing.webhooks.signing import generate_secret

    ids = {}
    with session_scope(engine) as s:
        for path in paths:
            hook = Webhook(url=base + path, events=events_column(["ticket.created"]),
                           secret_encrypted=encrypt_secret(generate_secret(), key=secret_key), enabled=True)
            s.add(hook)
            s.flush()
            ids[path] = hook.id
    return ids


def sent_count(engine) -> int:
    from sqlalchemy import func, select

    from models import OutboxItem

    with engine.connect() as db:
        return int(db.scalar(select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "sent")) or 0)


def throughput(url: str, settings, base: str, n: int) -> dict:
    """Phase 1: N deliveries over 8 endpoints, written first, then delivered."""
    from models.db import make_engine
    from routing.webhooks.delivery import WebhookRunner, stop_senders
    from routing.webhooks.events import write_event

    engine = make_engine(url)
    hooks = add_webhooks(engine, base, [f"/fast{i}" for i in range(8)], settings.secret_key)
    with engine.begin() as db:
        for i in range(n):
            write_event(db, "ticket.created", {"ticket": {"id": i, "number": i, "subject": f"Printer {i}"}},
                        webhook_id=list(hooks.values())[i % len(hooks)])
    started = time.perf_counter()
    runner = WebhookRunner(engine=engine, settings=settings).start()
    while sent_count(engine) < n:
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    runner.stop(10)
    stop_senders()
    engine.dispose()
    return {"deliveries": n, "seconds": round(seconds, 2), "delivered_per_s": round(n / seconds, 1)}


def latency(url: str, settings, base: str, rate: float, seconds: float, *, hanging: bool = True) -> dict:
    """Phase 2: events at ``rate``/s for ``seconds`` to 4 healthy endpoints and 1 hanging one
    (``hanging`` False: the same without it, the baseline)."""
    from sqlalchemy import select

    from models import OutboxItem
    from models.db import make_engine
    from routing.outbox.dispatcher import dispatch
    from routing.webhooks.delivery import WebhookRunner, stop_senders
    from routing.webhooks.events import write_event

    engine = make_engine(url)
    ok = "/ok" if hanging else "/base-ok"  # the receiver serves both runs: paths of their own
    hooks = add_webhooks(engine, base, [f"{ok}{i}" for i in range(4)] + (["/hang"] if hanging else []),
                         settings.secret_key)
    runner = WebhookRunner(engine=engine, settings=settings).start()
    events = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate) + 1
        while events < due:
            with engine.begin() as db:
                ids = write_event(db, "ticket.created", {"ticket": {"id": events, "number": events}})
            # what a worker does with routing's hand-over after the commit (send_outbox's body)
            dispatch(engine=engine, settings=settings, ids=ids)
            events += 1
        time.sleep(max(0.0, (events / rate) - (time.perf_counter() - started)))
    healthy = {hooks[p] for p in hooks if p != "/hang"}
    expected = events * len(healthy)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = [r for r in received(base) if r[0].startswith(ok)]
        if len(got) >= expected:
            break
        time.sleep(0.2)
    hanging_requests = len([r for r in received(base) if r[0] == "/hang"])
    runner.stop(1)
    stop_senders(1)
    with engine.connect() as db:
        written = {mid: created for mid, created, target in db.execute(
            select(OutboxItem.message_id, OutboxItem.created_at, OutboxItem.target_id)) if target in healthy}
    engine.dispose()
    latencies = sorted((at - written[mid].timestamp()) * 1000 for path, mid, at in got if mid in written)
    if not latencies:
        return {"events": events, "p99_other_ms": None}

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 1)

    return {"events": events, "healthy_deliveries": len(latencies), "expected": expected,
            "hanging_requests_open": hanging_requests, "p50_other_ms": pct(0.5), "p99_other_ms": pct(0.99),
            "max_other_ms": round(latencies[-1], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sqlite", action="store_true", help="an SQLite file instead of PostgreSQL")
    parser.add_argument("-n", type=int, default=None, help="deliveries of phase 1")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second in phase 2")
    parser.add_argument("--seconds", type=float, default=None, help="length of phase 2")
    args = parser.parse_args()
    n = args.n or (2000 if args.quick else 8000)
    seconds = args.seconds or (6.0 if args.quick else 20.0)

    from core.settings import Settings
    from models.db import migrate

    receiver, base = start_receiver()
    load = Path("/proc/loadavg").read_text().split()[:3]
    result: dict = {"load_before": " ".join(load)}
    try:
        for phase in ("throughput", "baseline", "latency"):
            with tempfile.TemporaryDirectory() as tmp:
                if args.sqlite:
                    from contextlib import nullcontext

                    database = nullcontext(f"sqlite:///{tmp}/bench.db")
                else:
                    from bench.route import PG_ADMIN_URL, PrivateDatabase

                    database = PrivateDatabase(PG_ADMIN_URL)
                with database as url:
                    migrate(url)
                    settings = Settings(database_url=url, secret_key="bench-secret-key", webhooks_allow_private=True)
                    if phase == "throughput":
                        result.update(throughput(url, settings, base, n))
                    elif phase == "baseline":
                        base_run = latency(url, settings, base, args.rate, seconds, hanging=False)
                        result["p50_baseline_ms"] = base_run.get("p50_other_ms")
                        result["p99_baseline_ms"] = base_run.get("p99_other_ms")
                    else:
                        result.update(latency(url, settings, base, args.rate, seconds))
    finally:
        receiver.kill()
        receiver.wait(10)
    result["database"] = "sqlite" if args.sqlite else "postgresql"
    result["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"phase 1: {result.get('deliveries')} deliveries in {result.get('seconds')} s "
          f"= {result.get('delivered_per_s')}/s", file=sys.stderr)
    print(f"phase 2: p99 of the healthy endpoints next to a hanging one: {result.get('p99_other_ms')} ms "
          f"(without it: {result.get('p99_baseline_ms')} ms)", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
