"""Webhook deliveries to a real HTTP receiver: signed, retried with the same webhook-id, isolated.

Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from core.settings import Settings
from models import OutboxItem, WebhookAttempt
from models.db import session_scope
from routing.webhooks.delivery import WebhookRunner, get_sender, webhook_policy
from routing.webhooks.events import write_event
from routing.webhooks.signing import verify
from tests.webhooks.conftest import SECRET, add_webhook


def _event(engine, event="ticket.created", data=None) -> list[int]:
    with engine.begin() as db:
        return write_event(db, event, data or {"ticket": {"id": 1, "number": 1, "subject": "Printer"}})


def _row(engine, row_id) -> OutboxItem:
    with session_scope(engine) as s:
        return s.get(OutboxItem, row_id)


def _attempts(engine, row_id) -> list[WebhookAttempt]:
    with session_scope(engine) as s:
        return list(s.scalars(select(WebhookAttempt).where(WebhookAttempt.outbox_id == row_id)
                              .order_by(WebhookAttempt.id)))


def _round(engine, settings) -> int:
    """One claim by the runner, then wait until its results are recorded."""
    runner = WebhookRunner(engine=engine, settings=settings)
    claimed = runner.run_once()
    assert runner.sender.drain(30)
    return claimed


def test_a_delivery_is_a_signed_json_post_that_verifies(engine, receiver, hook_settings):
    hook = add_webhook(engine, receiver.base + "/hook")
    (row_id,) = _event(engine)
    assert _round(engine, hook_settings) == 1
    (got,) = receiver.wait_for("/hook", 1)
    assert verify(SECRET, got.headers, got.body)
    assert got.headers["content-type"] == "application/json"
    row = _row(engine, row_id)
    assert got.headers["webhook-id"] == row.message_id and row.message_id.startswith("msg_")
    assert row.message_id.endswith(f"_{hook}")
    body = json.loads(got.body)
    assert body["type"] == "ticket.created" and body["data"]["ticket"]["subject"] == "Printer"
    assert body["timestamp"].endswith("Z")
    assert (row.status, row.attempts, row.last_status_code, row.target_id) == ("sent", 1, 200, hook)
    (attempt,) = _attempts(engine, row_id)
    assert attempt.status_code == 200 and attempt.error is None and attempt.duration_ms >= 0


def test_only_enabled_webhooks_subscribed_to_the_event_get_a_delivery(engine, receiver, hook_settings):
    add_webhook(engine, receiver.base + "/created", events=("ticket.created",))
    add_webhook(engine, receiver.base + "/failed", events=("inbound.failed",))
    add_webhook(engine, receiver.base + "/off", events=("ticket.created",), enabled=False)
    assert len(_event(engine)) == 1
    assert len(_event(engine, "inbound.failed", {"reason": "x"})) == 1
    assert _event(engine, "mailbox.unhealthy", {}) == []


def test_a_500_then_a_200_is_a_retry_with_the_same_webhook_id(engine, receiver, hook_settings):
    add_webhook(engine, receiver.base + "/flaky")
    receiver.answers["/flaky"] = [500, 200]
    (row_id,) = _event(engine)
    _round(engine, hook_settings)
    row = _row(engine, row_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    assert row.reason.startswith("HTTP 500")
    _round(engine, hook_settings)  # min backoff 0 in these settings: due again at once
    first, second = receiver.wait_for("/flaky", 2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == _row(engine, row_id).message_id
    assert first.body == second.body
    assert verify(SECRET, second.headers, second.body)
    row = _row(engine, row_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert [(a.attempt, a.status_code) for a in _attempts(engine, row_id)] == [(1, 500), (2, 200)]


def test_a_connection_refused_is_retried_with_the_error_kept(engine, receiver, hook_settings):
    from tests.conftest import free_port

    add_webhook(engine, f"http://127.0.0.1:{free_port()}/nobody")
    (row_id,) = _event(engine)
    _round(engine, hook_settings)
    row = _row(engine, row_id)
    assert row.status == "pending" and row.attempts == 1 and "ConnectError" in row.reason
    (attempt,) = _attempts(engine, row_id)
    assert attempt.status_code is None and "ConnectError" in attempt.error


def test_the_default_policy_retries_first_within_30s_and_for_at_least_24_hours():
    policy = webhook_policy(Settings())
    assert all(policy.backoff_s(1) <= 30 for _ in range(200))
    worst = sum(policy.min_backoff_s * 0.75 * 2 ** (n - 1) if policy.min_backoff_s * 2 ** (n - 1) < policy.max_backoff_s
                else policy.max_backoff_s * 0.75 for n in range(1, policy.max_attempts))
    assert worst >= 24 * 3600


def test_a_hanging_receiver_does_not_hold_back_another_endpoint(engine, receiver, hook_settings):
    settings = hook_settings.model_copy(update={"webhooks_read_timeout_s": 60, "outbox_lease_s": 300})
    slow = add_webhook(engine, receiver.base + "/hang")
    fast = add_webhook(engine, receiver.base + "/fast")
    receiver.hanging.add("/hang")
    rows = [_event(engine) for _ in range(5)]  # each event: one delivery to each endpoint
    runner = WebhookRunner(engine=engine, settings=settings).start()
    try:
        receiver.wait_for("/fast", 5)
        receiver.wait_for("/hang", 2)  # its two slots are taken and held

        def fast_rows_sent() -> bool:
            with session_scope(engine) as s:
                statuses = s.scalars(select(OutboxItem.status).where(OutboxItem.target_id == fast)).all()
            return statuses == ["sent"] * 5

        from tests.ingest.smtp_fixtures import wait_until

        wait_until(fast_rows_sent, timeout=30, what="the fast endpoint's deliveries to be recorded")
        # ... while the hanging endpoint still holds its first two and has not been answered
        assert len(receiver.at("/hang")) == 2
        with session_scope(engine) as s:
            assert s.scalar(select(WebhookAttempt.id).where(WebhookAttempt.webhook_id == slow)) is None
        assert get_sender(engine, settings).in_flight().get(slow) == 5
        # more events for the fast endpoint go through too
        _event(engine)
        receiver.wait_for("/fast", 6)
    finally:
        receiver.release()
        runner.stop(10)
    assert len(rows) == 5


def test_an_endpoint_failing_for_days_is_disabled_and_shows_in_metrics(engine, receiver, hook_settings):
    from datetime import timedelta

    from sqlalchemy import update

    from admin_api.metrics import render_metrics
    from models import Webhook, utcnow

    hook = add_webhook(engine, receiver.base + "/down")
    receiver.answers["/down"] = [503]
    (row_id,) = _event(engine)
    _round(engine, hook_settings)
    with session_scope(engine) as s:
        webhook = s.get(Webhook, hook)
        assert webhook.enabled and webhook.failing_since is not None and "HTTP 503" in webhook.last_error
    text = render_metrics(engine=engine, settings=hook_settings).decode()
    assert f'ticketpost_webhook_endpoint_failing_seconds{{webhook="{hook}"}}' in text
    assert "ticketpost_webhook_endpoints_disabled 0.0" in text
    # as if its attempts had only failed for six days: the next failure disables it
    with engine.begin() as db:
        db.execute(update(Webhook).values(failing_since=utcnow() - timedelta(days=6)))
    _round(engine, hook_settings)
    with session_scope(engine) as s:
        webhook = s.get(Webhook, hook)
        assert not webhook.enabled and "HTTP 503" in webhook.disabled_reason
    assert "ticketpost_webhook_endpoints_disabled 1.0" in render_metrics(engine=engine, settings=hook_settings).decode()
    _round(engine, hook_settings)  # its waiting delivery now fails for good, without a request
    row = _row(engine, row_id)
    assert row.status == "failed" and "disabled" in row.reason
    assert len(receiver.at("/down")) == 2


def test_private_targets_are_refused_at_delivery_time_too(engine, receiver, hook_settings):
    strict = hook_settings.model_copy(update={"webhooks_allow_private": False})
    literal = add_webhook(engine, receiver.base + "/literal")  # saved while private targets were allowed
    by_name = add_webhook(engine, f"http://localhost:{receiver.port}/name")  # a name that resolves to loopback
    rows = _event(engine)
    _round(engine, strict)
    assert receiver.at("/literal") == [] and receiver.at("/name") == []
    reasons = {}
    for row_id in rows:
        row = _row(engine, row_id)
        assert row.status == "pending" and row.attempts == 1
        reasons[row.target_id] = row.reason
    assert "127.0.0.1 is a loopback address" in reasons[literal]
    assert "localhost is not allowed" in reasons[by_name] and "loopback" in reasons[by_name]


def test_routings_hand_over_goes_through_the_outbox_dispatcher_to_the_same_sender(engine, receiver, hook_settings):
    from routing.outbox.dispatcher import dispatch

    add_webhook(engine, receiver.base + "/handed")
    with engine.begin() as db:
        ids = write_event(db, "ticket.created", {"ticket": {"id": 1}})
    # what the send_outbox actor does with routing's hand-over: claim those rows, hand them on
    assert dispatch(engine=engine, settings=hook_settings, ids=ids) == {"sent": 0, "retrying": 0, "failed": 0}
    assert get_sender(engine, hook_settings).drain(30)
    (got,) = receiver.wait_for("/handed", 1)
    assert verify(SECRET, got.headers, got.body)
    row = _row(engine, ids[0])
    assert (row.status, row.attempts) == ("sent", 1)
