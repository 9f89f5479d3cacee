"""HTTP routes of the outbox: what ticketpost sent or will send, and sending a row again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep
from admin_api.routes.responses import CONFLICT, NOT_FOUND, responses
from admin_api.schemas import NO_NUL, ListOf, OutboxKind, OutboxOut, OutboxStatus
from admin_api.services import outbox as service
from routing.outbox.dispatcher import hand_over

router = APIRouter(prefix="/outbox", tags=["outbox"], responses=responses())


class RetryOut(BaseModel):
    """The row is due again; ``enqueued`` false = the dispatcher's poller picks it up shortly."""

    item: OutboxOut
    enqueued: bool


@router.get("", response_model=ListOf[OutboxOut])
def list_outbox(
    session: SessionDep,
    _: AnyRole,
    paging: PagingDep,
    status: OutboxStatus | None = None,
    kind: OutboxKind | None = None,
    ticket_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    inbound_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    recipient: Annotated[str | None, Query(max_length=320, pattern=NO_NUL)] = None,
):
    """Acknowledgements, notices and webhook deliveries, newest first."""
    page = service.list_outbox(session, status=status, kind=kind, ticket_id=ticket_id, inbound_id=inbound_id,
                               recipient=recipient, limit=paging.limit, offset=paging.offset)
    return {"items": page.items, "total": page.total}


@router.get("/{item_id}", response_model=OutboxOut, responses=NOT_FOUND)
def get_outbox_item(item_id: IdPath, session: SessionDep, _: AnyRole):
    return service.get_outbox_item(session, item_id=item_id)


@router.post("/{item_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=RetryOut,
             responses={**NOT_FOUND, **CONFLICT})
@router.post("/{item_id}/replay", status_code=status.HTTP_202_ACCEPTED, response_model=RetryOut,
             responses={**NOT_FOUND, **CONFLICT})
def retry(item_id: IdPath, session: SessionDep, _: AdminRole):
    """Send a failed (or still waiting) row again, now, with fresh attempts and its Message-ID."""
    item = service.retry_outbox_item(session, item_id=item_id)
    session.commit()
    enqueued = hand_over(ids=[item_id])
    session.refresh(item)
    return RetryOut(item=OutboxOut.model_validate(item), enqueued=enqueued)
