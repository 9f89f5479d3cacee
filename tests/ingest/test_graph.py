"""Microsoft Graph mailboxes (SPEC §9) against a local Graph server: delta pages, raw MIME, mark
read after commit, Retry-After, expired delta links, two pollers, kill -9, auth failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from admin_api.services.mailboxes import create_mailbox, mailbox_health, update_mailbox
from core.settings import Settings
from ingest.graph import GraphService
from models import GraphMessage, InboundMessage, Ticket
from models.db import session_scope
from tests.graph_server import GraphServer
from tests.ingest.imap_support import SECRET_KEY, eventually, mailbox_row, message, seed_client

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "graph:support"


def graph_settings(database_url: str, **overrides) -> Settings:
    values = dict(database_url=database_url, secret_key=SECRET_KEY, graph_poll_seconds=0.1,
                  imap_backoff_initial_s=0.1, imap_backoff_max_s=0.3, imap_reload_interval_s=0.2,
                  oauth2_auth_failure_backoff_s=0.2, graph_page_size=10)
    values.update(overrides)
    return Settings(**values)


def add_graph_mailbox(engine, graph: GraphServer, **fields) -> int:
    with session_scope(engine) as session:
        mailbox = create_mailbox(
            session, name="support", kind="graph", user="support@msp.example",
            graph_base_url=graph.url,
            oauth2={"provider": "microsoft", "client_id": graph.client_id,
                    "client_secret": fields.pop("client_secret", graph.client_secret),
                    "token_url": graph.token_url},
            secret_key=SECRET_KEY, **fields,
        )
        session.flush()
        return mailbox.id


def stored(engine) -> list[str]:
    with session_scope(engine) as session:
        return list(session.scalars(select(InboundMessage.message_id)
                                    .where(InboundMessage.source == SOURCE)
                                    .order_by(InboundMessage.id)))


def deliver(graph: GraphServer, n: int, **kw) -> str:
    mid = f"{n}.graph@acme.example"
    return graph.deliver(message(n, message_id=f"<{mid}>"), message_id=f"<{mid}>",
                         sender=f"user{n}@acme.example", **kw)


@pytest.fixture
def services():
    started: list[GraphService] = []

    def start(settings, engine, hand_over=None) -> GraphService:
        service = GraphService(engine=engine, settings=settings,
                               hand_over=hand_over or (lambda _id: True))
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop(15)


def test_new_mail_is_stored_as_raw_mime_routed_to_a_ticket_and_marked_read_after_commit(
    graph_server, engine, database_url, services
):
    from routing.pipeline import route_inbound

    seed_client(engine)
    old = deliver(graph_server, 0, received=datetime.now(timezone.utc) - timedelta(days=2))
    mailbox_id = add_graph_mailbox(engine, graph_server)
    settings = graph_settings(database_url)
    services(settings, engine,
             hand_over=lambda i: route_inbound(i, engine=engine, settings=settings))
    ids = [deliver(graph_server, n) for n in range(1, 26)]  # three pages of 10
    eventually(lambda: len(stored(engine)) == 25, what="25 messages stored")
    eventually(lambda: all(graph_server.read_state()[i] for i in ids), what="all marked read")

    assert stored(engine) == [f"{n}.graph@acme.example" for n in range(1, 26)]
    assert graph_server.read_state()[old] is False  # older than the mailbox: left alone
    with session_scope(engine) as session:
        raw = session.scalar(select(InboundMessage.raw).where(InboundMessage.source == SOURCE)
                             .order_by(InboundMessage.id).limit(1))
        assert bytes(raw) == graph_server.messages[ids[0]].raw
    eventually(lambda: _unacked(engine) == 0, what="every message recorded as marked read")
    eventually(lambda: _tickets(engine) == 25, what="25 tickets")
    row = mailbox_row(engine, mailbox_id)
    assert mailbox_health(row) == "ok" and row.graph_delta_links["INBOX"].count("deltatoken")
    assert graph_server.token_requests == 1  # one token for every request of every pass


def test_since_takes_in_older_mail_and_processed_mail_is_moved(graph_server, sqlite_engine,
                                                                sqlite_url, services):
    deliver(graph_server, 1, received=datetime.now(timezone.utc) - timedelta(days=3))
    add_graph_mailbox(sqlite_engine, graph_server, processed_folder="Processed",
                      since=datetime.now(timezone.utc) - timedelta(days=7))
    services(graph_settings(sqlite_url), sqlite_engine)
    eventually(lambda: len(stored(sqlite_engine)) == 1, what="old mail since --since")
    eventually(lambda: len(graph_server.in_folder("processed")) == 1, what="moved")
    assert graph_server.in_folder("inbox") == []


def test_429_and_503_wait_for_retry_after_and_nothing_is_lost_or_doubled(
    graph_server, sqlite_engine, sqlite_url, services
):
    add_graph_mailbox(sqlite_engine, graph_server)
    for n in range(5):
        deliver(graph_server, n)
    graph_server.throttle(3, 0.2)
    service = services(graph_settings(sqlite_url), sqlite_engine)
    eventually(lambda: len(stored(sqlite_engine)) == 5, what="five stored")
    poller = next(iter(service.pollers.values()))
    eventually(lambda: poller.throttled == 3, what="three waits")
    assert graph_server.throttled_answers == 3
    assert poller.failures == 0 and mailbox_row(sqlite_engine, poller.mailbox.id).last_error is None
    assert sorted(stored(sqlite_engine)) == sorted(f"{n}.graph@acme.example" for n in range(5))


def test_requests_throttled_inside_a_json_batch_are_sent_again_after_retry_after(
    graph_server, sqlite_engine, sqlite_url, services
):
    add_graph_mailbox(sqlite_engine, graph_server)
    for n in range(5):
        deliver(graph_server, n)
    # the token and the first delta page get through; then three requests inside a batch are 429
    original = graph_server.batch

    def throttled_once(headers, body):
        if not getattr(throttled_once, "done", False):
            throttled_once.done = True
            graph_server.throttle(3, 0.2)
        return original(headers, body)

    graph_server.batch = throttled_once
    service = services(graph_settings(sqlite_url), sqlite_engine)
    eventually(lambda: len(stored(sqlite_engine)) == 5, what="five stored")
    poller = next(iter(service.pollers.values()))
    eventually(lambda: poller.throttled == 1, what="one wait for the throttled part")
    assert graph_server.throttled_answers == 3 and poller.failures == 0
    assert sorted(stored(sqlite_engine)) == sorted(f"{n}.graph@acme.example" for n in range(5))


def test_an_expired_delta_link_resyncs_the_folder_without_duplicates(
    graph_server, engine, database_url, services
):
    add_graph_mailbox(engine, graph_server)
    service = services(graph_settings(database_url), engine)
    for n in range(12):
        deliver(graph_server, n)
    eventually(lambda: len(stored(engine)) == 12, what="first twelve")
    graph_server.expire_links()
    deliver(graph_server, 12)
    eventually(lambda: len(stored(engine)) == 13, what="the new one after the resync")
    poller = next(iter(service.pollers.values()))
    eventually(lambda: poller.resyncs >= 1, what="a resync")
    eventually(lambda: poller.passes >= poller.resyncs + 2, what="passes after it")
    assert sorted(stored(engine)) == sorted(f"{n}.graph@acme.example" for n in range(13))


def test_two_pollers_on_two_services_store_each_message_once(graph_server, pg_engine, pg_url,
                                                             services):
    add_graph_mailbox(pg_engine, graph_server)
    settings = graph_settings(pg_url)
    first, second = services(settings, pg_engine), services(settings, pg_engine)
    for n in range(30):
        deliver(graph_server, n)
    eventually(lambda: len(stored(pg_engine)) == 30, what="thirty stored")
    eventually(lambda: all(graph_server.read_state().values()), what="all read")
    active = [p for s in (first, second) for p in s.pollers.values() if p.active.is_set()]
    assert len(active) == 1
    assert len(set(stored(pg_engine))) == len(stored(pg_engine)) == 30


def test_a_refused_client_secret_is_auth_failed_and_recovers_when_it_is_fixed(
    graph_server, sqlite_engine, sqlite_url, services
):
    from admin_api.metrics import render_metrics

    mailbox_id = add_graph_mailbox(sqlite_engine, graph_server, client_secret="expired-secret")
    services(graph_settings(sqlite_url), sqlite_engine)
    row = eventually(lambda: (r := mailbox_row(sqlite_engine, mailbox_id)).auth_error and r,
                     what="auth_failed")
    assert mailbox_health(row) == "auth_failed"
    assert row.auth_error.startswith("invalid_client: AADSTS7000215")
    assert 'ticketpost_mailbox_auth_failed{error="invalid_client",mailbox="support"} 1.0' \
        in render_metrics(engine=sqlite_engine).decode()
    with session_scope(sqlite_engine) as session:
        update_mailbox(session, mailbox_id=mailbox_id,
                       changes={"oauth2": {"client_secret": graph_server.client_secret}},
                       secret_key=SECRET_KEY)
    deliver(graph_server, 1)
    eventually(lambda: len(stored(sqlite_engine)) == 1, what="mail after the fix")
    eventually(lambda: mailbox_health(mailbox_row(sqlite_engine, mailbox_id)) == "ok",
               what="health ok")


def test_kill_9_between_commit_and_mark_read_duplicates_nothing_and_marks_read_later(
    graph_server, pg_engine, pg_url
):
    """``ticketpost imap`` (the poller role) is killed while its PATCH isRead is in flight."""
    mailbox_id = add_graph_mailbox(pg_engine, graph_server)
    ids = [deliver(graph_server, n) for n in range(5)]
    graph_server.hold_patches()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TICKETPOST_DATABASE_URL": pg_url,
           "TICKETPOST_SECRET_KEY": SECRET_KEY, "TICKETPOST_GRAPH_POLL_SECONDS": "0.1",
           "TICKETPOST_IMAP_RELOAD_INTERVAL_S": "0.2", "TICKETPOST_REDIS_URL": ""}
    env.pop("TICKETPOST_REDIS_URL")
    child = subprocess.Popen([sys.executable, "-m", "ticketpost.cli", "imap"], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert graph_server.patch_waiting.wait(60), "the child never marked anything read"
        assert len(stored(pg_engine)) == 5  # committed before the first PATCH
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert not any(graph_server.read_state().values())
    graph_server.release_patches()  # the PATCH of the dead process was never applied

    service = GraphService(engine=pg_engine, settings=graph_settings(pg_url),
                           hand_over=lambda i: True).start()
    try:
        eventually(lambda: all(graph_server.read_state()[i] for i in ids), what="marked read")
        poller = service.pollers[mailbox_id]
        eventually(lambda: poller.passes >= 2, what="two passes")
    finally:
        service.stop(15)
    assert sorted(stored(pg_engine)) == sorted(f"{n}.graph@acme.example" for n in range(5))


def _unacked(engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count(GraphMessage.id)).where(
            GraphMessage.acked.is_(False)))


def _tickets(engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count(Ticket.id)))


def test_ticketpost_up_polls_a_graph_mailbox_and_routes_its_mail_to_a_ticket(
    graph_server, sqlite_engine, sqlite_url, tmp_path
):
    from tests.conftest import free_port

    seed_client(sqlite_engine)
    add_graph_mailbox(sqlite_engine, graph_server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
    env.update(TICKETPOST_DATABASE_URL=sqlite_url, TICKETPOST_SECRET_KEY=SECRET_KEY,
               TICKETPOST_SMTP_PORT=str(free_port()), TICKETPOST_API_PORT=str(free_port()),
               TICKETPOST_GRAPH_POLL_SECONDS="0.2", PYTHONPATH=str(ROOT))
    up = subprocess.Popen([sys.executable, "-m", "ticketpost.cli", "up"], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        graph_id = deliver(graph_server, 1)
        eventually(lambda: _tickets(sqlite_engine) == 1, timeout=60, what="a ticket")
        eventually(lambda: graph_server.read_state()[graph_id], what="marked read")
    finally:
        up.send_signal(signal.SIGTERM)
        output = up.communicate(timeout=60)[0]
    assert up.returncode == 0, output
    assert "Graph pollers: running" in output


def test_a_token_the_graph_server_no_longer_accepts_is_replaced_once_without_a_failure(
    graph_server, sqlite_engine, sqlite_url, services
):
    add_graph_mailbox(sqlite_engine, graph_server)
    service = services(graph_settings(sqlite_url), sqlite_engine)
    deliver(graph_server, 1)
    eventually(lambda: len(stored(sqlite_engine)) == 1, what="first message")
    graph_server.tokens.clear()  # revoked or expired early: every request now answers 401
    deliver(graph_server, 2)
    eventually(lambda: len(stored(sqlite_engine)) == 2, what="mail after the 401")
    poller = next(iter(service.pollers.values()))
    assert graph_server.token_requests == 2 and poller.failures == 0
    assert mailbox_row(sqlite_engine, poller.mailbox.id).auth_error is None
