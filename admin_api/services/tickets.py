"""Tickets over the API: list, read with messages, open (API/portal), change; the portal view.

Decisions:
- Tickets opened through the API or portal belong to the contact's client and are never refused
  by the primary-contact rule (that rule is for e-mail only); they get the active contract and
  the SLA like e-mail tickets (routing.tickets.open_ticket).
- A contact whose ``ignore_email`` is set may still open tickets through the API or portal: the
  flag mutes e-mail only.
- Assigning a triaged ticket to a client (``client_id``) gives it that client's active contract
  (on the ticket's creation date) and SLA, unless ``contract_id`` is given as well. A contact
  given in the same change must belong to that client; a contact of another client is refused.
- Portal view: the client's primary contact sees all of the client's tickets, every other
  contact only the tickets it opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from admin_api.services.errors import Invalid, NotFound, checked_fields
from admin_api.services.pages import Page, paginate
from models import TICKET_STATUSES, Client, Contact, Contract, Sla, Ticket, utcnow

API_CHANNELS = ("api", "portal")
TICKET_UPDATE_FIELDS = ("subject", "status", "client_id", "contact_id", "contract_id")


def open_api_ticket(
    session: Session, *, contact_id: int, subject: str, body: str = "", channel: str = "api"
) -> Ticket:
    """Open a ticket for a contact through the API or portal; raises Invalid for a bad contact."""
    from routing.tickets import open_ticket

    if channel not in API_CHANNELS:
        raise Invalid("channel", f"channel must be one of {', '.join(API_CHANNELS)}")
    subject = (subject or "").strip()
    if not subject:
        raise Invalid("subject", "a ticket needs a subject")
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise Invalid("contact_id", f"contact {contact_id} does not exist")
    client = session.get(Client, contact.client_id)
    now = utcnow()
    ticket = open_ticket(
        session,
        client=client,
        contact=contact,
        subject=subject,
        channel=channel,
        at=now,
        first_message={"sender_email": contact.email, "body_text": body or "", "attachments": []},
    )
    return ticket


def update_ticket(session: Session, *, ticket_id: int, changes: Mapping[str, Any]) -> Ticket:
    """Change status, subject, client, contact or contract of a ticket (only the keys given)."""
    ticket = get_ticket(session, ticket_id=ticket_id, with_messages=False)
    checked_fields(
        changes, allowed=TICKET_UPDATE_FIELDS, what="a ticket that can be changed",
        not_null=("subject", "status"),
    )
    if "status" in changes:
        if changes["status"] not in TICKET_STATUSES:
            raise Invalid("status", f"status must be one of {', '.join(TICKET_STATUSES)}")
        ticket.status = changes["status"]
    if "subject" in changes:
        subject = changes["subject"].strip()
        if not subject:
            raise Invalid("subject", "a ticket needs a subject")
        ticket.subject = subject

    client_changed = "client_id" in changes and changes["client_id"] != ticket.client_id
    if client_changed:
        _assign_client(session, ticket, changes["client_id"], set_contract="contract_id" not in changes)
    if "contact_id" in changes:
        _assign_contact(session, ticket, changes["contact_id"], client_given="client_id" in changes)
    elif client_changed and ticket.contact_id is not None:
        contact = session.get(Contact, ticket.contact_id)
        if contact is not None and contact.client_id != ticket.client_id:
            ticket.contact_id = None
    if "contract_id" in changes:
        _assign_contract(session, ticket, changes["contract_id"])
    ticket.updated_at = utcnow()
    session.flush()
    return ticket


def get_ticket(session: Session, *, ticket_id: int, with_messages: bool = True) -> Ticket:
    """The ticket with this id (and its messages); raises NotFound."""
    query = select(Ticket).where(Ticket.id == ticket_id)
    if with_messages:
        query = query.options(selectinload(Ticket.messages))
    ticket = session.scalar(query)
    if ticket is None:
        raise NotFound("ticket", ticket_id)
    return ticket


def list_tickets(
    session: Session,
    *,
    client_id: int | None = None,
    contact_id: int | None = None,
    status: str | None = None,
    channel: str | None = None,
    triage: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[Ticket]:
    """Tickets, newest first, filtered."""
    query = select(Ticket).order_by(Ticket.id.desc())
    if client_id is not None:
        query = query.where(Ticket.client_id == client_id)
    if contact_id is not None:
        query = query.where(Ticket.contact_id == contact_id)
    if status is not None:
        query = query.where(Ticket.status == status)
    if channel is not None:
        query = query.where(Ticket.channel == channel)
    if triage is True:
        query = query.where(Ticket.client_id.is_(None))
    elif triage is False:
        query = query.where(Ticket.client_id.is_not(None))
    return paginate(session, query, limit=limit, offset=offset)


def contact_tickets(
    session: Session, *, contact_id: int, status: str | None = None, limit: int = 50, offset: int = 0
) -> Page[Ticket]:
    """The portal view: all the client's tickets for its primary contact, else the contact's own."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound("contact", contact_id)
    if contact.is_primary:
        return list_tickets(session, client_id=contact.client_id, status=status, limit=limit, offset=offset)
    return list_tickets(session, contact_id=contact.id, status=status, limit=limit, offset=offset)


# --- steps ---------------------------------------------------------------------------------------


def _assign_client(session: Session, ticket: Ticket, client_id: int | None, *, set_contract: bool) -> None:
    from routing.tickets import active_contract, apply_sla

    if client_id is None:
        ticket.client_id = None
        ticket.contract_id = None
        return
    client = session.get(Client, client_id)
    if client is None:
        raise Invalid("client_id", f"client {client_id} does not exist")
    ticket.client_id = client.id
    if set_contract:
        contract = active_contract(session, client_id=client.id, on=ticket.created_at.date())
        ticket.contract_id = contract.id if contract is not None else None
    sla = session.get(Sla, client.sla_id) if client.sla_id is not None else None
    apply_sla(ticket, sla, at=ticket.created_at)


def _assign_contact(session: Session, ticket: Ticket, contact_id: int | None, *, client_given: bool) -> None:
    if contact_id is None:
        ticket.contact_id = None
        return
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise Invalid("contact_id", f"contact {contact_id} does not exist")
    if ticket.client_id is None and not client_given:
        _assign_client(session, ticket, contact.client_id, set_contract=True)
    elif contact.client_id != ticket.client_id:
        raise Invalid(
            "contact_id",
            f"contact {contact.id} belongs to client {contact.client_id}, not to the ticket's "
            f"client {ticket.client_id}",
        )
    ticket.contact_id = contact.id


def _assign_contract(session: Session, ticket: Ticket, contract_id: int | None) -> None:
    if contract_id is None:
        ticket.contract_id = None
        return
    contract = session.get(Contract, contract_id)
    if contract is None:
        raise Invalid("contract_id", f"contract {contract_id} does not exist")
    if contract.client_id != ticket.client_id:
        raise Invalid(
            "contract_id",
            f"contract {contract.id} belongs to client {contract.client_id}, not to the ticket's "
            f"client {ticket.client_id}",
        )
    ticket.contract_id = contract.id
