"""HTTP routes of contacts, including the atomic primary switch and the portal view."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep
from admin_api.routes.responses import CONFLICT, NOT_FOUND, responses
from admin_api.schemas import (
    NO_NUL,
    ContactCreate,
    ContactOut,
    ContactUpdate,
    ListOf,
    PortalAttachmentOut,
    PortalTicketOut,
    TicketStatus,
)
from admin_api.services import contacts as service
from admin_api.services import attachments as attachment_service
from admin_api.services import tickets as ticket_service

router = APIRouter(tags=["contacts"], responses=responses(NOT_FOUND))


@router.post(
    "/clients/{client_id}/contacts",
    status_code=status.HTTP_201_CREATED,
    response_model=ContactOut,
    responses=CONFLICT,
)
def create_contact(client_id: IdPath, body: ContactCreate, session: SessionDep, _: AdminRole):
    """Add a contact; ``is_primary: true`` demotes the client's previous primary contact."""
    contact = service.create_contact(session, client_id=client_id, **body.model_dump())
    session.commit()
    return contact


@router.get("/clients/{client_id}/contacts", response_model=ListOf[ContactOut])
def list_client_contacts(client_id: IdPath, session: SessionDep, _: AnyRole, paging: PagingDep):
    page = service.list_contacts(session, client_id=client_id, limit=paging.limit, offset=paging.offset)
    return {"items": page.items, "total": page.total}


@router.get("/contacts", response_model=ListOf[ContactOut])
def list_contacts(
    session: SessionDep,
    _: AnyRole,
    paging: PagingDep,
    email: Annotated[str | None, Query(max_length=320, pattern=NO_NUL, description="exact address, any case")] = None,
    client_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL, description="part of the name or address")] = None,
):
    page = service.list_contacts(
        session, email=email, client_id=client_id, q=q, limit=paging.limit, offset=paging.offset
    )
    return {"items": page.items, "total": page.total}


@router.get("/contacts/{contact_id}", response_model=ContactOut)
def get_contact(contact_id: IdPath, session: SessionDep, _: AnyRole):
    return service.get_contact(session, contact_id=contact_id)


@router.patch("/contacts/{contact_id}", response_model=ContactOut, responses=CONFLICT)
def update_contact(contact_id: IdPath, body: ContactUpdate, session: SessionDep, _: AdminRole):
    """Change a contact; ``{"is_primary": true}`` makes it primary and demotes the previous one."""
    contact = service.update_contact(session, contact_id=contact_id, changes=body.model_dump(exclude_unset=True))
    session.commit()
    return contact


@router.delete("/contacts/{contact_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_contact(contact_id: IdPath, session: SessionDep, _: AdminRole) -> None:
    service.delete_contact(session, contact_id=contact_id)
    session.commit()


@router.get("/contacts/{contact_id}/tickets", response_model=ListOf[PortalTicketOut], tags=["tickets"])
def contact_tickets(
    contact_id: IdPath,
    session: SessionDep,
    _: AnyRole,
    paging: PagingDep,
    status: TicketStatus | None = None,
):
    """The portal view: the primary contact sees all its client's tickets, others only their own;
    each with the attachments of its messages."""
    page = ticket_service.contact_tickets(
        session, contact_id=contact_id, status=status, limit=paging.limit, offset=paging.offset
    )
    files = attachment_service.portal_attachments(session, [t.id for t in page.items])
    items = [
        PortalTicketOut.model_validate(t).model_copy(
            update={"attachments": [PortalAttachmentOut.model_validate(a) for a in files[t.id]]})
        for t in page.items
    ]
    return {"items": items, "total": page.total}
