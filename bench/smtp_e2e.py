"""Benchmark: SMTP in, tickets out, on PostgreSQL + Redis + worker processes (issue 3).

    python -m bench.smtp_e2e            # full run (a few minutes)
    python -m bench.smtp_e2e --quick    # short run; last line is one JSON object
    python -m bench.smtp_e2e --sqlite   # the embedded database (a SQLite file) instead

What runs, all on this machine, each as its own process:

* ``ticketpost smtp`` (the durable listener) on a private PostgreSQL database (created for the run
  and dropped afterwards, seeded with the corpus clients and contacts) and a private Redis key
  namespace (deleted afterwards);
* ``ticketpost worker --processes W --threads T`` routing from Redis;
* for the ceiling, two listeners that store nothing, each in its own process: stock aiosmtpd
  (``--bare-server``: answers 250, its own line-by-line DATA loop), and ticketpost's own listener
  (``--noop-server``: ``ingest.smtp.SmtpServer`` with its DATA reader, recipient check, session
  cap and metrics, whose handler answers 250 without storing: no INSERT, no COMMIT, no hand-over).
  The stock one is not our ceiling: our listener replaces its DATA loop, which is its hot spot, so
  the share of it flatters less than it seems; the no-op one is the honest ceiling;
* the load: this process, an asyncio SMTP client with S parallel sessions sending the routing
  benchmark's corpus (``bench.corpus.generate``: 2–200 KB, attachments, mixed charsets, replies,
  auto-replies, duplicates).

Phases:

1. **bare** — the corpus at full speed into stock aiosmtpd → ``bare_accept_per_s``; the same into
   our listener with the no-op handler → ``intake_noop_accept_per_s``.
2a. **listener alone** (``--listener`` messages; at full speed, or offered at ``--listener-rate``)
   → its accepted/s and time-to-250 with no routing competing for the CPU; 2b. the workers drain
   them → routing alone.
2c. **end to end** — the corpus at full speed into ``ticketpost smtp`` while the workers route →
   ``accepted_per_s`` (messages / first MAIL to last 250) and ``routed_per_s`` (messages / first
   MAIL to the last ``routed_at``). Then every acknowledged id is checked: ``lost`` = acknowledged
   but not stored or not routed by the end; ``duplicated`` = inbound messages written to a ticket
   more than once, plus (Message-ID, sender) pairs on more than one ticket message.
3. **paced** — the next slice of the corpus offered at ``--rate`` (300/s) → ``p50_ack_ms`` and
   ``p99_ack_ms`` (time-to-250: MAIL FROM sent → final 250 received) and ``p50_ticket_ms`` and
   ``p99_ticket_ms`` (time-to-ticket: MAIL FROM sent → the inbound row's ``routed_at``).

Targets (issue 20): ≥ 500 routed/s end to end; p99 time-to-250 < 50 ms at 300/s offered; 0 lost,
0 duplicated. The JSON last line also carries ``/proc/loadavg`` at the start and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "TICKETPOST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TICKETPOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STORED = re.compile(rb"stored as inbound message (\d+)")
FROM = re.compile(rb"^From:.*?<?([^<>\s]+@[^<>\s]+?)>?\s*$", re.MULTILINE | re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


# --- the bare listener (run in its own process) -------------------------------------------------


def bare_server(port: int) -> None:
    """aiosmtpd answering 250 to everything, storing nothing: the listener's ceiling."""
    from aiosmtpd.smtp import SMTP

    class Nothing:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 OK"

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(Nothing(), hostname="bare.localhost", data_size_limit=25 * 1024 * 1024,
                     enable_SMTPUTF8=True, loop=loop),
        host="127.0.0.1", port=port, backlog=512,
    ))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()
    server.close()


class _NoStore:
    """The group-commit writer's stand-in for the no-op ceiling: every message "stored" at once."""

    def __init__(self) -> None:
        self.n = 0

    async def store(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> int:
        self.n += 1
        return self.n

    def stop(self, timeout: float = 10.0) -> None:
        pass


def noop_server(port: int) -> None:
    """ticketpost's own SMTP listener with a handler that stores nothing: the honest ceiling.

    Configured from the ``TICKETPOST_*`` environment like ``ticketpost smtp`` (metrics to Redis as
    there); only the durable store (INSERT, COMMIT) and the hand-over to the queue are left out.
    """
    import threading

    from core.settings import get_settings
    from ingest.smtp import SmtpServer
    from routing.broker import setup_broker

    settings = get_settings()
    setup_broker(settings)
    server = SmtpServer(settings=settings, port=port)
    server.handler.writer = _NoStore()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop(5)


def load_average() -> str:
    """``/proc/loadavg``'s first three fields (1, 5, 15 minutes)."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --- the load: an asyncio SMTP client ------------------------------------------------------------


@dataclass
class Sent:
    seq: int
    code: int
    inbound_id: int | None
    ack_s: float
    started_wall: float


@dataclass
class LoadResult:
    sent: list[Sent] = field(default_factory=list)
    first_start: float = 0.0
    last_ack: float = 0.0

    @property
    def accepted(self) -> list[Sent]:
        return [s for s in self.sent if s.code == 250]


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    text = b""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        text += line
        if line[3:4] != b"-":
            return int(line[:3]), text


def _dot_stuffed(raw: bytes) -> bytes:
    data = raw.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


async def _session(port: int, jobs: asyncio.Queue, result: LoadResult, rcpt: bytes) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await _reply(reader)
    writer.write(b"EHLO load.example\r\n")
    await _reply(reader)
    while True:
        try:
            seq, payload, sender, due = jobs.get_nowait()
        except asyncio.QueueEmpty:
            break
        if due is not None:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        t0, wall0 = time.perf_counter(), time.time()
        result.first_start = min(result.first_start or t0, t0)
        writer.write(b"MAIL FROM:<" + sender + b">\r\n")
        code, _ = await _reply(reader)
        if code == 250:
            writer.write(b"RCPT TO:<" + rcpt + b">\r\n")
            code, _ = await _reply(reader)
        if code == 250:
            writer.write(b"DATA\r\n")
            code, _ = await _reply(reader)
        if code == 354:
            writer.write(payload)
            code, text = await _reply(reader)
        else:
            text = b""
            writer.write(b"RSET\r\n")
            await _reply(reader)
        t1 = time.perf_counter()
        result.last_ack = max(result.last_ack, t1)
        match = STORED.search(text)
        result.sent.append(Sent(seq, code, int(match.group(1)) if match else None, t1 - t0, wall0))
    writer.write(b"QUIT\r\n")
    try:
        await _reply(reader)
    except ConnectionError:
        pass
    writer.close()


def send_corpus(port: int, messages: list[tuple[int, bytes]], *, sessions: int,
                rate: float | None, rcpt: str) -> LoadResult:
    """Send ``(seq, raw)`` messages over ``sessions`` parallel sessions, paced at ``rate``/s."""

    async def main() -> LoadResult:
        loop = asyncio.get_running_loop()
        jobs: asyncio.Queue = asyncio.Queue()
        start = loop.time() + 0.05
        for i, (seq, raw) in enumerate(messages):
            match = FROM.search(raw[:8000])
            sender = match.group(1) if match else b"bench@load.example"
            due = start + i / rate if rate else None
            jobs.put_nowait((seq, _dot_stuffed(raw), sender, due))
        result = LoadResult()
        await asyncio.gather(*(_session(port, jobs, result, rcpt.encode())
                               for _ in range(sessions)))
        return result

    return asyncio.run(main())


# --- the stack -----------------------------------------------------------------------------------


class Stack:
    """A private PostgreSQL database and Redis namespace, and the ticketpost processes on them."""

    def __init__(self, args) -> None:
        from sqlalchemy import create_engine, text

        self.args = args
        self.db_name = f"tp_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.admin = None
        if args.sqlite:  # the embedded database, in a file of its own
            self.sqlite_dir = tempfile.mkdtemp(prefix="tp-bench-")
            self.url = f"sqlite:///{self.sqlite_dir}/{self.db_name}.db"
        else:
            self.admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
            self.url = args.pg_admin_url.rsplit("/", 1)[0] + "/" + self.db_name
        self.namespace = f"tp-bench-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen] = []
        self.smtp_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
        self.env.update({
            "TICKETPOST_DATABASE_URL": self.url,
            "TICKETPOST_REDIS_URL": args.redis_url,
            "TICKETPOST_REDIS_NAMESPACE": self.namespace,
            "TICKETPOST_SUPPORT_ADDRESSES": args.rcpt,
            "TICKETPOST_SMTP_PORT": str(self.smtp_port),
            "TICKETPOST_SMTP_MAX_CONNECTIONS": str(args.sessions + 20),
            "TICKETPOST_SMTP_MAX_CONNECTIONS_PER_IP": str(args.sessions + 20),
            "TICKETPOST_RATE_LIMIT_PER_HOUR": "1000000",
            "TICKETPOST_LOG_LEVEL": "WARNING",
        })
        from bench.corpus import seed_database
        from models.db import make_engine, migrate

        migrate(self.url)
        self.engine = make_engine(self.url)
        seed_database(self.engine)

    def start(self, *argv: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "ticketpost.cli", *argv], env=self.env,
                                cwd=str(REPO), stdout=subprocess.DEVNULL,
                                stderr=open(f"/tmp/{self.namespace}-{argv[0]}.log", "ab"))
        self.procs.append(proc)
        return proc

    def start_worker(self, *argv: str) -> subprocess.Popen:
        """A worker at lower CPU priority (nice 10): on a small machine the listener's 250s
        must not wait behind routing, which catches up when the burst is over."""
        proc = subprocess.Popen([sys.executable, "-m", "ticketpost.cli", "worker", *argv],
                                env=self.env, cwd=str(REPO), stdout=subprocess.DEVNULL,
                                stderr=open(f"/tmp/{self.namespace}-worker.log", "ab"),
                                preexec_fn=lambda: os.nice(self.args.worker_nice))
        self.procs.append(proc)
        return proc

    def routed_times(self, ids: list[int]) -> dict[int, float]:
        """inbound id → routed_at (Unix seconds) for the ids routed so far."""
        from sqlalchemy import select

        from models import InboundMessage
        from models.db import session_scope

        out: dict[int, float] = {}
        with session_scope(self.engine) as session:
            for chunk in range(0, len(ids), 1000):
                rows = session.execute(
                    select(InboundMessage.id, InboundMessage.routed_at).where(
                        InboundMessage.id.in_(ids[chunk:chunk + 1000]),
                        InboundMessage.status == "routed",
                    )
                ).all()
                for inbound_id, routed_at in rows:
                    if routed_at.tzinfo is None:
                        routed_at = routed_at.replace(tzinfo=timezone.utc)
                    out[inbound_id] = routed_at.timestamp()
        return out

    def wait_routed(self, ids: list[int], *, stall_s: float = 60) -> dict[int, float]:
        """Wait until every id is routed, or nothing progressed for ``stall_s``; return times."""
        done: dict[int, float] = {}
        last_progress = time.monotonic()
        while True:
            now = self.routed_times(ids)
            if len(now) > len(done):
                last_progress = time.monotonic()
            done = now
            if len(done) == len(ids) or time.monotonic() - last_progress > stall_s:
                return done
            time.sleep(0.25)

    def duplicates(self) -> int:
        from sqlalchemy import func, select

        from models import TicketMessage
        from models.db import session_scope

        with session_scope(self.engine) as session:
            per_inbound = session.execute(
                select(TicketMessage.inbound_id).where(TicketMessage.inbound_id.is_not(None))
                .group_by(TicketMessage.inbound_id).having(func.count() > 1)
            ).all()
            per_message = session.execute(
                select(TicketMessage.message_id, TicketMessage.sender_email)
                .where(TicketMessage.message_id.is_not(None))
                .group_by(TicketMessage.message_id, TicketMessage.sender_email)
                .having(func.count() > 1)
            ).all()
            for message_id, sender in per_message[:5]:
                rows = session.execute(
                    select(TicketMessage.inbound_id, TicketMessage.ticket_id).where(
                        TicketMessage.message_id == message_id,
                        TicketMessage.sender_email == sender)
                ).all()
                print(f"  duplicated: {message_id} from {sender}: (inbound, ticket) {rows}",
                      file=sys.stderr)
        return len(per_inbound) + len(per_message)

    def close(self) -> None:
        from sqlalchemy import text

        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.engine.dispose()
        import redis

        client = redis.Redis.from_url(self.args.redis_url)
        keys = list(client.scan_iter(f"{self.namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
        if self.admin is None:
            shutil.rmtree(self.sqlite_dir, ignore_errors=True)
            return
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        self.admin.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its waited-for children (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def ceiling(server_argv: list[str], messages: list[tuple[int, bytes]], args, env) -> float:
    """Accepted/s of a listener that stores nothing, run as ``python -m bench.smtp_e2e ARGV PORT``."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.smtp_e2e", *server_argv, str(port)],
                              cwd=str(REPO), env=env)
    try:
        wait_port(port)
        res = send_corpus(port, messages, sessions=args.sessions, rate=None, rcpt=args.rcpt)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
    return len(res.accepted) / (res.last_ack - res.first_start)


def run(args) -> dict:
    from bench.corpus import generate

    n_bare, n_e2e, n_paced = args.bare, args.messages, args.paced
    n_alone = args.listener
    print(f"generating {n_e2e + n_paced + n_alone} corpus messages ...", file=sys.stderr)
    corpus = list(enumerate(generate(n_e2e + n_paced + n_alone, seed=args.seed)))
    e2e_msgs, paced_msgs = corpus[:n_e2e], corpus[n_e2e:]
    mb = sum(len(raw) for _, raw in e2e_msgs) / 1e6
    print(f"  {len(corpus)} messages, {mb / max(1, n_e2e) * 1000:.1f} KB on average",
          file=sys.stderr)

    # 1. the ceilings: stock aiosmtpd, then (below, with the stack's settings) our own listener
    load_start = load_average()
    bare_rate = ceiling(["--bare-server"], corpus[:n_bare], args, os.environ)
    print(f"bare aiosmtpd (stock, stores nothing): {bare_rate:.0f} accepted/s", file=sys.stderr)

    stack = Stack(args)
    lost = 0
    try:
        noop_rate = ceiling(["--noop-server"], corpus[:n_bare], args, stack.env)
        print(f"ticketpost's listener storing nothing: {noop_rate:.0f} accepted/s "
              f"({100 * noop_rate / bare_rate:.0f} % of stock aiosmtpd)", file=sys.stderr)

        smtp_proc = stack.start("smtp")
        wait_port(stack.smtp_port)

        # 2a. the durable listener alone (no worker competes for the CPU yet)
        alone = corpus[n_e2e + n_paced:]  # the corpus's tail: nothing later refers to it
        if alone:
            cpu_before = cpu_seconds(smtp_proc.pid)
            res = send_corpus(stack.smtp_port, alone, sessions=args.sessions,
                              rate=args.listener_rate or None, rcpt=args.rcpt)
            cpu_alone = (cpu_seconds(smtp_proc.pid) - cpu_before) * 1000 / max(1, len(res.accepted))
            rate_alone = len(res.accepted) / (res.last_ack - res.first_start)
            acks_alone = [s.ack_s * 1000 for s in res.accepted]
            offered_alone = (f"offered {args.listener_rate:.0f}/s" if args.listener_rate
                             else "full speed")
            print(f"ticketpost smtp alone (no routing running, {offered_alone}): "
                  f"{rate_alone:.0f} accepted/s = {100 * rate_alone / noop_rate:.0f} % of our no-op "
                  f"listener, {100 * rate_alone / bare_rate:.0f} % of stock aiosmtpd; "
                  f"time-to-250 p50 {pct(acks_alone, 50):.1f} ms p99 {pct(acks_alone, 99):.1f} ms; "
                  f"listener CPU {cpu_alone:.2f} ms per message", file=sys.stderr)
            alone_ids = [s.inbound_id for s in res.accepted if s.inbound_id is not None]
            if args.listener_only:
                return {
                    "listener_accept_per_s": round(rate_alone, 1),
                    "listener_share_of_noop": round(rate_alone / noop_rate, 3),
                    "listener_p50_ack_ms": round(pct(acks_alone, 50), 2),
                    "listener_p99_ack_ms": round(pct(acks_alone, 99), 2),
                    "listener_cpu_ms_per_message": round(cpu_alone, 3),
                    "intake_noop_accept_per_s": round(noop_rate, 1),
                    "bare_accept_per_s": round(bare_rate, 1),
                    "accepted": len(res.accepted),
                    "load_average_start": load_start,
                    "load_average_end": load_average(),
                }

        worker_proc = stack.start_worker("--processes", str(args.worker_processes),
                                         "--threads", str(args.worker_threads))
        if alone:
            # 2b. routing alone: the workers drain what the listener stored
            t0 = time.time()
            done = stack.wait_routed(alone_ids)
            lost += len(alone_ids) - len(done)
            if len(done) > 1:
                span = max(done.values()) - min(done.values())  # from the first routed one on
                print(f"routing alone (draining {len(alone_ids)} stored messages): "
                      f"{(len(done) - 1) / span:.0f} routed/s "
                      f"(worker start-up {min(done.values()) - t0:.1f} s not counted)",
                      file=sys.stderr)
        else:
            time.sleep(2)  # let the workers connect

        # 2. end to end at full speed
        cpu0 = (cpu_seconds(smtp_proc.pid), cpu_seconds(worker_proc.pid), time.process_time())
        res = send_corpus(stack.smtp_port, e2e_msgs, sessions=args.sessions, rate=None,
                          rcpt=args.rcpt)
        accepted = res.accepted
        accept_rate = len(accepted) / (res.last_ack - res.first_start)
        refused = len(res.sent) - len(accepted)
        print(f"ticketpost smtp while routing: {accept_rate:.0f} accepted/s ({len(accepted)} accepted, "
              f"{refused} not) = {100 * accept_rate / noop_rate:.0f} % of our no-op listener, "
              f"{100 * accept_rate / bare_rate:.0f} % of stock aiosmtpd", file=sys.stderr)
        ids = [s.inbound_id for s in accepted if s.inbound_id is not None]
        routed = stack.wait_routed(ids)
        cpu1 = (cpu_seconds(smtp_proc.pid), cpu_seconds(worker_proc.pid), time.process_time())
        per = [(b - a) * 1000 / max(1, len(accepted)) for a, b in zip(cpu0, cpu1, strict=True)]
        worker_cpu = f"{per[1]:.1f} ms" if args.worker_processes == 1 else "n/a (children)"
        print(f"CPU per message: listener {per[0]:.1f} ms, worker {worker_cpu}, "
              f"load client {per[2]:.1f} ms (PostgreSQL and Redis not counted)", file=sys.stderr)
        first_wall = min(s.started_wall for s in accepted)
        routed_rate = len(routed) / (max(routed.values()) - first_wall) if routed else 0.0
        print(f"routed end to end: {routed_rate:.0f}/s ({len(routed)} of {len(ids)})",
              file=sys.stderr)
        lost += len(accepted) - len(routed)

        # 3. paced: latency at the offered rate
        res3 = send_corpus(stack.smtp_port, paced_msgs, sessions=args.sessions, rate=args.rate,
                           rcpt=args.rcpt)
        acc3 = res3.accepted
        offered = len(res3.sent) / (res3.last_ack - res3.first_start)
        ids3 = [s.inbound_id for s in acc3 if s.inbound_id is not None]
        routed3 = stack.wait_routed(ids3)
        lost += len(acc3) - len(routed3)
        acks = [s.ack_s * 1000 for s in acc3]
        tickets = [(routed3[s.inbound_id] - s.started_wall) * 1000 for s in acc3
                   if s.inbound_id in routed3]
        print(f"paced at {args.rate}/s (achieved {offered:.0f}/s): time-to-250 p50 "
              f"{pct(acks, 50):.1f} ms p99 {pct(acks, 99):.1f} ms; time-to-ticket p50 "
              f"{pct(tickets, 50):.0f} ms p99 {pct(tickets, 99):.0f} ms", file=sys.stderr)
        duplicated = stack.duplicates()
        print(f"lost {lost}, duplicated {duplicated}", file=sys.stderr)
    finally:
        stack.close()
    load_end = load_average()
    print(f"load average at start / end: {load_start} / {load_end}", file=sys.stderr)

    return {
        "accepted_per_s": round(accept_rate, 1),
        "routed_per_s": round(routed_rate, 1),
        "bare_accept_per_s": round(bare_rate, 1),
        "intake_noop_accept_per_s": round(noop_rate, 1),
        "accepted_share_of_noop": round(accept_rate / noop_rate, 3),
        "p50_ack_ms": round(pct(acks, 50), 2),
        "p99_ack_ms": round(pct(acks, 99), 2),
        "p50_ticket_ms": round(pct(tickets, 50), 1),
        "p99_ticket_ms": round(pct(tickets, 99), 1),
        "lost": lost,
        "duplicated": duplicated,
        "load_average_start": load_start,
        "load_average_end": load_end,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.smtp_e2e",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument("--messages", type=int, default=2000, help="end-to-end phase")
    parser.add_argument("--paced", type=int, default=2000, help="messages of the paced phase")
    parser.add_argument("--bare", type=int, default=2000, help="messages for the bare ceiling")
    parser.add_argument("--listener", type=int, default=1000,
                        help="messages for the listener-alone and routing-alone phases (0: skip)")
    parser.add_argument("--rate", type=float, default=300.0, help="offered rate of the paced phase")
    parser.add_argument("--listener-rate", type=float, default=0.0,
                        help="offered rate of the listener-alone phase (0: full speed)")
    parser.add_argument("--sessions", type=int, default=20, help="parallel SMTP sessions")
    parser.add_argument("--worker-processes", type=int, default=1)
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument("--worker-nice", type=int, default=0,
                        help="CPU niceness of the worker processes (0 = same as the listener)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rcpt", default="support@msp.example")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--listener-only", action="store_true",
                        help="stop after the listener-alone phase (--listener messages)")
    parser.add_argument("--sqlite", action="store_true",
                        help="the embedded database (a SQLite file) instead of PostgreSQL")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--noop-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        bare_server(args.bare_server)
        return 0
    if args.noop_server:
        noop_server(args.noop_server)
        return 0
    if args.quick:
        args.messages, args.paced, args.bare, args.listener = 300, 300, 300, 0
    sys.path.insert(0, str(REPO))
    result = run(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
