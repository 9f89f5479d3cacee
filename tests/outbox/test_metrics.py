"""The outbox in /metrics and `ticketpost status`: counts by kind and status, oldest pending age."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from admin_api.metrics import render_metrics
from admin_api.metrics.snapshot import take_snapshot
from models import OutboxItem, utcnow
from models.db import session_scope
from ticketpost.commands.status import format_status


def test_metrics_and_status_show_sent_failed_pending_and_the_oldest_pending_age(engine):
    now = utcnow()
    with session_scope(engine) as s:
        s.add_all([
            OutboxItem(kind="acknowledgement", status="sent", recipient="a@x.example", next_attempt_at=now, sent_at=now),
            OutboxItem(kind="acknowledgement", status="sent", recipient="b@x.example", next_attempt_at=now, sent_at=now),
            OutboxItem(kind="notice", status="failed", recipient="c@x.example", next_attempt_at=now, reason="refused"),
            OutboxItem(kind="acknowledgement", status="pending", recipient="d@x.example", next_attempt_at=now,
                       created_at=now - timedelta(minutes=40)),
        ])
    families = {f.name: f for f in text_string_to_metric_families(render_metrics(engine=engine).decode())}
    counts = {(s.labels["kind"], s.labels["status"]): s.value for s in families["ticketpost_outbox_messages"].samples}
    assert counts[("acknowledgement", "sent")] == 2 and counts[("notice", "failed")] == 1
    assert counts[("acknowledgement", "pending")] == 1 and counts[("webhook", "pending")] == 0
    (age,) = families["ticketpost_outbox_oldest_pending_age_seconds"].samples
    assert 40 * 60 <= age.value < 41 * 60
    data = take_snapshot(engine=engine).as_dict()
    data.update(broker="in-process", queue_source=None)
    text = format_status(data)
    assert "Outbox (acknowledgements, notices, webhooks)" in text and "oldest unsent: waiting 40m" in text
