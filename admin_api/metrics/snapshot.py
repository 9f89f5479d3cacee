"""The state of the mail flow read from its sources of truth: the database and the broker.

``take_snapshot`` is what both ``GET /metrics`` and ``ticketpost status`` show. Everything is read
at the moment of asking, so the numbers are right whichever process asks and however many worker
processes run: inbound counts by source, status and outcome (one ``GROUP BY``), the age of the
oldest stored message not yet routed (``MIN(received_at)`` over the status index), mailbox health
from the mailboxes table, and queue depth by state from the broker.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from admin_api.services.mailboxes import mailbox_health as health_word
from models import InboundMessage, Mailbox, OutboxItem, Webhook
from models.db import reading
from routing.queues import BrokerUnavailable, QueueDepth, queue_depths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundCount:
    """How many stored messages share one source, status and outcome."""

    source: str
    status: str
    outcome: str | None
    count: int


@dataclass(frozen=True)
class MailboxHealth:
    """One polled mailbox: is it enabled, when did it last work, how often has it failed since."""

    name: str
    enabled: bool
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    backlog: int  # stored messages from this mailbox that are not routed yet
    kind: str = "imap"
    auth_error: str | None = None  # set while the provider refuses the credentials (auth_failed)


@dataclass(frozen=True)
class OutboxCount:
    """How many outbox rows share one kind and status."""

    kind: str
    status: str
    count: int


@dataclass(frozen=True)
class WebhookHealth:
    """One webhook endpoint: on or off, off by itself (after days of failures), failing since when."""

    id: int
    enabled: bool
    auto_disabled: bool
    failing_since: datetime | None


@dataclass
class Snapshot:
    """Everything an operator looks at, taken at ``taken_at``."""

    taken_at: datetime
    inbound: list[InboundCount] = field(default_factory=list)
    oldest_unrouted_at: datetime | None = None
    mailboxes: list[MailboxHealth] = field(default_factory=list)
    queues: list[QueueDepth] = field(default_factory=list)
    outbox: list[OutboxCount] = field(default_factory=list)
    oldest_pending_outbox_at: datetime | None = None
    webhooks: list[WebhookHealth] = field(default_factory=list)
    database_error: str | None = None
    broker_error: str | None = None

    @property
    def oldest_unrouted_age_s(self) -> float:
        """Seconds since the oldest not-yet-routed message arrived (0 when none waits)."""
        if self.oldest_unrouted_at is None:
            return 0.0
        return max(0.0, (self.taken_at - self.oldest_unrouted_at).total_seconds())

    @property
    def oldest_pending_outbox_age_s(self) -> float:
        """Seconds since the oldest outbox row still waiting to be sent was written (0 when none)."""
        if self.oldest_pending_outbox_at is None:
            return 0.0
        return max(0.0, (self.taken_at - self.oldest_pending_outbox_at).total_seconds())

    @property
    def unrouted(self) -> int:
        return sum(c.count for c in self.inbound if c.status == "received")

    def counts_by_outcome(self) -> dict[str, int]:
        """Stored messages by outcome; ``received`` stands for "not routed yet"."""
        totals: dict[str, int] = {}
        for c in self.inbound:
            key = c.outcome or c.status
            totals[key] = totals.get(key, 0) + c.count
        return dict(sorted(totals.items()))

    def as_dict(self) -> dict:
        """A JSON-ready dict (``ticketpost status --json``)."""
        data = asdict(self)
        data["taken_at"] = _iso(self.taken_at)
        data["oldest_unrouted_at"] = _iso(self.oldest_unrouted_at)
        data["oldest_unrouted_age_s"] = round(self.oldest_unrouted_age_s, 3)
        data["oldest_pending_outbox_at"] = _iso(self.oldest_pending_outbox_at)
        data["oldest_pending_outbox_age_s"] = round(self.oldest_pending_outbox_age_s, 3)
        data["unrouted"] = self.unrouted
        for hook in data["webhooks"]:
            hook["failing_since"] = _iso(hook["failing_since"])
        data["inbound_by_outcome"] = self.counts_by_outcome()
        for mailbox, health in zip(data["mailboxes"], self.mailboxes):
            mailbox["health"] = health_word(health)
            mailbox["last_success_at"] = _iso(mailbox["last_success_at"])
            mailbox["last_error_at"] = _iso(mailbox["last_error_at"])
        data["queue_totals"] = {
            state: sum(getattr(q, state) for q in self.queues)
            for state in ("ready", "in_flight", "delayed", "dead_letter")
        }
        return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)  # SQLite gives naive UTC back
    return value


def inbound_counts(engine: Engine) -> list[InboundCount]:
    """Stored messages by source, status and outcome, in one ``GROUP BY``."""
    m = InboundMessage
    stmt = (
        select(m.source, m.status, m.outcome, func.count())
        .group_by(m.source, m.status, m.outcome)
        .order_by(m.source, m.status, m.outcome)
    )
    with engine.connect() as conn:
        return [InboundCount(s, st, o, int(n)) for s, st, o, n in conn.execute(stmt)]


def oldest_unrouted_at(engine: Engine) -> datetime | None:
    """When the oldest stored message that is not routed yet (status ``received``) arrived."""
    stmt = select(func.min(InboundMessage.received_at)).where(InboundMessage.status == "received")
    with engine.connect() as conn:
        value = conn.execute(stmt).scalar()
    if isinstance(value, str):  # SQLite returns MIN() of a DateTime column as text
        value = datetime.fromisoformat(value)
    return _aware(value)


def outbox_counts(engine: Engine) -> tuple[list[OutboxCount], datetime | None]:
    """Outbox rows by kind and status, and when the oldest pending one was written."""
    o = OutboxItem
    with engine.connect() as conn:
        counts = [OutboxCount(k, s, int(n)) for k, s, n in conn.execute(
            select(o.kind, o.status, func.count()).group_by(o.kind, o.status).order_by(o.kind, o.status))]
        oldest = conn.execute(select(func.min(o.created_at)).where(o.status == "pending")).scalar()
    if isinstance(oldest, str):  # SQLite returns MIN() of a DateTime column as text
        oldest = datetime.fromisoformat(oldest)
    return counts, _aware(oldest)


def webhook_health(engine: Engine) -> list[WebhookHealth]:
    """Every webhook endpoint's state (webhooks disabled by hand are not auto-disabled)."""
    w = Webhook
    with engine.connect() as conn:
        rows = conn.execute(select(w.id, w.enabled, w.disabled_reason, w.failing_since).order_by(w.id)).all()
    return [WebhookHealth(i, bool(on), (not on) and why is not None, _aware(since)) for i, on, why, since in rows]


def mailbox_health(
    engine: Engine, inbound: list[InboundCount] | None = None
) -> list[MailboxHealth]:
    """Health of every configured mailbox; backlog from the stored-but-unrouted counts."""
    if inbound is None:
        inbound = inbound_counts(engine)
    waiting = {c.source: 0 for c in inbound}
    for c in inbound:
        if c.status == "received":
            waiting[c.source] += c.count
    mb = Mailbox
    stmt = select(
        mb.name,
        mb.enabled,
        mb.last_success_at,
        mb.last_error,
        mb.last_error_at,
        mb.consecutive_failures,
        mb.kind,
        mb.auth_error,
    ).order_by(mb.name)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        MailboxHealth(
            name=name,
            enabled=bool(enabled),
            last_success_at=_aware(ok_at),
            last_error=error,
            last_error_at=_aware(error_at),
            consecutive_failures=int(failures or 0),
            backlog=waiting.get(f"{kind or 'imap'}:{name}", 0),
            kind=kind or "imap",
            auth_error=auth_error,
        )
        for name, enabled, ok_at, error, error_at, failures, kind, auth_error in rows
    ]


def take_snapshot(*, engine: Engine, settings=None, broker=None) -> Snapshot:
    """Read the database and the broker now; a part that cannot be read is named, not raised."""
    snap = Snapshot(taken_at=datetime.now(timezone.utc))
    engine = reading(engine)  # a scrape never waits for (nor holds) SQLite's write lock
    try:
        snap.inbound = inbound_counts(engine)
        snap.oldest_unrouted_at = oldest_unrouted_at(engine)
        snap.mailboxes = mailbox_health(engine, snap.inbound)
        snap.outbox, snap.oldest_pending_outbox_at = outbox_counts(engine)
        snap.webhooks = webhook_health(engine)
        snap.taken_at = datetime.now(timezone.utc)
    except Exception as exc:  # noqa: BLE001 - report, never crash the scrape
        log.warning("metrics: database not readable: %s", exc)
        snap.database_error = f"{type(exc).__name__}: {exc}"
    try:
        snap.queues = queue_depths(settings=settings, broker=broker)
    except BrokerUnavailable as exc:
        snap.broker_error = str(exc)
    except Exception as exc:  # noqa: BLE001
        log.warning("metrics: broker not readable: %s", exc)
        snap.broker_error = f"{type(exc).__name__}: {exc}"
    return snap
