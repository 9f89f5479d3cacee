"""Several poller processes on one mailbox (PostgreSQL): crashes and competition lose nothing and
duplicate nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from ingest.imap import ImapService
from ingest.imap_lock import NAMESPACE
from models import InboundMessage, TicketMessage
from models.db import session_scope
from routing.pipeline import route_inbound
from tests.ingest.imap_support import (
    SECRET_KEY,
    add_mailbox,
    ago,
    eventually,
    imap_settings,
    inbound_count,
    mailbox_row,
    message,
    seed_client,
    stored_message_ids,
    ticket_count,
)

pytestmark = [pytest.mark.dovecot, pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def child_env(pg_url: str, dovecot, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
    env.update(
        TICKETPOST_DATABASE_URL=pg_url,
        TICKETPOST_SECRET_KEY=SECRET_KEY,
        TICKETPOST_IMAP_CA_FILE=str(dovecot.cert_path),
        TICKETPOST_IMAP_RELOAD_INTERVAL_S="0.3",
        TICKETPOST_IMAP_BACKOFF_INITIAL_S="0.1",
        TICKETPOST_IMAP_BACKOFF_MAX_S="0.5",
        TICKETPOST_IMAP_BATCH_SIZE="10",
        TICKETPOST_SWEEPER_GRACE_S="1",
        TICKETPOST_SWEEPER_INTERVAL_S="1",
        PGAPPNAME=name,  # libpq: shows in pg_stat_activity, so the test sees who holds the lock
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture
def processes():
    """Start child processes with ``processes(args, env)``; each is killed by its PID at the end."""
    started: list[subprocess.Popen] = []

    def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def lock_holder(engine, mailbox_id: int) -> str | None:
    """The application name of the connection holding the mailbox's advisory lock."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :ns "
                "AND l.objid::bigint = :id AND l.objsubid = 2 AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"ns": NAMESPACE, "id": mailbox_id},
        ).scalar()


def test_kill_9_between_commit_and_flag_duplicates_nothing_after_restart(
    dovecot, pg_engine, pg_url, processes, tmp_path
):
    seed_client(pg_engine)
    mailbox_id = add_mailbox(pg_engine, dovecot, since=ago(hours=1))
    dovecot.append([message(n) for n in range(25)])
    marker = tmp_path / "committed.json"
    child = processes(["-m", "tests.ingest.imap_child", str(marker)],
                      child_env(pg_url, dovecot, "crashing-poller"))

    eventually(marker.exists, timeout=60, what="the child's first commit")
    committed = json.loads(marker.read_text())
    child.send_signal(signal.SIGKILL)
    child.wait(10)

    # committed, but neither flagged nor handed over: exactly the crash window
    assert len(committed) == 10 and inbound_count(pg_engine) == 10
    assert not any(b"\\Seen" in flags for flags in dovecot.flags().values())

    settings = imap_settings(pg_url, dovecot, imap_batch_size=10)
    service = ImapService(
        engine=pg_engine, settings=settings,
        hand_over=lambda i: route_inbound(i, engine=pg_engine, settings=settings),
    ).start()
    try:
        eventually(lambda: mailbox_row(pg_engine, mailbox_id).acked_uid == 25, what="all acked")
    finally:
        service.stop(10)
    ids = stored_message_ids(pg_engine)
    assert len(ids) == 25 and len(set(ids)) == 25
    assert all(b"\\Seen" in flags for flags in dovecot.flags().values())
    # the crashed process never handed its ten over: the sweeper's job, done here by hand
    with session_scope(pg_engine) as session:
        waiting = session.scalars(
            select(InboundMessage.id).where(InboundMessage.status == "received")
        ).all()
    assert sorted(waiting) == sorted(committed)
    for inbound_id in waiting:
        route_inbound(inbound_id, engine=pg_engine, settings=settings)
    assert ticket_count(pg_engine) == 25


def test_two_pollers_on_one_mailbox_take_each_message_once_and_fail_over(
    dovecot, pg_engine, pg_url, processes
):
    seed_client(pg_engine)
    mailbox_id = add_mailbox(pg_engine, dovecot)
    pollers = {
        name: processes(["-m", "ticketpost.cli", "imap"], child_env(pg_url, dovecot, name))
        for name in ("poller-a", "poller-b")
    }
    eventually(lambda: mailbox_row(pg_engine, mailbox_id).last_success_at, timeout=60,
               what="a first pass")

    for start in range(0, 60, 10):  # mail keeps arriving while both run
        dovecot.append([message(n) for n in range(start, start + 10)])
    eventually(lambda: mailbox_row(pg_engine, mailbox_id).acked_uid == 60, timeout=60,
               what="60 acked")

    holder = lock_holder(pg_engine, mailbox_id)
    assert holder in pollers
    pollers[holder].send_signal(signal.SIGKILL)
    pollers[holder].wait(10)
    dovecot.append([message(n) for n in range(60, 80)])

    eventually(lambda: mailbox_row(pg_engine, mailbox_id).acked_uid == 80, timeout=60,
               what="the standby took over")
    assert lock_holder(pg_engine, mailbox_id) == ({"poller-a", "poller-b"} - {holder}).pop()
    ids = stored_message_ids(pg_engine)
    assert len(ids) == 80 and len(set(ids)) == 80
    eventually(lambda: ticket_count(pg_engine) == 80, timeout=60, what="80 tickets")
    with session_scope(pg_engine) as session:
        assert session.scalar(select(func.count(TicketMessage.id))) == 80
