"""The Prometheus exposition of ``GET /metrics``: state from the sources of truth plus events.

A custom prometheus_client ``Collector`` turns a fresh ``Snapshot`` (database and broker, read at
scrape time) into metric families, and appends the event metrics of the event store (in-process
or Redis, see ``core.telemetry``). Nothing here keeps state between scrapes, so any API
process of a distributed installation answers with the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from core.telemetry import get_event_store
from models import OUTBOX_KINDS, OUTBOX_STATUSES
from routing.queues import QUEUE_STATES
from admin_api.metrics.snapshot import Snapshot, take_snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The families read from the sources of truth at every scrape (the others: ``EVENT_METRICS``).
STATE_METRICS = (
    "ticketpost_up",
    "ticketpost_inbound_messages",
    "ticketpost_unrouted_messages",
    "ticketpost_oldest_unrouted_age_seconds",
    "ticketpost_queue_messages",
    "ticketpost_mailbox_enabled",
    "ticketpost_mailbox_last_success_timestamp_seconds",
    "ticketpost_mailbox_consecutive_failures",
    "ticketpost_mailbox_backlog",
    "ticketpost_mailbox_auth_failed",
    "ticketpost_outbox_messages",
    "ticketpost_outbox_oldest_pending_age_seconds",
    "ticketpost_webhook_endpoints_disabled",
    "ticketpost_webhook_endpoint_failing_seconds",
)


def snapshot_metrics(snap: Snapshot) -> Iterator[Metric]:
    """Metric families of one snapshot of the database and the broker."""
    up = GaugeMetricFamily(
        "ticketpost_up",
        "1 when the component answered during this scrape (database, broker), else 0.",
        labels=("component",),
    )
    up.add_metric(["database"], 0.0 if snap.database_error else 1.0)
    up.add_metric(["broker"], 0.0 if snap.broker_error else 1.0)
    yield up

    if snap.database_error is None:
        inbound = GaugeMetricFamily(
            "ticketpost_inbound_messages",
            'Stored inbound messages by source, status and outcome (outcome "none" = not routed'
            " yet); read from the database at scrape time.",
            labels=("source", "status", "outcome"),
        )
        for c in snap.inbound:
            inbound.add_metric([c.source, c.status, c.outcome or "none"], c.count)
        yield inbound
        yield GaugeMetricFamily(
            "ticketpost_unrouted_messages",
            "Stored inbound messages not routed yet (status received).",
            value=snap.unrouted,
        )
        yield GaugeMetricFamily(
            "ticketpost_oldest_unrouted_age_seconds",
            "Age of the oldest stored message not routed yet; 0 when none waits. Growing = stuck.",
            value=snap.oldest_unrouted_age_s,
        )
        yield from _mailbox_metrics(snap)
        yield from _outbox_metrics(snap)
        yield from _webhook_metrics(snap)

    if snap.broker_error is None:
        queue = GaugeMetricFamily(
            "ticketpost_queue_messages",
            "Messages in the routing queue by state (ready, in_flight, delayed, dead_letter),"
            " read from the broker at scrape time.",
            labels=("queue", "state"),
        )
        for depth in snap.queues:
            for state in QUEUE_STATES:
                queue.add_metric([depth.queue, state], getattr(depth, state))
        yield queue


def _mailbox_metrics(snap: Snapshot) -> Iterator[Metric]:
    enabled = GaugeMetricFamily(
        "ticketpost_mailbox_enabled", "1 when the mailbox is polled.", labels=("mailbox",)
    )
    last_ok = GaugeMetricFamily(
        "ticketpost_mailbox_last_success_timestamp_seconds",
        "Unix time of the mailbox's last successful poll (absent before the first success).",
        labels=("mailbox",),
    )
    failures = GaugeMetricFamily(
        "ticketpost_mailbox_consecutive_failures",
        "Polls of the mailbox that failed in a row since its last success.",
        labels=("mailbox",),
    )
    backlog = GaugeMetricFamily(
        "ticketpost_mailbox_backlog",
        "Messages fetched from the mailbox and stored but not routed yet.",
        labels=("mailbox",),
    )
    auth_failed = GaugeMetricFamily(
        "ticketpost_mailbox_auth_failed",
        "1 while the mailbox's provider refuses its OAuth2 credentials (health auth_failed); "
        "error is the provider's code (invalid_grant, invalid_client, unauthorized_client ...).",
        labels=("mailbox", "error"),
    )
    for m in snap.mailboxes:
        if m.auth_error:
            auth_failed.add_metric([m.name, m.auth_error.split(":", 1)[0].strip()[:64]], 1.0)
        enabled.add_metric([m.name], 1.0 if m.enabled else 0.0)
        if m.last_success_at is not None:
            last_ok.add_metric([m.name], m.last_success_at.timestamp())
        failures.add_metric([m.name], m.consecutive_failures)
        backlog.add_metric([m.name], m.backlog)
    yield from (enabled, last_ok, failures, backlog, auth_failed)


def _outbox_metrics(snap: Snapshot) -> Iterator[Metric]:
    messages = GaugeMetricFamily(
        "ticketpost_outbox_messages",
        "Outbox rows (acknowledgements, notices, webhooks) by kind and status (pending, sent,"
        " failed); read from the database at scrape time.",
        labels=("kind", "status"),
    )
    seen = {(c.kind, c.status): c.count for c in snap.outbox}
    for kind in OUTBOX_KINDS:
        for status in OUTBOX_STATUSES:
            messages.add_metric([kind, status], seen.get((kind, status), 0))
    yield messages
    yield GaugeMetricFamily(
        "ticketpost_outbox_oldest_pending_age_seconds",
        "Age of the oldest outbox row not sent yet; 0 when none waits. Growing = the outbox is stuck.",
        value=snap.oldest_pending_outbox_age_s,
    )


def _webhook_metrics(snap: Snapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "ticketpost_webhook_endpoints_disabled",
        "Webhook endpoints ticketpost disabled by itself after TICKETPOST_WEBHOOKS_DISABLE_AFTER of only"
        " failures (see disabled_reason in GET /api/v1/webhooks; PATCH enabled: true turns one back on).",
        value=sum(1 for w in snap.webhooks if w.auto_disabled),
    )
    failing = GaugeMetricFamily(
        "ticketpost_webhook_endpoint_failing_seconds",
        "Seconds since an enabled webhook endpoint's attempts started failing without a success since"
        " (0 = its last attempt succeeded).",
        labels=("webhook",),
    )
    for w in snap.webhooks:
        if w.enabled:
            since = w.failing_since
            failing.add_metric([str(w.id)], max(0.0, (snap.taken_at - since).total_seconds()) if since else 0.0)
    yield failing


class TicketpostCollector(Collector):
    """Reads the database, the broker and the event store at every scrape."""

    def __init__(self, *, engine: Engine, settings=None, broker=None) -> None:
        self.engine = engine
        self.settings = settings
        self.broker = broker

    def collect(self) -> Iterator[Metric]:
        snap = take_snapshot(engine=self.engine, settings=self.settings, broker=self.broker)
        yield from snapshot_metrics(snap)
        try:
            yield from get_event_store(self.settings).collect()
        except Exception:  # noqa: BLE001 - a dead Redis shows as ticketpost_up{broker} 0
            return


def render_metrics(*, engine: Engine, settings=None, broker=None) -> bytes:
    """The Prometheus text exposition of everything above, freshly read."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TicketpostCollector(engine=engine, settings=settings, broker=broker))
    return generate_latest(registry)
