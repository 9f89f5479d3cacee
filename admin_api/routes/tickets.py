"""HTTP routes of tickets: technicians may read, open and change them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import StreamingResponse

from admin_api.deps import AnyRole, IdPath, PagingDep, SessionDep
from admin_api.routes.responses import NOT_FOUND, responses
from admin_api.schemas import (
    ListOf,
    TicketChannel,
    TicketCreate,
    TicketDetail,
    TicketOut,
    TicketStatus,
    TicketUpdate,
)
from admin_api.services import attachments as attachment_service
from admin_api.services import tickets as service

router = APIRouter(prefix="/tickets", tags=["tickets"], responses=responses())

FilterId = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


@router.get("", response_model=ListOf[TicketOut])
def list_tickets(
    session: SessionDep,
    _: AnyRole,
    paging: PagingDep,
    client_id: FilterId = None,
    contact_id: FilterId = None,
    status: TicketStatus | None = None,
    channel: TicketChannel | None = None,
    triage: Annotated[bool | None, Query(description="true: only tickets without a client")] = None,
):
    page = service.list_tickets(
        session, client_id=client_id, contact_id=contact_id, status=status, channel=channel,
        triage=triage, limit=paging.limit, offset=paging.offset,
    )
    return {"items": page.items, "total": page.total}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TicketDetail)
def create_ticket(body: TicketCreate, session: SessionDep, _: AnyRole):
    """Open a ticket for a contact (channel api or portal); the primary-contact rule does not apply."""
    ticket = service.open_api_ticket(
        session, contact_id=body.contact_id, subject=body.subject, body=body.body, channel=body.channel
    )
    session.commit()
    return service.get_ticket(session, ticket_id=ticket.id)


@router.get("/{ticket_id}", response_model=TicketDetail, responses=NOT_FOUND)
def get_ticket(ticket_id: IdPath, session: SessionDep, _: AnyRole):
    return service.get_ticket(session, ticket_id=ticket_id)


@router.patch("/{ticket_id}", response_model=TicketDetail, responses=NOT_FOUND)
def update_ticket(ticket_id: IdPath, body: TicketUpdate, session: SessionDep, _: AnyRole):
    """Change status, subject, client (e.g. out of triage), contact or contract."""
    ticket = service.update_ticket(session, ticket_id=ticket_id, changes=body.model_dump(exclude_unset=True))
    session.commit()
    return service.get_ticket(session, ticket_id=ticket.id)


@router.get(
    "/{ticket_id}/messages/{message_id}/attachments/{index}",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": {}},
                                  "description": "the file's bytes as sent"}},
)
def download_attachment(
    ticket_id: IdPath,
    message_id: IdPath,
    index: Annotated[int, Path(ge=0, le=100_000)],
    session: SessionDep,
    _: AnyRole,
):
    """Download a file of a ticket message (``message_id`` is the ticket message's ``id``): the
    bytes as sent, streamed from the stored raw message."""
    download = attachment_service.open_download(session, ticket_id=ticket_id, message_id=message_id, index=index)
    return StreamingResponse(download.chunks, media_type=download.content_type, headers=download.headers)
