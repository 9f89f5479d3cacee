"""``ticketpost replay``: failed messages are routed again, by id or by filter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from models import InboundMessage
from routing.pipeline import record_failure
from tests.ops.helpers import run_cli, run_here, seed_client, store
from ticketpost.commands.replay import BadTime, parse_time


def row(engine, inbound_id: int) -> InboundMessage:
    with engine.connect() as conn:
        return conn.execute(select(InboundMessage).where(InboundMessage.id == inbound_id)).one()


def failed_message(engine, sender: str, subject: str, **kw) -> int:
    inbound_id = store(engine, sender, subject, **kw)
    record_failure(inbound_id, error="OperationalError: the database went away", engine=engine)
    return inbound_id


@pytest.fixture
def acme(sqlite_url, sqlite_engine, monkeypatch):
    """An embedded installation (SQLite, no Redis) that knows client Acme."""
    seed_client(sqlite_url)
    monkeypatch.setenv("TICKETPOST_DATABASE_URL", sqlite_url)
    from core.settings import reset_settings

    reset_settings()
    return sqlite_engine


def test_replay_routes_a_failed_message_again(acme, sqlite_url):
    inbound_id = failed_message(acme, "ann@acme.example", "VPN down")
    assert row(acme, inbound_id).status == "failed"

    result = run_cli("replay", "--status", "failed", env={"TICKETPOST_DATABASE_URL": sqlite_url})

    assert result.returncode == 0, result.stderr
    assert f"{inbound_id}: ticket_created" in result.stdout
    replayed = row(acme, inbound_id)
    assert (replayed.status, replayed.outcome) == ("routed", "ticket_created")
    assert replayed.ticket_id is not None


def test_replay_by_id_leaves_routed_messages_alone_and_names_unknown_ids(acme, capsys):
    failed = failed_message(acme, "ann@acme.example", "VPN down")
    routed = store(acme, "bob@acme.example", "mail", status="routed", outcome="ticket_created")

    code = run_here("replay", str(failed), str(routed), "999")

    out, err = capsys.readouterr()
    assert code == 1  # an id was not found
    assert f"{failed}: ticket_created" in out
    assert f"already routed: {routed}" in out
    assert "not found: 999" in err
    assert row(acme, routed).ticket_id is None  # untouched


def test_replay_with_outcome_and_time_filters_picks_only_matching_messages(acme, capsys):
    old = failed_message(acme, "ann@acme.example", "old fault", age=timedelta(hours=3))
    recent = failed_message(acme, "bob@acme.example", "recent fault")

    assert run_here("replay", "--outcome", "failed", "--since", "1h") == 0

    assert row(acme, recent).outcome == "ticket_created"
    assert row(acme, old).status == "failed"
    assert run_here("replay", "--until", "2h") == 0  # the old one: received before 2 hours ago
    assert row(acme, old).outcome == "ticket_created"
    assert "nothing to replay" not in capsys.readouterr().out


def test_replay_hands_failed_messages_to_the_redis_queue_in_the_distributed_mode(
    acme, redis_url, redis_ns, monkeypatch, capsys
):
    from routing.broker import setup_broker
    from routing.queues import queue_depths
    from core.settings import Settings, reset_settings

    inbound_id = failed_message(acme, "ann@acme.example", "VPN down")
    monkeypatch.setenv("TICKETPOST_REDIS_URL", redis_url)
    monkeypatch.setenv("TICKETPOST_REDIS_NAMESPACE", redis_ns)
    reset_settings()
    try:
        setup_broker()
        assert run_here("replay", str(inbound_id)) == 0
    finally:
        setup_broker(Settings(redis_url=None))
    assert "handed 1 message(s) to the workers" in capsys.readouterr().out
    assert row(acme, inbound_id).status == "received"  # waiting for a worker
    settings = Settings(redis_url=redis_url, redis_namespace=redis_ns)
    inbound = next(q for q in queue_depths(settings=settings) if q.queue == "inbound")
    assert inbound.ready == 1


def test_replay_refuses_a_time_it_cannot_read(acme, capsys):
    assert run_here("replay", "--since", "last tuesday") == 2
    assert "not a time" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)),
        ("30m", datetime(2026, 11, 27, 11, 30, tzinfo=timezone.utc)),
        ("7d", datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=timezone.utc)),
        ("2026-11-01T08:15:00Z", datetime(2026, 11, 1, 8, 15, tzinfo=timezone.utc)),
        ("2026-11-01T09:15:00+01:00", datetime(2026, 11, 1, 8, 15, tzinfo=timezone.utc)),
    ],
)
def test_replay_times_are_iso_8601_or_a_duration_ago(text, expected):
    now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    assert parse_time(text, now=now) == expected


def test_a_time_that_is_neither_is_refused_with_examples():
    with pytest.raises(BadTime, match="ISO 8601"):
        parse_time("soon")
