"""``ticketpost mailbox add|list|remove``: passwords encrypted at rest, refused without a key."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ingest.imap import ImapService
from ingest.imap_sync import uid_set
from models import Mailbox
from models.db import dispose_engines, session_scope
from models.secrets import decrypt_secret
from tests.ingest.imap_support import (
    SECRET_KEY,
    eventually,
    imap_settings,
    inbound_count,
    message,
)
from ticketpost.cli import main
from core.settings import reset_settings


@pytest.fixture
def cli_env(sqlite_url, monkeypatch):
    """The CLI pointed at a fresh SQLite database, with the secret key set."""
    monkeypatch.setenv("TICKETPOST_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TICKETPOST_SECRET_KEY", SECRET_KEY)
    reset_settings()
    yield monkeypatch
    dispose_engines()


def add_args(dovecot, name="support", *extra):
    return ["mailbox", "add", name, "--host", dovecot.host, "--port", str(dovecot.port),
            "--security", "none", "--username", dovecot.user, "--password-env", "IMAP_PW", *extra]


@pytest.mark.dovecot
def test_a_mailbox_added_on_the_command_line_keeps_its_password_encrypted_and_works(
    dovecot, cli_env, sqlite_engine, sqlite_url, capsys
):
    cli_env.setenv("IMAP_PW", dovecot.password)
    assert main(add_args(dovecot)) == 0
    assert "takes in mail arriving from now on" in capsys.readouterr().out

    with session_scope(sqlite_engine) as session:
        row = session.scalars(select(Mailbox)).one()
        stored = bytes(row.password_encrypted)
    assert dovecot.password.encode() not in stored
    assert decrypt_secret(stored, key=SECRET_KEY) == dovecot.password

    service = ImapService(engine=sqlite_engine, settings=imap_settings(sqlite_url, dovecot),
                          hand_over=lambda i: True).start()
    try:
        eventually(lambda: service.pollers and next(iter(service.pollers.values())).passes,
                   what="a first pass")
        dovecot.append([message(1)])
        eventually(lambda: inbound_count(sqlite_engine) == 1, what="the message")
    finally:
        service.stop(10)

    assert main(["mailbox", "list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [m["name"] for m in listed] == ["support"]
    assert listed[0]["last_success_at"] and listed[0]["consecutive_failures"] == 0
    assert not any("password" in key for key in listed[0])
    assert main(["mailbox", "list"]) == 0
    assert dovecot.password not in capsys.readouterr().out


def test_adding_a_mailbox_without_the_secret_key_is_refused_and_stores_nothing(
    cli_env, sqlite_engine, capsys
):
    cli_env.delenv("TICKETPOST_SECRET_KEY")
    cli_env.setenv("IMAP_PW", "hunter2")
    reset_settings()
    code = main(["mailbox", "add", "support", "--host", "imap.example", "--username", "u",
                 "--password-env", "IMAP_PW"])
    assert code == 2
    assert "TICKETPOST_SECRET_KEY is not set" in capsys.readouterr().err
    with session_scope(sqlite_engine) as session:
        assert session.scalars(select(Mailbox)).all() == []


def test_a_mailbox_without_a_password_is_refused(cli_env, sqlite_engine, capsys):
    code = main(["mailbox", "add", "support", "--host", "imap.example", "--username", "u",
                 "--password-env", "NOT_SET_ANYWHERE"])
    assert code == 2
    assert "no password given" in capsys.readouterr().err


def test_since_and_remove_on_the_command_line(cli_env, sqlite_engine, capsys):
    cli_env.setenv("IMAP_PW", "pw")
    assert main(["mailbox", "add", "archive", "--host", "imap.example", "--username", "u",
                 "--password-env", "IMAP_PW", "--since", "2026-01-31",
                 "--processed-folder", "Done"]) == 0
    assert "mail since 2026-01-31" in capsys.readouterr().out
    with session_scope(sqlite_engine) as session:
        row = session.scalars(select(Mailbox)).one()
        assert (row.since.year, row.since.month, row.since.day) == (2026, 1, 31)
        assert row.processed_folder == "Done" and row.port is None

    assert main(["mailbox", "remove", "archive"]) == 0
    assert main(["mailbox", "remove", "archive"]) == 1
    assert "does not exist" in capsys.readouterr().err
    with session_scope(sqlite_engine) as session:
        assert session.scalars(select(Mailbox)).all() == []


def test_a_bad_since_date_is_a_clear_error(cli_env, capsys):
    with pytest.raises(SystemExit):
        main(["mailbox", "add", "x", "--host", "h", "--username", "u", "--since", "last tuesday"])
    assert "is not a date" in capsys.readouterr().err


def test_uid_sets_are_compact_ranges():
    assert uid_set([5, 1, 2, 3, 9, 10, 3]) == ["1:3", "5", "9:10"]
    assert uid_set([]) == []


def test_a_graph_mailbox_is_listed_by_its_user_not_as_an_imap_login(cli_env, capsys):
    cli_env.setenv("GRAPH_SECRET", "s3cr3t")
    assert main(["mailbox", "add", "m365", "--kind", "graph", "--auth", "oauth2",
                 "--user", "help@msp.example", "--provider", "microsoft", "--tenant-id", "t",
                 "--client-id", "c", "--client-secret-env", "GRAPH_SECRET"]) == 0
    capsys.readouterr()
    assert main(["mailbox", "list"]) == 0
    line = capsys.readouterr().out.strip()
    assert "graph help@msp.example at graph.microsoft.com" in line
    assert "UIDVALIDITY" not in line and ":993" not in line and "s3cr3t" not in line
