"""``ticketpost route FILE.eml`` stores, routes and prints the decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.orm import Session

from models import InboundMessage
from tests.routing.world import build_world

MAIL = Path(__file__).resolve().parent.parent / "mail"


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
    env["TICKETPOST_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "ticketpost.cli", "route", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_route_prints_outcome_reason_ticket_and_explanation(engine, database_url):
    with Session(engine) as session, session.begin():
        build_world(session)
    done = run_cli(database_url, str(MAIL / "created_existing_contact.eml"))
    assert done.returncode == 0, done.stderr
    assert "outcome: ticket_created" in done.stdout
    assert "reason:  new ticket #1 for client 'Acme'" in done.stdout
    assert "ticket:  #1" in done.stdout
    assert "client      bob@acme.com is a contact of client 'Acme'" in done.stdout
    with Session(engine) as session:
        assert session.get(InboundMessage, 1).source == "cli"


def test_route_json_and_a_rejection_still_exit_zero(engine, database_url):
    done = run_cli(database_url, "--json", str(MAIL / "rejected_invalid_sender_missing.eml"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "rejected_invalid_sender"
    assert result["ticket_number"] is None


def test_route_reports_a_missing_file(sqlite_url, tmp_path):
    done = run_cli(sqlite_url, str(tmp_path / "nope.eml"))
    assert done.returncode == 2
    assert "cannot read" in done.stderr
