"""Scrape GET /metrics for real while mail flows through real processes, and watch it move.

Embedded: one ``ticketpost up`` process (SQLite, in-process queue). Distributed: PostgreSQL, Redis
and separate ``ticketpost smtp``, ``ticketpost api`` and ``ticketpost worker`` processes, so
every number on /metrics of the API process was produced by another process.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import free_port
from tests.ops.helpers import Role, Scrape, seed_client, send_mail, wait_for_port, wait_until

pytestmark = pytest.mark.slow


def scrape(api_port: int) -> Scrape:
    response = httpx.get(f"http://127.0.0.1:{api_port}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def mail_from_acme_and_a_stranger(smtp_port: int) -> None:
    for n in range(3):
        send_mail(smtp_port, f"user{n}@acme.example", f"printer {n} is broken")
    send_mail(smtp_port, "someone@stranger.example", "buy our stuff")


@pytest.fixture
def embedded(tmp_path, sqlite_url):
    """``ticketpost up`` on a fresh SQLite database with client Acme; unknown senders rejected."""
    seed_client(sqlite_url)
    smtp_port, api_port = free_port(), free_port()
    env = {
        "TICKETPOST_DATABASE_URL": sqlite_url,
        "TICKETPOST_SMTP_PORT": str(smtp_port),
        "TICKETPOST_API_PORT": str(api_port),
        "TICKETPOST_UNMATCHED_POLICY": "reject",
        "TICKETPOST_LOG_FORMAT": "json",
    }
    role = Role(["up"], env, tmp_path / "up.log")
    try:
        wait_for_port(api_port, role)
        wait_for_port(smtp_port, role)
        yield role, smtp_port, api_port
    finally:
        role.stop()


def test_after_three_tickets_and_one_rejection_the_metrics_say_exactly_that(embedded):
    role, smtp_port, api_port = embedded
    before = scrape(api_port)
    assert before.total("ticketpost_inbound_messages") == 0
    assert before.value("ticketpost_workers") == 1

    mail_from_acme_and_a_stranger(smtp_port)

    after = wait_until(
        lambda: (
            (s := scrape(api_port)).total("ticketpost_routed_messages_total") == 4
            and s.value("ticketpost_unrouted_messages") == 0
            and s.total("ticketpost_smtp_replies_total") == 4
            and s
        ),
        what="4 routed messages on /metrics",
    )
    stored = dict(source="smtp", status="routed")
    assert after.value("ticketpost_inbound_messages", **stored, outcome="ticket_created") == 3
    assert (
        after.value("ticketpost_inbound_messages", **stored, outcome="rejected_unknown_sender") == 1
    )
    assert after.total("ticketpost_inbound_messages") == 4
    routed = "ticketpost_routed_messages_total"
    assert after.value(routed, source="smtp", outcome="ticket_created") == 3
    assert after.value(routed, source="smtp", outcome="rejected_unknown_sender") == 1
    duration = "ticketpost_routing_duration_seconds_count"
    assert after.value(duration, outcome="ticket_created") == 3
    assert after.value(duration, outcome="rejected_unknown_sender") == 1
    assert after.value("ticketpost_smtp_replies_total", code="250") == 4
    assert after.value("ticketpost_oldest_unrouted_age_seconds") == 0
    assert after.value("ticketpost_queue_messages", queue="inbound", state="ready") == 0
    assert after.value("ticketpost_queue_messages", queue="inbound", state="dead_letter") == 0
    wait_until(
        lambda: scrape(api_port).value("ticketpost_smtp_sessions_active") == 0,
        what="SMTP sessions closed",
    )


def test_every_routing_log_line_is_json_with_the_inbound_id_and_the_outcome(embedded):
    role, smtp_port, api_port = embedded
    mail_from_acme_and_a_stranger(smtp_port)
    wait_until(
        lambda: scrape(api_port).total("ticketpost_routed_messages_total") == 4,
        what="4 routed messages",
    )
    records = [json.loads(line) for line in role.log_lines() if line.strip()]  # all JSON
    routing = [r for r in records if r["logger"] == "ticketpost.routing"]
    assert len(routing) == 4
    for record in routing:
        assert isinstance(record["inbound_id"], int), record
        assert record["outcome"] in ("ticket_created", "rejected_unknown_sender"), record
    assert (
        sorted(r["outcome"] for r in routing)
        == ["rejected_unknown_sender"] + ["ticket_created"] * 3
    )
    assert len({r["inbound_id"] for r in routing}) == 4


def test_status_reads_the_queue_and_workers_of_the_running_ticketpost_up(embedded, sqlite_url):
    from tests.ops.helpers import run_cli

    role, smtp_port, api_port = embedded
    mail_from_acme_and_a_stranger(smtp_port)
    wait_until(
        lambda: scrape(api_port).total("ticketpost_routed_messages_total") == 4,
        what="4 routed messages",
    )
    env = {"TICKETPOST_DATABASE_URL": sqlite_url, "TICKETPOST_API_PORT": str(api_port)}
    result = run_cli("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["queue_source"] == f"http://127.0.0.1:{api_port}/metrics"
    assert status["workers"] == 1
    assert status["queues"] == [  # routing's queue and the outbox dispatcher's
        {"queue": "inbound", "ready": 0, "in_flight": 0, "delayed": 0, "dead_letter": 0},
        {"queue": "outbox", "ready": 0, "in_flight": 0, "delayed": 0, "dead_letter": 0},
    ]
    assert status["inbound_by_outcome"] == {"rejected_unknown_sender": 1, "ticket_created": 3}


@pytest.fixture
def distributed(tmp_path, pg_url, redis_url, redis_ns):
    """PostgreSQL + Redis; the SMTP and API roles run, the worker role is started by the test."""
    seed_client(pg_url)
    smtp_port, api_port = free_port(), free_port()
    env = {
        "TICKETPOST_DATABASE_URL": pg_url,
        "TICKETPOST_REDIS_URL": redis_url,
        "TICKETPOST_REDIS_NAMESPACE": redis_ns,
        "TICKETPOST_SMTP_PORT": str(smtp_port),
        "TICKETPOST_API_PORT": str(api_port),
        "TICKETPOST_UNMATCHED_POLICY": "reject",
        "TICKETPOST_SWEEPER_GRACE_S": "3600",
    }
    roles = {
        "smtp": Role(["smtp"], env, tmp_path / "smtp.log"),
        "api": Role(["api"], env, tmp_path / "api.log"),
    }
    try:
        wait_for_port(smtp_port, roles["smtp"])
        wait_for_port(api_port, roles["api"])

        def start_worker() -> Role:
            args = ["worker", "--processes", "2", "--threads", "2"]
            roles["worker"] = Role(args, env, tmp_path / "worker.log")
            return roles["worker"]

        yield smtp_port, api_port, start_worker
    finally:
        for role in roles.values():
            role.stop()


def test_split_roles_with_routing_stopped_then_two_worker_processes_started(distributed):
    smtp_port, api_port, start_worker = distributed
    assert scrape(api_port).value("ticketpost_workers") == 0

    mail_from_acme_and_a_stranger(smtp_port)

    # No worker: the mail waits in Redis, the database says it is not routed, and it ages.
    first = wait_until(
        lambda: (
            (s := scrape(api_port)).value(
                "ticketpost_queue_messages", queue="inbound", state="ready"
            )
            == 4
            and s.total("ticketpost_smtp_replies_total") == 4
            and s
        ),
        what="4 ready messages in the Redis queue",
    )
    assert first.value("ticketpost_unrouted_messages") == 4
    assert (
        first.value("ticketpost_inbound_messages", source="smtp", status="received", outcome="none")
        == 4
    )
    assert (
        first.value("ticketpost_smtp_replies_total", code="250") == 4
    )  # counted by the smtp process
    assert first.total("ticketpost_routed_messages_total") == 0
    age = first.value("ticketpost_oldest_unrouted_age_seconds")
    assert age > 0
    later = wait_until(
        lambda: (s := scrape(api_port)).value("ticketpost_oldest_unrouted_age_seconds") > age and s,
        what="the oldest unrouted age to grow",
    )
    assert later.value("ticketpost_unrouted_messages") == 4

    # Two worker processes start: they route everything, and their counts reach the API process.
    worker = start_worker()
    routed = wait_until(
        lambda: (
            (s := scrape(api_port)).value("ticketpost_unrouted_messages") == 0
            and s.total("ticketpost_routed_messages_total") == 4
            and s
        ),
        timeout=60,
        what="the worker to route all 4",
    )
    alive = wait_until(
        lambda: (s := scrape(api_port)).value("ticketpost_workers") == 2 and s,
        what="both worker processes alive",
    )
    assert alive.value("ticketpost_worker_threads") == 4
    assert routed.value("ticketpost_oldest_unrouted_age_seconds") == 0
    assert (
        routed.value("ticketpost_routed_messages_total", source="smtp", outcome="ticket_created")
        == 3
    )
    assert (
        routed.value(
            "ticketpost_routed_messages_total", source="smtp", outcome="rejected_unknown_sender"
        )
        == 1
    )
    assert routed.value("ticketpost_routing_duration_seconds_count", outcome="ticket_created") == 3
    assert routed.value("ticketpost_queue_messages", queue="inbound", state="ready") == 0
    assert routed.value("ticketpost_queue_messages", queue="inbound", state="in_flight") == 0

    # The workers stop cleanly: they no longer count as alive.
    worker.stop()
    assert scrape(api_port).value("ticketpost_workers") == 0
