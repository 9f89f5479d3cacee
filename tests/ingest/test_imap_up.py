"""``ticketpost up`` runs the IMAP pollers of enabled mailboxes next to everything else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from models import Mailbox
from models.db import session_scope
from tests.conftest import free_port
from tests.ingest.imap_support import (
    SECRET_KEY,
    add_mailbox,
    eventually,
    message,
    seed_client,
    ticket_count,
)

pytestmark = [pytest.mark.dovecot, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_ticketpost_up_turns_mail_in_an_imap_mailbox_into_a_ticket(
    dovecot, sqlite_engine, sqlite_url, tmp_path
):
    seed_client(sqlite_engine)
    add_mailbox(sqlite_engine, dovecot)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
    env.update(
        TICKETPOST_DATABASE_URL=sqlite_url,
        TICKETPOST_SECRET_KEY=SECRET_KEY,
        TICKETPOST_SMTP_PORT=str(free_port()),
        TICKETPOST_API_PORT=str(free_port()),
        PYTHONPATH=str(ROOT),
    )
    up = subprocess.Popen(
        [sys.executable, "-m", "ticketpost.cli", "up"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        eventually(lambda: _polled(sqlite_engine), timeout=60, what="the poller's first pass")
        dovecot.append([message(1, subject="Scanner offline")])
        eventually(lambda: ticket_count(sqlite_engine) == 1, timeout=60, what="a ticket")
    finally:
        up.send_signal(signal.SIGTERM)
        output = up.communicate(timeout=60)[0]
    assert up.returncode == 0, output
    assert "IMAP pollers: running" in output


def _polled(engine) -> bool:
    with session_scope(engine) as session:
        return bool(session.scalar(select(Mailbox.last_success_at)))
