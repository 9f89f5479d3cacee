"""OAuth2 IMAP (SPEC §9): SASL XOAUTH2 against the real Dovecot whose ``oauth2`` passdb asks a
token server on loopback; rotation, restarts, revoked grants and recovery."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from admin_api.metrics import render_metrics
from admin_api.services.mailboxes import create_mailbox, mailbox_health
from ingest.imap import ImapService
from models.oauth2 import AuthFailed, TokenProvider
from models import Mailbox
from models.db import session_scope
from models.secrets import decrypt_secret
from tests.conftest import service_missing
from tests.ingest.dovecot import Dovecot, DovecotUnavailable
from tests.ingest.imap_support import (
    SECRET_KEY,
    eventually,
    imap_settings,
    inbound_count,
    mailbox_row,
    message,
)

pytestmark = pytest.mark.dovecot


@pytest.fixture
def oauth_dovecot(token_server):
    """A private Dovecot whose XOAUTH2 logins are checked at the token server's introspection."""
    try:
        server = Dovecot.create(oauth2_introspection_url=f"{token_server.url}/introspect")
        server.start()
    except (DovecotUnavailable, OSError) as exc:
        service_missing("Dovecot", str(exc))
    token_server.app_user = server.user
    token_server.register("app-1", "client-secret-1")
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def running():
    """Start ImapServices with ``running(settings, engine)``; all stopped at the end."""
    started: list[ImapService] = []

    def start(settings, engine) -> ImapService:
        service = ImapService(engine=engine, settings=settings, hand_over=lambda _id: True)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop(15)


def add_oauth2_mailbox(engine, dovecot, token_server, **oauth2) -> int:
    with session_scope(engine) as session:
        mailbox = create_mailbox(
            session, name="support", host=dovecot.host, port=dovecot.port, security="none",
            username=dovecot.user, auth="oauth2",
            oauth2={"provider": "microsoft", "client_id": "app-1",
                    "token_url": token_server.token_url(), **oauth2},
            secret_key=SECRET_KEY,
        )
        session.flush()
        return mailbox.id


def stored_refresh_token(engine, mailbox_id: int) -> str:
    with session_scope(engine) as session:
        blob = session.scalar(select(Mailbox.oauth2_refresh_token_encrypted)
                              .where(Mailbox.id == mailbox_id))
    return decrypt_secret(blob, key=SECRET_KEY)


def test_client_credentials_log_in_with_xoauth2_and_one_token_serves_many_passes(
    oauth_dovecot, token_server, engine, database_url, running
):
    mailbox_id = add_oauth2_mailbox(engine, oauth_dovecot, token_server,
                                    client_secret="client-secret-1")
    settings = imap_settings(database_url, oauth_dovecot, imap_sweep_interval_s=0.2)
    service = running(settings, engine)
    for n in range(3):
        oauth_dovecot.append([message(n)])
        eventually(lambda: inbound_count(engine) == n + 1, what=f"message {n} stored")
    poller = service.pollers[mailbox_id]
    eventually(lambda: poller.passes >= 5, what="several sync passes")
    assert token_server.count("client_credentials") == 1
    assert token_server.requests["client_credentials"] == 1
    row = mailbox_row(engine, mailbox_id)
    assert mailbox_health(row) == "ok" and row.auth_error is None


def test_a_rotated_refresh_token_is_stored_and_a_restart_after_many_rotations_keeps_working(
    oauth_dovecot, token_server, engine, database_url, running
):
    first = token_server.issue_refresh_token(oauth_dovecot.user, "app-1")
    mailbox_id = add_oauth2_mailbox(engine, oauth_dovecot, token_server, grant="refresh_token",
                                    refresh_token=first)
    # when Dovecot asks about an access token, the refresh token issued with it is stored already
    checks: list[bool] = []
    token_server.on_introspect = lambda token: checks.append(
        stored_refresh_token(engine, mailbox_id) == token_server.issued_with.get(token))
    settings = imap_settings(database_url, oauth_dovecot)
    service = running(settings, engine)
    oauth_dovecot.append([message(1)])
    eventually(lambda: inbound_count(engine) == 1, what="first message stored")
    service.stop(15)

    # five more rotations, each as a new process would do it (no cache)
    seen = {first}
    for _ in range(5):
        TokenProvider(engine=engine, settings=settings).access_token(mailbox_id)
        current = stored_refresh_token(engine, mailbox_id)
        assert current not in seen and current in token_server.refresh  # stored, and valid
        seen.add(current)
    assert all(old not in token_server.refresh for old in seen - {current})  # old ones are dead

    running(imap_settings(database_url, oauth_dovecot), engine)  # a restart: a new cache
    oauth_dovecot.append([message(2)])
    eventually(lambda: inbound_count(engine) == 2, what="mail after the restart")
    assert token_server.count("refresh_token") == 7
    assert len(checks) == 2 and all(checks)  # two logins, each after its rotation was stored
    assert mailbox_health(mailbox_row(engine, mailbox_id)) == "ok"


def test_a_revoked_grant_is_auth_failed_with_the_provider_code_and_recovers_when_fixed(
    oauth_dovecot, token_server, engine, database_url, running
):
    user = oauth_dovecot.user
    mailbox_id = add_oauth2_mailbox(
        engine, oauth_dovecot, token_server, grant="refresh_token",
        refresh_token=token_server.issue_refresh_token(user, "app-1"),
    )
    token_server.revoke(user)
    settings = imap_settings(database_url, oauth_dovecot, oauth2_auth_failure_backoff_s=0.3)
    running(settings, engine)

    row = eventually(lambda: (r := mailbox_row(engine, mailbox_id)).auth_error and r,
                     what="auth_failed")
    assert mailbox_health(row) == "auth_failed"
    assert row.auth_error.startswith("invalid_grant: AADSTS50173")
    metrics = render_metrics(engine=engine).decode()
    assert 'ticketpost_mailbox_auth_failed{error="invalid_grant",mailbox="support"} 1.0' in metrics
    eventually(lambda: mailbox_row(engine, mailbox_id).consecutive_failures >= 3,
               what="three attempts")
    # backoff, never a tight loop: one token request per recorded attempt
    failures = mailbox_row(engine, mailbox_id).consecutive_failures
    assert token_server.count("refresh_token") <= failures + 1

    token_server.restore(user)  # consent given again
    oauth_dovecot.append([message(1)])
    eventually(lambda: inbound_count(engine) == 1, what="mail after recovery")
    row = mailbox_row(engine, mailbox_id)
    assert row.auth_error is None and mailbox_health(row) == "ok"
    assert 'ticketpost_mailbox_auth_failed{error="invalid_grant",mailbox="support"} 1.0' \
        not in render_metrics(engine=engine).decode()


def test_a_wrong_client_secret_and_a_disabled_app_are_told_apart(token_server, sqlite_engine):
    from core.settings import Settings

    token_server.register("app-1", "right")
    with session_scope(sqlite_engine) as session:
        mailbox = create_mailbox(
            session, name="m", host="h", username="u@x", auth="oauth2",
            oauth2={"provider": "microsoft", "client_id": "app-1", "client_secret": "wrong",
                    "token_url": token_server.token_url()},
            secret_key=SECRET_KEY,
        )
        session.flush()
        mailbox_id = mailbox.id
    provider = TokenProvider(engine=sqlite_engine, settings=Settings(secret_key=SECRET_KEY))
    with pytest.raises(AuthFailed) as wrong:
        provider.access_token(mailbox_id)
    assert wrong.value.code == "invalid_client" and "AADSTS7000215" in str(wrong.value)
    token_server.disable("app-1")
    with pytest.raises(AuthFailed) as disabled:
        provider.access_token(mailbox_id)
    assert disabled.value.code == "unauthorized_client" and "AADSTS7000112" in str(disabled.value)


def test_a_google_service_account_acts_for_the_mailbox_user_with_domain_wide_delegation(
    token_server, oauth_dovecot, sqlite_engine, sqlite_url, running
):
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    email = "ticketpost@msp-project.iam.gserviceaccount.com"
    token_server.service_accounts[email] = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    service_key = json.dumps({"type": "service_account", "client_email": email,
                              "private_key": pem, "private_key_id": "k1"})
    with session_scope(sqlite_engine) as session:
        mailbox = create_mailbox(
            session, name="support", host=oauth_dovecot.host, port=oauth_dovecot.port,
            security="none", username=oauth_dovecot.user, auth="oauth2",
            oauth2={"provider": "google", "grant": "service_account", "client_secret": service_key,
                    "token_url": token_server.token_url()},
            secret_key=SECRET_KEY,
        )
    token_server.app_user = None  # only the assertion's subject may log in
    running(imap_settings(sqlite_url, oauth_dovecot), sqlite_engine)
    oauth_dovecot.append([message(1)])
    eventually(lambda: inbound_count(sqlite_engine) == 1, what="mail through the service account")
    grant = next(iter(token_server.access.values()))
    assert grant.user == oauth_dovecot.user and grant.client_id == email
    assert grant.scope == "https://mail.google.com/"


def test_a_token_the_imap_server_refuses_is_auth_failed_and_asked_for_anew(
    oauth_dovecot, token_server, sqlite_engine, sqlite_url, running
):
    token_server.app_user = "somebody-else"  # the app may not open this mailbox
    mailbox_id = add_oauth2_mailbox(sqlite_engine, oauth_dovecot, token_server,
                                    client_secret="client-secret-1")
    running(imap_settings(sqlite_url, oauth_dovecot, oauth2_auth_failure_backoff_s=0.2),
            sqlite_engine)
    row = eventually(lambda: (r := mailbox_row(sqlite_engine, mailbox_id)).auth_error and r,
                     what="auth_failed")
    assert row.auth_error.startswith("imap_login_refused: ") and "AUTHENTICATIONFAILED" in row.auth_error
    token_server.app_user = oauth_dovecot.user  # Add-MailboxPermission done
    oauth_dovecot.append([message(1)])
    eventually(lambda: inbound_count(sqlite_engine) == 1, what="mail once permitted")
    assert mailbox_row(sqlite_engine, mailbox_id).auth_error is None
    assert token_server.count("client_credentials") >= 2  # a refused token is not reused
