"""Webhooks seen from the API: subscriptions, their deliveries, replays and test events.

Decisions (SPEC §11 is silent on these):

- A secret is write-only. Left out on create, one is generated (``whsec_`` + base64 of 32 random
  bytes) and shown once, in that answer. It is stored encrypted with TICKETPOST_SECRET_KEY like
  mailbox passwords, since it must be read back to sign; without a key configured it is stored
  as it is (models.webhook.seal_secret), so webhooks work in a bare embedded installation.
- Rotation: ``PATCH`` with a new ``secret``, or ``{"rotate": true}`` (a new one is generated and
  shown once). The old secret keeps signing alongside the new one (two signatures in
  ``webhook-signature``) for TICKETPOST_WEBHOOKS_ROTATION_GRACE (24 h), so receivers can switch
  without losing a delivery.
- URLs are http(s); private, loopback and link-local targets are refused (422 naming ``url``)
  unless TICKETPOST_WEBHOOKS_ALLOW_PRIVATE (see routing.webhooks.targets).
- Re-enabling a webhook (``enabled: true``) clears its failure record and the reason it was
  disabled; deliveries that failed meanwhile can be replayed one by one.
- A replay sends a delivery again (also one already sent) with the same ``webhook-id`` and body,
  fresh attempts; ``webhook.test`` goes to one enabled webhook whatever it subscribed to.
- Deleting a webhook keeps its deliveries in the outbox (their attempts fail: webhook deleted).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_api.services.errors import Conflict, Invalid, NotFound, checked_fields
from admin_api.services.pages import Page, paginate
from models import TEST_EVENT, WEBHOOK_EVENTS, OutboxItem, Webhook, WebhookAttempt, utcnow
from models.webhook import events_column, seal_secret
from routing.webhooks.events import write_event
from routing.webhooks.signing import BadSecret, generate_secret, secret_key
from routing.webhooks.targets import TargetRefused, check_url

_UPDATABLE = ("url", "events", "secret", "rotate", "enabled", "description")


def _url(url: str, *, allow_private: bool) -> str:
    try:
        return check_url(url.strip(), allow_private=allow_private)
    except TargetRefused as exc:
        raise Invalid("url", str(exc)) from None


def _events(events: list[str]) -> str:
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown or not events:
        raise Invalid("events", f"events must be a non-empty list of {', '.join(WEBHOOK_EVENTS)}")
    return events_column(events)


def _checked_secret(secret: str) -> str:
    try:
        secret_key(secret)
    except BadSecret as exc:
        raise Invalid("secret", str(exc)) from None
    return secret


def create_webhook(session: Session, *, url: str, events: list[str], secret: str | None = None,
                   enabled: bool = True, description: str | None = None, secret_key: str | None,
                   allow_private: bool) -> tuple[Webhook, str | None]:
    """Add a webhook; return it and the generated secret (None when one was given).

    Raises Invalid.
    """
    generated = None
    if secret is None:
        secret = generated = generate_secret()
    webhook = Webhook(url=_url(url, allow_private=allow_private), events=_events(events),
                      secret_encrypted=seal_secret(_checked_secret(secret), key=secret_key),
                      enabled=enabled, description=description)
    session.add(webhook)
    session.flush()
    return webhook, generated


def list_webhooks(session: Session, *, limit: int = 50, offset: int = 0) -> Page[Webhook]:
    return paginate(session, select(Webhook).order_by(Webhook.id), limit=limit, offset=offset)


def get_webhook(session: Session, *, webhook_id: int) -> Webhook:
    """The webhook with this id; raises NotFound."""
    webhook = session.get(Webhook, webhook_id)
    if webhook is None:
        raise NotFound("webhook", webhook_id)
    return webhook


def update_webhook(session: Session, *, webhook_id: int, changes: Mapping[str, Any], secret_key: str | None,
                   allow_private: bool, rotation_grace_s: float) -> tuple[Webhook, str | None]:
    """Apply ``changes``; return the webhook and a generated secret (``rotate``), if any."""
    webhook = get_webhook(session, webhook_id=webhook_id)
    changes = checked_fields(changes, allowed=_UPDATABLE, what="a webhook", not_null=("url", "events", "enabled"))
    generated = None
    new_secret = changes.pop("secret", None)
    if changes.pop("rotate", False):
        if new_secret is not None:
            raise Invalid("rotate", "give either a new secret or rotate: true, not both")
        new_secret = generated = generate_secret()
    if new_secret is not None:
        encrypted = seal_secret(_checked_secret(new_secret), key=secret_key)
        webhook.previous_secret_encrypted = webhook.secret_encrypted
        webhook.previous_secret_expires_at = utcnow() + timedelta(seconds=rotation_grace_s)
        webhook.secret_encrypted = encrypted
    if "url" in changes:
        webhook.url = _url(changes["url"], allow_private=allow_private)
    if "events" in changes:
        webhook.events = _events(changes["events"])
    if "description" in changes:
        webhook.description = changes["description"]
    if "enabled" in changes:
        if changes["enabled"] and not webhook.enabled:
            webhook.failing_since = None
            webhook.disabled_reason = None
        webhook.enabled = changes["enabled"]
    webhook.updated_at = utcnow()
    session.flush()
    return webhook, generated


def delete_webhook(session: Session, *, webhook_id: int) -> None:
    session.delete(get_webhook(session, webhook_id=webhook_id))
    session.flush()


def list_deliveries(session: Session, *, webhook_id: int, status: str | None = None, limit: int = 50,
                    offset: int = 0) -> tuple[Page[OutboxItem], dict[int, list[WebhookAttempt]]]:
    """The webhook's deliveries, newest first, and the attempts of each (oldest first)."""
    get_webhook(session, webhook_id=webhook_id)
    query = (select(OutboxItem).where(OutboxItem.kind == "webhook", OutboxItem.target_id == webhook_id)
             .order_by(OutboxItem.id.desc()))
    if status is not None:
        query = query.where(OutboxItem.status == status)
    page = paginate(session, query, limit=limit, offset=offset)
    attempts: dict[int, list[WebhookAttempt]] = {item.id: [] for item in page.items}
    if attempts:
        for attempt in session.scalars(select(WebhookAttempt).where(WebhookAttempt.outbox_id.in_(list(attempts)))
                                       .order_by(WebhookAttempt.id)):
            attempts[attempt.outbox_id].append(attempt)
    return page, attempts


def replay_delivery(session: Session, *, webhook_id: int, delivery_id: int) -> OutboxItem:
    """Make the delivery due now with fresh attempts (same webhook-id and body); raises NotFound,
    Conflict (the webhook is disabled)."""
    webhook = get_webhook(session, webhook_id=webhook_id)
    item = session.scalar(select(OutboxItem).where(OutboxItem.id == delivery_id, OutboxItem.kind == "webhook",
                                                   OutboxItem.target_id == webhook_id).with_for_update())
    if item is None:
        raise NotFound("delivery", delivery_id)
    if not webhook.enabled:
        raise Conflict(f"webhook {webhook_id} is disabled; enable it (PATCH enabled: true) before replaying")
    now = utcnow()
    item.status, item.attempts, item.next_attempt_at, item.updated_at, item.sent_at = "pending", 0, now, now, None
    session.flush()
    return item


def send_test(session: Session, *, webhook_id: int, caller: str) -> OutboxItem:
    """Write a ``webhook.test`` delivery to this webhook; raises NotFound, Conflict (disabled)."""
    webhook = get_webhook(session, webhook_id=webhook_id)
    if not webhook.enabled:
        raise Conflict(f"webhook {webhook_id} is disabled; enable it (PATCH enabled: true) to test it")
    data = {"webhook": {"id": webhook.id, "url": webhook.url}, "requested_by": caller,
            "message": "a test event from ticketpost"}
    ids = write_event(session.connection(), TEST_EVENT, data, webhook_id=webhook.id)
    return session.get(OutboxItem, ids[0])
