"""``ticketpost mailbox add`` with OAuth2 settings and ``ticketpost mailbox authorize`` (device code)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from models import Mailbox
from models.db import session_scope
from models.secrets import decrypt_secret
from tests.ingest.imap_support import SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ticketpost.cli", *args], env=env, cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, **kw,
    )


def test_authorize_prints_the_code_and_url_waits_for_consent_and_stores_the_refresh_token(
    token_server, sqlite_url, sqlite_engine
):
    env = {**os.environ, "TICKETPOST_DATABASE_URL": sqlite_url, "TICKETPOST_SECRET_KEY": SECRET_KEY,
           "PYTHONPATH": str(ROOT), "APP_SECRET": "s3cret"}
    add = cli("mailbox", "add", "m365", "--host", "outlook.office365.com",
              "--username", "support@msp.example", "--provider", "microsoft",
              "--client-id", "app-1", "--client-secret-env", "APP_SECRET",
              "--grant", "refresh_token", "--token-url", token_server.token_url(), env=env)
    out, err = add.communicate(timeout=60)
    assert add.returncode == 0, err
    assert "auth oauth2" in out and "ticketpost mailbox authorize" in out

    run = cli("mailbox", "authorize", "m365", env=env)
    code = None
    for line in run.stdout:
        if line.startswith("code:"):
            code = line.split(":", 1)[1].strip()
            break
    assert code, run.stderr.read()
    token_server.approve(code, "support@msp.example")
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert "refresh token stored" in out

    with session_scope(sqlite_engine) as session:
        row = session.scalars(select(Mailbox)).one()
        stored = decrypt_secret(row.oauth2_refresh_token_encrypted, key=SECRET_KEY)
        assert decrypt_secret(row.oauth2_client_secret_encrypted, key=SECRET_KEY) == "s3cret"
    assert token_server.refresh[stored].user == "support@msp.example"
    assert "offline_access" in token_server.refresh[stored].scope


def test_a_graph_mailbox_is_added_on_the_command_line_with_its_secret_from_the_environment(
    sqlite_url, sqlite_engine
):
    env = {**os.environ, "TICKETPOST_DATABASE_URL": sqlite_url, "TICKETPOST_SECRET_KEY": SECRET_KEY,
           "PYTHONPATH": str(ROOT), "M365_SECRET": "graph-s3cret"}
    add = cli("mailbox", "add", "m365", "--kind", "graph", "--user", "support@msp.example",
              "--folder", "inbox", "--provider", "microsoft", "--tenant-id", "contoso.example",
              "--client-id", "app-2", "--client-secret-env", "M365_SECRET", env=env)
    out, err = add.communicate(timeout=60)
    assert add.returncode == 0, err
    assert "graph user support@msp.example" in out and "graph-s3cret" not in out
    with session_scope(sqlite_engine) as session:
        row = session.scalars(select(Mailbox)).one()
        assert (row.kind, row.auth, row.username, row.oauth2_grant) == \
            ("graph", "oauth2", "support@msp.example", "client_credentials")
        assert decrypt_secret(row.oauth2_client_secret_encrypted, key=SECRET_KEY) == "graph-s3cret"
    missing = cli("mailbox", "add", "other", "--kind", "graph", "--provider", "microsoft",
                  "--tenant-id", "t", "--client-id", "c", "--client-secret-env", "M365_SECRET",
                  env=env)
    out, err = missing.communicate(timeout=60)
    assert missing.returncode == 2 and "user" in err
