"""``ticketpost status``: queue depth, dead letters, inbound counts by outcome, mailbox health and
the oldest unrouted message, as a table and as JSON, read from the real database and broker."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from models import Mailbox
from models.db import session_scope
from routing.pipeline import record_failure
from tests.conftest import free_port
from tests.ops.helpers import run_cli, run_here, store


@pytest.fixture
def installation(database_url, engine):
    """Mail in every state, and two mailboxes: one failing, one switched off."""
    store(engine, "ann@acme.example", "vpn", status="routed", outcome="ticket_created")
    store(engine, "bob@acme.example", "mail", status="routed", outcome="rejected_not_primary")
    record_failure(
        store(engine, "cy@acme.example", "disk"), error="database went away", engine=engine
    )
    store(engine, "dee@acme.example", "printer", age=timedelta(minutes=15))
    store(engine, "eve@acme.example", "phone", source="imap:support")
    with session_scope(engine) as session:
        session.add(
            Mailbox(
                name="support",
                host="imap.msp.example",
                username="support",
                enabled=True,
                consecutive_failures=4,
                last_error="LOGIN failed: authentication failed",
                last_success_at=datetime.now(timezone.utc) - timedelta(hours=2),
            )
        )
        session.add(Mailbox(name="archive", host="imap.msp.example", username="old", enabled=False))
    # No `ticketpost up` listens on this port: the embedded queue is not visible.
    return {"TICKETPOST_DATABASE_URL": database_url, "TICKETPOST_API_PORT": str(free_port())}


@pytest.fixture
def status_here(monkeypatch, capsys):
    """``ticketpost status ARGS`` run in this process with ``env``: (exit code, stdout)."""
    from core.settings import reset_settings

    def run(*args: str, env: dict[str, str]) -> tuple[int, str]:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_settings()
        capsys.readouterr()
        code = run_here("status", *args)
        return code, capsys.readouterr().out

    return run


def test_status_json_tells_counts_by_outcome_the_oldest_unrouted_and_mailbox_health(installation):
    result = run_cli("status", "--json", env=installation)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["inbound_by_outcome"] == {
        "failed": 1,
        "received": 2,
        "rejected_not_primary": 1,
        "ticket_created": 1,
    }
    assert status["unrouted"] == 2
    assert status["oldest_unrouted_age_s"] >= 15 * 60
    mailboxes = {m["name"]: m for m in status["mailboxes"]}
    assert mailboxes["support"]["consecutive_failures"] == 4
    assert mailboxes["support"]["backlog"] == 1  # the unrouted message fetched from it
    assert mailboxes["support"]["last_error"].startswith("LOGIN failed")
    assert mailboxes["support"]["last_success_at"] is not None
    assert mailboxes["archive"]["enabled"] is False
    assert mailboxes["archive"]["last_success_at"] is None
    assert status["broker"] == "in-process"
    assert status["queue_source"] is None  # no running ticketpost up to ask
    assert status["database_error"] is None


def test_status_prints_a_table_a_person_can_read(installation, status_here):
    code, out = status_here(env=installation)
    assert code == 0
    for expected in (
        "ticket_created",
        "rejected_not_primary",
        "not routed yet",
        "Oldest unrouted message: waiting 15m",
        "support",
        "LOGIN failed",
        "archive",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"


def test_status_shows_queue_depth_and_dead_letters_from_redis(
    installation, redis_url, redis_ns, status_here
):
    from routing.broker import enqueue, setup_broker
    from core.settings import Settings

    env = dict(installation, TICKETPOST_REDIS_URL=redis_url, TICKETPOST_REDIS_NAMESPACE=redis_ns)
    broker = setup_broker(Settings(redis_url=redis_url, redis_namespace=redis_ns))
    try:
        for inbound_id in (4, 5):
            enqueue(inbound_id)
        consumer = broker.consume("inbound", prefetch=1, timeout=1000)
        consumer.nack(next(m for m in consumer if m is not None))
        consumer.close()
    finally:
        setup_broker(Settings())

    code, out = status_here("--json", env=env)
    status = json.loads(out)
    assert code == 0
    assert status["broker"] == "redis"
    inbound = next(q for q in status["queues"] if q["queue"] == "inbound")
    assert (inbound["ready"], inbound["in_flight"], inbound["dead_letter"]) == (1, 0, 1)
    assert status["dead_letters"] == 1
    assert status["workers"] == 0
    code, table = status_here(env=env)
    assert "dead letters" in table


def test_status_exits_1_and_says_why_when_the_broker_is_unreachable(installation, status_here):
    env = dict(installation, TICKETPOST_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    code, out = status_here("--json", env=env)
    assert code == 1
    status = json.loads(out)
    assert status["broker_error"]
    assert status["unrouted"] == 2  # the database part is still there


def test_status_shows_a_mailbox_whose_provider_refuses_its_credentials_as_auth_failed(
    database_url, engine, status_here
):
    with session_scope(engine) as session:
        session.add(Mailbox(
            name="m365", kind="graph", auth="oauth2", host="graph.microsoft.com",
            username="support@msp.example", enabled=True, consecutive_failures=2,
            last_error="invalid_grant: AADSTS50173: The provided grant has expired",
            auth_error="invalid_grant: AADSTS50173: The provided grant has expired",
        ))
        session.add(Mailbox(name="imap", host="imap.msp.example", username="u", enabled=True,
                            last_success_at=datetime.now(timezone.utc)))
    env = {"TICKETPOST_DATABASE_URL": database_url, "TICKETPOST_API_PORT": str(free_port())}
    code, out = status_here("--json", env=env)
    mailboxes = {m["name"]: m for m in json.loads(out)["mailboxes"]}
    assert mailboxes["m365"]["health"] == "auth_failed" and mailboxes["m365"]["kind"] == "graph"
    assert mailboxes["m365"]["auth_error"].startswith("invalid_grant: AADSTS50173")
    assert mailboxes["imap"]["health"] == "ok"
    code, out = status_here(env=env)
    line = next(line for line in out.splitlines() if line.strip().startswith("m365"))
    assert "graph" in line and "auth_failed" in line and "invalid_grant: AADSTS50173" in line
