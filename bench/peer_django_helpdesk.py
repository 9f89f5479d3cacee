"""Head-to-head: ticketpost's routing against django-helpdesk's e-mail-to-ticket path (issue 9).

Both sides get the same generated corpus (:mod:`bench.corpus`), one process each on the same
machine, each on a private database of the same engine (PostgreSQL by default, created and
dropped here; ``--engine sqlite`` for SQLite files). The processes take turns on chunks of the
corpus (``--chunk``, 50 messages), so a busy shared machine slows both alike:

``ours``
    what ticketpost's mailbox intake does with a backlog: each turn's messages stored in one
    round trip and one commit (``ingest.store.insert_inbound``, as the IMAP poller stores a
    fetched batch), then routed as a worker routes the ids handed over together
    (``routing.batch.route_batch``: up to ``TICKETPOST_ROUTE_BATCH_SIZE`` ids in one transaction, pipelined
    on PostgreSQL, one commit); ``--ours-one-by-one``: per message ``ingest.store.store_inbound``
    (commit) then ``routing.pipeline.route_inbound`` (commit). The corpus clients, domains and
    contacts are seeded by ``bench.corpus.seed_database``.
``peer``
    django-helpdesk (PyPI ``django-helpdesk``, installed in its own venv ``bench/.peer/venv``, never
    a dependency of ticketpost) in a minimal Django project (``bench/peer/settings.py``: outgoing
    mail to the dummy backend), one Queue; each message goes through
    ``helpdesk.email.extract_email_metadata(message=str, queue, logger)``, the function its IMAP,
    POP3 and local-directory pollers call after ``force_str(raw, errors="replace")`` — exactly what
    this harness does too.

Reported per side: messages per second (wall clock of the calls above, summed over the messages;
reading the .eml file is not timed), CPU time of the process per message, SQL statements per
message counted at the driver for both sides alike (``bench/statements.py``: BEGIN, COMMIT and
SAVEPOINT included) and durable commits per message (COMMITs, plus writing statements run in
autocommit mode: Django's default, so django-helpdesk's e-mail path commits, and flushes the WAL
for, every INSERT/UPDATE on its own), peak RSS of the process (``resource.getrusage``), and
correctness counted after the run
from each side's results, keyed by the ``X-Corpus-Kind`` of every message: new messages that opened
a ticket, duplicates ticketed twice, replies threaded onto their ticket, auto-replies ignored,
replies carrying another client's ticket tag refused (not appended to that ticket).

Fairness notes. django-helpdesk recognises only its own tag format ``[<queue-slug>-<id>]``, so
before handing a message over the harness rewrites our ``[#N]`` tags into ``[support-<id>]`` of the
peer ticket that corpus ticket N became (outside the timed part); without that, the peer would
"refuse" the wrong-client tags only because it cannot read them. The peer's own loops catch only a
few exceptions; here every exception is caught, counted as an error, and the run goes on.
django-helpdesk renders an acknowledgement mail per message (to the dummy backend); ticketpost
sends none, so the peer runs twice: with that step stubbed out ("mails off", the like-for-like
comparison and the headline ``ratio_like_for_like``) and as shipped ("mails on", ``ratio``).

``python bench/peer_django_helpdesk.py --quick`` (300 messages) prints a JSON last line
``{"ours_per_s", "peer_per_s", "ratio", "peer_without_mail_per_s", "ratio_like_for_like", ...}``;
``--n 3000`` for the recorded run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``bench`` and the project importable
    sys.path.insert(0, str(ROOT))
PEER_DIR = ROOT / "bench" / ".peer"
PEER_VENV = PEER_DIR / "venv"
PEER_PYTHON = PEER_VENV / "bin" / "python"
PEER_REQUIREMENTS = ("django-helpdesk==2.6.1", "psycopg[binary]>=3.1")
CORPUS_ROOT = ROOT / "bench" / ".corpus"
PG_ADMIN_URL = os.environ.get(
    "TICKETPOST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SUPPORT_ADDRESS = "support@msp.example"
PEER_QUEUE_SLUG = "support"


# --- shared by both children --------------------------------------------------------------------


def _corpus_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.eml"))


def _corpus_headers(raw: bytes) -> dict[str, str]:
    """The X-Corpus-* lines at the top of a corpus message."""
    fields = {}
    for line in raw[:400].split(b"\r\n"):
        if not line.startswith(b"X-Corpus-"):
            break
        name, _, value = line.partition(b":")
        fields[name.decode()[len("X-Corpus-"):].lower()] = value.strip().decode()
    return fields


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- child: ticketpost --------------------------------------------------------------------------


def _measured(side, n: int) -> dict:
    """The figures both sides report the same way: rate, peak memory, SQL and CPU per message."""
    return {
        "side": side.name,
        "messages": side.messages,
        "elapsed_s": side.elapsed,
        "per_s": side.messages / side.elapsed,
        "peak_rss_mb": _peak_rss_mb(),
        "sql_per_message": side.count.statements / n,
        "queries_per_message": side.count.queries / n,
        "commits_per_message": side.count.durable_commits / n,
        "cpu_ms_per_message": 1000 * side.cpu / n,
    }


def _time_steps(pipeline) -> dict[str, float]:
    """Wrap each routing step so its wall time adds up in the returned dict (``--steps``)."""
    totals: dict[str, float] = {}

    def timed(step):
        def run(ctx):
            started = time.perf_counter()
            try:
                return step(ctx)
            finally:
                spent = time.perf_counter() - started
                totals[step.__name__] = totals.get(step.__name__, 0.0) + spent

        run.__name__ = step.__name__
        return run

    for name in ("STEPS", "MESSAGE_STEPS", "DATABASE_STEPS"):  # whichever the pipeline runs
        if hasattr(pipeline, name):
            setattr(pipeline, name, tuple(timed(step) for step in getattr(pipeline, name)))
    return totals


class OursSide:
    """ticketpost in this process: store, then route, each message; results from its database."""

    name = "ours"

    def __init__(self, database_url: str, *, steps: bool = False, one_by_one: bool = False):
        from bench.corpus import seed_database
        from bench.statements import Count
        from ingest.store import store_inbound
        from models.db import make_engine, migrate
        from routing import pipeline
        from routing.pipeline import route_inbound
        from core.settings import Settings

        self._store, self._route = store_inbound, route_inbound
        self.one_by_one = one_by_one
        self.step_totals = _time_steps(pipeline) if steps else {}
        migrate(database_url)
        self.engine = make_engine(database_url)
        seed_database(self.engine)
        # The per-sender limit (20 new tickets an hour) guards against mail storms in real time;
        # the corpus replays weeks of mail in minutes, so it is raised (its query still runs).
        self.settings = Settings(
            database_url=database_url,
            support_addresses=[SUPPORT_ADDRESS],
            rate_limit_per_hour=1_000_000,
        )
        self.count = Count()  # at the driver: routing.prepared bypasses SQLAlchemy's events
        self.messages = 0
        self.elapsed = self.cpu = 0.0
        self.errors: list[str] = []

    def process(self, paths: list[Path]) -> None:
        from bench.statements import counting

        with counting(self.engine, self.count):
            self._process(paths)

    def _process(self, paths: list[Path]) -> None:
        if not self.one_by_one:
            self._process_batched(paths)
            return
        cpu_started = _cpu_s()
        for path in paths:
            raw = path.read_bytes()
            started = time.perf_counter()
            try:
                inbound_id = self._store(
                    raw=raw, source="cli", envelope_to=[SUPPORT_ADDRESS], engine=self.engine
                )
                self._route(inbound_id, engine=self.engine, settings=self.settings)
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                self.errors.append(f"{path.name}: {type(exc).__name__}: {exc}"[:300])
            self.elapsed += time.perf_counter() - started
        self.cpu += _cpu_s() - cpu_started
        self.messages += len(paths)

    def _process_batched(self, paths: list[Path]) -> None:
        """The turn's messages as a mailbox backlog: one stored batch, then routed in batches."""
        from ingest.store import inbound_values, insert_inbound
        from routing.batch import route_batch

        raws = [path.read_bytes() for path in paths]
        cpu_started = _cpu_s()
        started = time.perf_counter()
        try:
            with self.engine.begin() as conn:
                ids = insert_inbound(conn, [inbound_values(raw=raw, source="imap", envelope_to=[SUPPORT_ADDRESS])
                                            for raw in raws])
            size = self.settings.route_batch_size
            for start in range(0, len(ids), size):
                done = route_batch(ids[start:start + size], engine=self.engine, settings=self.settings)
                for inbound_id in done.failed:  # retried alone, as the actor does
                    try:
                        self._route(inbound_id, engine=self.engine, settings=self.settings)
                    except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                        self.errors.append(f"inbound {inbound_id}: {type(exc).__name__}: {exc}"[:300])
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            self.errors.append(f"{paths[0].name}..: {type(exc).__name__}: {exc}"[:300])
        self.elapsed += time.perf_counter() - started
        self.cpu += _cpu_s() - cpu_started
        self.messages += len(paths)

    def finish(self) -> dict:
        """Timing, and every message's result read back from the database."""
        import sqlalchemy
        from sqlalchemy import func, select

        from models import InboundMessage, Ticket

        n = max(self.messages, 1)
        records = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    InboundMessage.outcome, InboundMessage.ticket_id, Ticket.number,
                    func.substr(InboundMessage.raw, 1, 400),
                ).outerjoin(Ticket, Ticket.id == InboundMessage.ticket_id)
            ).all()
        for outcome, ticket_id, number, head in rows:
            fields = _corpus_headers(bytes(head))
            records[int(fields["seq"])] = {
                "kind": fields["kind"],
                "target": int(fields["target"]) if "target" in fields else None,
                "expected_ticket": int(fields["ticket"]) if "ticket" in fields else None,
                "ticket": ticket_id,
                "ticket_number": number,
                "opened": outcome in ("ticket_created", "triaged"),
                "outcome": outcome,
            }
        self.engine.dispose()
        return {
            **_measured(self, n),
            "step_ms_per_message": {k: 1000 * v / n for k, v in self.step_totals.items()},
            "errors": self.errors,
            "records": records,
            "versions": {"python": sys.version.split()[0], "sqlalchemy": sqlalchemy.__version__},
        }


# --- child: django-helpdesk ---------------------------------------------------------------------

_OUR_TAG = re.compile(r"\[#(\d+)\]")


def _rewrite_tag(raw: bytes, peer_ids: dict[int, int]) -> bytes:
    """Replace ``[#N]`` in the Subject by the peer's own tag ``[support-<id>]`` (see module doc)."""
    from email.header import Header, decode_header, make_header

    head_end = raw.find(b"\r\n\r\n")
    start = raw.find(b"\r\nSubject:", 0, head_end)
    if start < 0:
        return raw
    start += 2
    end = start
    while True:
        end = raw.find(b"\r\n", end, head_end + 2)
        if raw[end + 2:end + 3] in (b" ", b"\t"):
            end += 2
            continue
        break
    value = raw[start + len(b"Subject:"):end].decode("ascii", "replace").replace("\r\n", "")
    subject = str(make_header(decode_header(value)))

    def peer_tag(match: re.Match) -> str:
        peer_id = peer_ids.get(int(match.group(1)))
        return f"[{PEER_QUEUE_SLUG}-{peer_id}]" if peer_id else match.group(0)

    rewritten = _OUR_TAG.sub(peer_tag, subject)
    if rewritten == subject:
        return raw
    encoded = Header(rewritten, "utf-8", header_name="Subject").encode(linesep="\r\n")
    return raw[:start] + f"Subject: {encoded}".encode("ascii") + raw[end:]


class PeerSide:
    """django-helpdesk in this process (its own venv), one Queue, the function its pollers call.

    ``notify=False`` replaces ``helpdesk.email.send_info_email`` (which renders the acknowledgement
    mails to the submitter) by a no-op: ticketpost sends no mail, so this is the like-for-like
    variant. By default django-helpdesk runs as shipped (its mails go to the dummy backend).
    """

    def __init__(self, database_url: str, media_root: Path, *, notify: bool = True):
        import logging

        os.environ["PEER_DATABASE_URL"] = database_url
        os.environ["PEER_MEDIA_ROOT"] = str(media_root)
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.peer.settings"
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.utils import encoding

        call_command("migrate", verbosity=0)
        import helpdesk.email
        from helpdesk.exceptions import DeleteIgnoredTicketException, IgnoreTicketException
        from helpdesk.models import Queue

        if not notify:
            helpdesk.email.send_info_email = lambda *args, **kwargs: set()
        self.name = "peer" if notify else "peer-no-mail"
        self._extract = helpdesk.email.extract_email_metadata
        self._force_str = encoding.force_str
        self._ignored = (IgnoreTicketException, DeleteIgnoredTicketException)
        self.queue = Queue.objects.create(
            title="Support", slug=PEER_QUEUE_SLUG, email_address=SUPPORT_ADDRESS,
            allow_email_submission=True,
        )
        self.logger = logging.getLogger("bench.peer")
        self.logger.setLevel(logging.WARNING)
        from bench.statements import Count

        self.count = Count()  # at the driver, as for ours (Django runs on psycopg too)
        self.messages = 0
        self.elapsed = self.cpu = 0.0
        self.errors: list[str] = []
        self.records: dict[int, dict] = {}
        self.peer_ids: dict[int, int] = {}  # corpus ticket number -> peer ticket id
        self.seen_tickets: set[int] = set()
        connection.ensure_connection()  # connecting is not part of the first message's count

    def process(self, paths: list[Path]) -> None:
        from bench.statements import counting

        with counting(None, self.count):
            self._process(paths)

    def _process(self, paths: list[Path]) -> None:
        cpu_started = _cpu_s()
        for path in paths:
            raw = path.read_bytes()
            fields = _corpus_headers(raw)
            if fields["kind"] in ("reply", "wrong_client_tag"):
                raw = _rewrite_tag(raw, self.peer_ids)  # not timed: our tag format, not theirs
            started = time.perf_counter()
            ticket = None
            try:
                ticket = self._extract(
                    message=self._force_str(raw, errors="replace"), queue=self.queue,
                    logger=self.logger,
                )
            except self._ignored:
                ticket = None
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                self.errors.append(f"{path.name}: {type(exc).__name__}: {exc}"[:300])
            self.elapsed += time.perf_counter() - started
            self._record(fields, ticket.id if ticket is not None else None)
        self.cpu += _cpu_s() - cpu_started
        self.messages += len(paths)

    def _record(self, fields: dict[str, str], ticket_id: int | None) -> None:
        opened = ticket_id is not None and ticket_id not in self.seen_tickets
        if ticket_id is not None:
            self.seen_tickets.add(ticket_id)
        if opened and "ticket" in fields:
            self.peer_ids[int(fields["ticket"])] = ticket_id
        self.records[int(fields["seq"])] = {
            "kind": fields["kind"],
            "target": int(fields["target"]) if "target" in fields else None,
            "expected_ticket": int(fields["ticket"]) if "ticket" in fields else None,
            "ticket": ticket_id,
            "ticket_number": ticket_id,
            "opened": opened,
            "outcome": "ticket" if opened else ("followup" if ticket_id else "none"),
        }

    def finish(self) -> dict:
        """Timing and results; the database must agree with what the calls returned."""
        import django
        from django.db import connections
        from helpdesk.models import FollowUp, Ticket

        n = max(self.messages, 1)
        database = {
            "tickets": Ticket.objects.count(),
            "followups": FollowUp.objects.count(),
            "messages_with_result": sum(
                1 for r in self.records.values() if r["ticket"] is not None
            ),
            "tickets_opened_by_calls": len(self.seen_tickets),
        }
        connections.close_all()
        return {
            **_measured(self, n),
            "errors": self.errors,
            "records": self.records,
            "database": database,
            "versions": {
                "python": sys.version.split()[0],
                "django": django.get_version(),
                "django-helpdesk": _dist_version("django-helpdesk"),
            },
        }


def serve(side, corpus: Path) -> None:
    """The child's loop: ``run A B`` processes corpus files A..B-1, ``finish`` prints the result.

    The parent hands out chunks to each side in turn, so both run under the same machine load.
    """
    files = _corpus_files(corpus)
    print("@ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "run":
            side.process(files[int(command[1]):int(command[2])])
            print("@done", flush=True)
        elif command[0] == "finish":
            print("@result " + json.dumps(side.finish()), flush=True)
            return


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


# --- the parent: set up, run both, compare ------------------------------------------------------


def ensure_peer_venv() -> None:
    """Create ``bench/.peer/venv`` with django-helpdesk unless it is there already."""
    if PEER_PYTHON.exists():
        check = subprocess.run(
            [str(PEER_PYTHON), "-c", "import helpdesk, django, psycopg"], capture_output=True
        )
        if check.returncode == 0:
            return
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    print("creating the django-helpdesk venv in bench/.peer/venv ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    subprocess.run(
        [str(PEER_PYTHON), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True
    )


def ensure_corpus(n: int, seed: int) -> Path:
    """The corpus as .eml files in ``bench/.corpus/seed<seed>-n<n>`` (written once)."""
    from bench.corpus import write_corpus

    directory = CORPUS_ROOT / f"seed{seed}-n{n}"
    done = directory / ".complete"
    if not done.exists():
        shutil.rmtree(directory, ignore_errors=True)
        write_corpus(directory, n, seed=seed)
        done.write_text("ok\n")
    return directory


class _Databases:
    """One private database per side, all of one engine, removed afterwards."""

    def __init__(self, engine: str, workdir: Path, sides: tuple[str, ...]):
        self.engine = engine
        self.workdir = workdir
        tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.names = {side: f"tp_bench_{side.replace('-', '_')}_{tag}" for side in sides}

    def __enter__(self) -> dict[str, str]:
        if self.engine == "sqlite":
            self.workdir.mkdir(parents=True, exist_ok=True)
            return {side: f"sqlite:///{self.workdir / (name + '.db')}"
                    for side, name in self.names.items()}
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.names.values():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        urls = {side: f"{base}/{name}" for side, name in self.names.items()}
        # Django wants a plain postgresql:// URL (bench/peer/settings.py parses it).
        return {
            side: url if side == "ours" else url.replace("postgresql+psycopg://", "postgresql://")
            for side, url in urls.items()
        }

    def __exit__(self, *exc) -> None:
        if self.engine == "sqlite":
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class _Child:
    """One side's process, driven over stdin/stdout (see :func:`serve`)."""

    def __init__(self, title: str, python: Path | str, side: str, database_url: str,
                 corpus: Path, workdir: Path, extra: tuple[str, ...] = ()):
        self.title = title
        command = [
            str(python), str(Path(__file__).resolve()), "--child", side,
            "--database-url", database_url, "--corpus", str(corpus), "--workdir", str(workdir),
            *extra,
        ]
        self.stderr = open(workdir / f"{side}-{len(extra)}.stderr", "w+")  # noqa: SIM115
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
        )

    def _expect(self, prefix: str) -> str:
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        self.proc.wait()
        self.stderr.seek(0)
        sys.stderr.write(self.stderr.read()[-4000:])
        raise SystemExit(
            f"the {self.title} process ended unexpectedly (exit {self.proc.returncode})"
        )

    def ready(self) -> None:
        self._expect("@ready")

    def run(self, start: int, stop: int) -> None:
        self.proc.stdin.write(f"run {start} {stop}\n")
        self.proc.stdin.flush()
        self._expect("@done")

    def finish(self) -> dict:
        self.proc.stdin.write("finish\n")
        self.proc.stdin.flush()
        result = json.loads(self._expect("@result"))
        self.proc.wait(timeout=60)
        self.stderr.close()
        result["records"] = {int(k): v for k, v in result["records"].items()}
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_interleaved(children: list[_Child], n: int, chunk: int) -> list[dict]:
    """Start every side, then hand each the same chunk of the corpus in turn; collect results."""
    try:
        for child in children:
            child.ready()
        for start in range(0, n, chunk):
            for child in children:
                child.run(start, min(start + chunk, n))
            print(f"  {min(start + chunk, n)}/{n}", file=sys.stderr, end="\r")
        print(file=sys.stderr)
        return [child.finish() for child in children]
    finally:
        for child in children:
            child.kill()


def score(records: dict[int, dict]) -> dict[str, tuple[int, int]]:
    """Correctness rows as (good, total), from the per-message records of one side."""
    def of(kind):
        return [r for r in records.values() if r["kind"] == kind]

    def ticket_of(seq):
        target = records.get(seq)
        return target["ticket"] if target else None

    news, dups, replies = of("new"), of("duplicate"), of("reply")
    autos, wrong = of("auto_reply"), of("wrong_client_tag")
    return {
        "new messages opened a ticket": (sum(r["opened"] for r in news), len(news)),
        "duplicates not ticketed twice": (sum(r["ticket"] is None for r in dups), len(dups)),
        "replies threaded onto their ticket": (
            sum(
                not r["opened"] and r["ticket"] is not None
                and r["ticket"] == ticket_of(r["target"])
                for r in replies
            ),
            len(replies),
        ),
        "auto-replies ignored": (sum(r["ticket"] is None for r in autos), len(autos)),
        "wrong-client tags refused": (
            sum(r["ticket"] != ticket_of(r["target"]) for r in wrong), len(wrong)
        ),
    }


def tags_named_their_ticket(records: dict[int, dict]) -> tuple[int, int]:
    """Of our wrong-client messages, how many carried the number of the ticket they aimed at.

    The corpus writes ``[#N]`` expecting tickets numbered 1, 2, 3… in arrival order; this checks
    that assumption held, so the wrong-client row tested what it claims to test.
    """
    wrong = [r for r in records.values() if r["kind"] == "wrong_client_tag"]
    good = sum(
        records[r["target"]]["ticket_number"] == records[r["target"]]["expected_ticket"]
        for r in wrong
    )
    return good, len(wrong)


def _cell(good_total: tuple[int, int]) -> str:
    good, total = good_total
    return f"{good}/{total} ({100 * good / total:.1f} %)" if total else "–"


def report(sides: list[tuple[str, dict]], *, n: int, engine: str, seed: int) -> str:
    """The side-by-side Markdown table: ours, then the peer with its mails off (the like-for-like
    reference), then the peer as shipped (its acknowledgement mails on)."""
    like_for_like, shipped = sides[1][1]["per_s"], sides[2][1]["per_s"]
    scores = [score(result["records"]) for _, result in sides]

    def row(label: str, cells) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        row(f"{n} messages, seed {seed}, {engine}", [title for title, _ in sides]),
        "|---" * (len(sides) + 1) + "|",
        row("messages/s", [f"{r['per_s']:.1f}" for _, r in sides]),
        row("throughput relative to django-helpdesk, mails off (like for like)",
            [f"{r['per_s'] / like_for_like:.2f}×" for _, r in sides]),
        row("throughput relative to django-helpdesk as shipped (mails on)",
            [f"{r['per_s'] / shipped:.2f}×" for _, r in sides]),
        row("wall time of the message loop", [f"{r['elapsed_s']:.1f} s" for _, r in sides]),
        row("CPU time of the process per message",
            [f"{r['cpu_ms_per_message']:.1f} ms" for _, r in sides]),
        row("SQL statements per message (BEGIN/COMMIT included)",
            [f"{r['sql_per_message']:.1f}" for _, r in sides]),
        row("of which transaction control (BEGIN, COMMIT, SAVEPOINT, ...)",
            [f"{r['sql_per_message'] - r['queries_per_message']:.1f}" for _, r in sides]),
        row("durable commits per message (COMMIT, or a write in autocommit)",
            [f"{r['commits_per_message']:.1f}" for _, r in sides]),
        row("peak RSS of the process", [f"{r['peak_rss_mb']:.0f} MB" for _, r in sides]),
        row("exceptions", [str(len(r["errors"])) for _, r in sides]),
    ]
    for label in scores[0]:
        lines.append(row(label, [_cell(sc[label]) for sc in scores]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="corpus size (default 3000)")
    parser.add_argument("--quick", action="store_true", help="300 messages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--steps", action="store_true",
                        help="also time each of our routing steps (ms per message, on stderr)")
    parser.add_argument("--peer-without-mail", action="store_true",
                        help=argparse.SUPPRESS)  # always done now: the like-for-like headline
    parser.add_argument("--no-notify", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ours-one-by-one", action="store_true",
                        help="store and route each of our messages in its own transactions (store commit, "
                             "routing commit) instead of as a mailbox backlog (batched)")
    parser.add_argument("--dump", metavar="FILE.json", help="write every message's result per side")
    parser.add_argument("--chunk", type=int, default=50,
                        help="messages per turn; the sides take turns on the corpus (default 50)")
    parser.add_argument("--child", choices=("ours", "peer"), help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "ours":
        serve(OursSide(args.database_url, steps=args.steps, one_by_one=args.ours_one_by_one),
              Path(args.corpus))
        return 0
    if args.child == "peer":
        media = Path(args.workdir) / ("media-quiet" if args.no_notify else "media")
        serve(PeerSide(args.database_url, media, notify=not args.no_notify), Path(args.corpus))
        return 0

    n = 300 if args.quick else args.n
    ensure_peer_venv()
    corpus = ensure_corpus(n, args.seed)
    workdir = PEER_DIR / f"run-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    sides = ("ours", "peer-no-mail", "peer")
    load_start = _load_average()
    try:
        with _Databases(args.engine, workdir / "db", sides) as urls:
            children = [
                _Child("ticketpost", sys.executable, "ours", urls["ours"], corpus, workdir,
                       (("--steps",) if args.steps else ())
                       + (("--ours-one-by-one",) if args.ours_one_by_one else ())),
                _Child("django-helpdesk, mails off", PEER_PYTHON, "peer", urls["peer-no-mail"],
                       corpus, workdir, ("--no-notify",)),
                _Child("django-helpdesk", PEER_PYTHON, "peer", urls["peer"], corpus, workdir),
            ]
            print(f"{n} messages, chunks of {args.chunk}, sides in turn: "
                  + ", ".join(c.title for c in children), file=sys.stderr)
            outcomes = run_interleaved(children, n, args.chunk)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_end = _load_average()
    ours, quiet, peer = outcomes
    version = _peer_version(peer)
    titles = ["ticketpost", f"django-helpdesk {version}, mails off", f"django-helpdesk {version}"]
    results = list(zip(titles, outcomes))

    if args.dump:
        Path(args.dump).write_text(json.dumps(dict((r["side"], r) for _, r in results), indent=1))
    print(report(results, n=n, engine=args.engine, seed=args.seed))
    sanity = tags_named_their_ticket(ours["records"])
    print(f"\nour ticket numbers matched the corpus' [#N] tags for {sanity[0]}/{sanity[1]} "
          "wrong-client messages", file=sys.stderr)
    for title, result in results[1:]:
        print(f"{title} database: {result['database']}", file=sys.stderr)
    if ours.get("step_ms_per_message"):
        steps = ", ".join(f"{k} {v:.2f}" for k, v in sorted(
            ours["step_ms_per_message"].items(), key=lambda kv: -kv[1]))
        print(f"our routing steps, ms per message: {steps}", file=sys.stderr)
    for title, result in results:
        for error in result["errors"][:5]:
            print(f"{title} error: {error}", file=sys.stderr)
    print(f"versions: ours {ours['versions']}, peer {peer['versions']}", file=sys.stderr)
    print(f"load average at start / end: {load_start} / {load_end}", file=sys.stderr)
    print(json.dumps({
        "ours_per_s": round(ours["per_s"], 1),
        "peer_per_s": round(peer["per_s"], 1),
        "ratio": round(ours["per_s"] / peer["per_s"], 2),
        "peer_without_mail_per_s": round(quiet["per_s"], 1),
        "ratio_like_for_like": round(ours["per_s"] / quiet["per_s"], 2),
        "ours_statements_per_message": round(ours["sql_per_message"], 2),
        "peer_statements_per_message": round(quiet["sql_per_message"], 2),
        "ours_commits_per_message": round(ours["commits_per_message"], 2),
        "peer_commits_per_message": round(quiet["commits_per_message"], 2),
        "ours_cpu_ms_per_message": round(ours["cpu_ms_per_message"], 2),
        "peer_cpu_ms_per_message": round(quiet["cpu_ms_per_message"], 2),
        "ours_shape": "one by one" if args.ours_one_by_one else "batched",
        "load_average_start": load_start,
        "load_average_end": load_end,
    }))
    return 0


def _load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _peer_version(result: dict) -> str:
    return result["versions"]["django-helpdesk"]


if __name__ == "__main__":
    sys.exit(main())
