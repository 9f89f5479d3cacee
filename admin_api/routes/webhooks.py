"""HTTP routes of webhooks (SPEC §11): subscriptions, deliveries, replay, test; admin to change."""

from __future__ import annotations

from fastapi import APIRouter, status

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep, SettingsDep
from admin_api.routes.responses import CONFLICT, NOT_FOUND, responses
from admin_api.schemas import ListOf, OutboxStatus, WebhookCreate, WebhookDeliveryOut, WebhookOut, WebhookUpdate
from admin_api.services import webhooks as service
from admin_api.services.errors import Invalid
from models import OutboxItem, Webhook
from models.webhook import events_list
from routing.outbox.dispatcher import hand_over

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=responses())


def webhook_out(webhook: Webhook, secret: str | None = None) -> WebhookOut:
    """The public view of a webhook; ``secret`` only right after it was generated."""
    fields = {k: getattr(webhook, k) for k in WebhookOut.model_fields if k not in ("events", "secret")}
    return WebhookOut(**fields, events=events_list(webhook.events), secret=secret)


def delivery_out(item: OutboxItem, attempts) -> WebhookDeliveryOut:
    payload = item.payload if isinstance(item.payload, dict) else None
    return WebhookDeliveryOut(
        id=item.id, webhook_id=item.target_id, event=(payload or {}).get("type"), webhook_message_id=item.message_id,
        status=item.status, attempts=item.attempts, last_status_code=item.last_status_code, last_error=item.reason,
        next_attempt_at=item.next_attempt_at if item.status == "pending" else None, created_at=item.created_at,
        sent_at=item.sent_at, ticket_id=item.ticket_id, inbound_id=item.inbound_id, payload=payload,
        attempt_log=attempts)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookOut)
def create_webhook(body: WebhookCreate, session: SessionDep, settings: SettingsDep, _: AdminRole):
    """Subscribe a URL to events; the answer shows a generated secret once."""
    webhook, generated = service.create_webhook(
        session, url=body.url, events=list(body.events),
        secret=body.secret.get_secret_value() if body.secret else None, enabled=body.enabled,
        description=body.description, secret_key=settings.secret_key,
        allow_private=settings.webhooks_allow_private)
    session.commit()
    return webhook_out(webhook, generated)


@router.get("", response_model=ListOf[WebhookOut])
def list_webhooks(session: SessionDep, _: AnyRole, paging: PagingDep):
    page = service.list_webhooks(session, limit=paging.limit, offset=paging.offset)
    return {"items": [webhook_out(w) for w in page.items], "total": page.total}


@router.get("/{webhook_id}", response_model=WebhookOut, responses=NOT_FOUND)
def get_webhook(webhook_id: IdPath, session: SessionDep, _: AnyRole):
    return webhook_out(service.get_webhook(session, webhook_id=webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookOut, responses=NOT_FOUND)
def update_webhook(webhook_id: IdPath, body: WebhookUpdate, session: SessionDep, settings: SettingsDep,
                   _: AdminRole):
    """Change a webhook; a new ``secret`` or ``rotate: true`` keeps the old secret signing for the grace."""
    changes = body.model_dump(exclude_unset=True)
    if "secret" in changes:
        if body.secret is None:
            raise Invalid("secret", "the secret cannot be null; leave it out to keep it")
        changes["secret"] = body.secret.get_secret_value()
    webhook, generated = service.update_webhook(
        session, webhook_id=webhook_id, changes=changes, secret_key=settings.secret_key,
        allow_private=settings.webhooks_allow_private, rotation_grace_s=settings.webhooks_rotation_grace)
    session.commit()
    return webhook_out(webhook, generated)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_webhook(webhook_id: IdPath, session: SessionDep, _: AdminRole) -> None:
    service.delete_webhook(session, webhook_id=webhook_id)
    session.commit()


@router.get("/{webhook_id}/deliveries", response_model=ListOf[WebhookDeliveryOut], responses=NOT_FOUND)
def list_deliveries(webhook_id: IdPath, session: SessionDep, _: AnyRole, paging: PagingDep,
                    status: OutboxStatus | None = None):
    """Deliveries, newest first, each with its attempts (status code, duration, error)."""
    page, attempts = service.list_deliveries(session, webhook_id=webhook_id, status=status, limit=paging.limit,
                                             offset=paging.offset)
    return {"items": [delivery_out(i, attempts[i.id]) for i in page.items], "total": page.total}


@router.post("/{webhook_id}/deliveries/{delivery_id}/replay", status_code=status.HTTP_202_ACCEPTED,
             response_model=WebhookDeliveryOut, responses={**NOT_FOUND, **CONFLICT})
def replay_delivery(webhook_id: IdPath, delivery_id: IdPath, session: SessionDep, _: AdminRole):
    """Send a delivery again now (same webhook-id and body, fresh attempts)."""
    item = service.replay_delivery(session, webhook_id=webhook_id, delivery_id=delivery_id)
    session.commit()
    hand_over(ids=[item.id])
    session.refresh(item)
    return delivery_out(item, [])


@router.post("/{webhook_id}/test", status_code=status.HTTP_202_ACCEPTED, response_model=WebhookDeliveryOut,
             responses={**NOT_FOUND, **CONFLICT})
def test_webhook(webhook_id: IdPath, session: SessionDep, caller: AdminRole):
    """Send a ``webhook.test`` event to this webhook through the same path as every delivery."""
    item = service.send_test(session, webhook_id=webhook_id, caller=caller.name)
    session.commit()
    hand_over(ids=[item.id])
    session.refresh(item)
    return delivery_out(item, [])
