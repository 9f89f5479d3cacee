"""Step 8, write: the new ticket and its first message, or the appended reply."""

from __future__ import annotations

from models import utcnow
from routing.context import RoutingContext
from routing.mailparse import clean_text
from routing.tickets import LOOKUP, open_ticket


def _message_fields(ctx: RoutingContext, ticket_id: int, at) -> dict:
    """The ticket message (routing.pipeline.MESSAGE_COLUMNS), stored with the outcome in one statement."""
    body = ctx.mail.body
    return {
        "ticket_id": ticket_id,
        "created_at": at,
        "inbound_id": ctx.inbound.id,
        "message_id": ctx.message_id,
        "sender_email": ctx.sender_email,
        "body_text": body.text,
        "attachments": [a.as_dict() for a in body.attachments],
    }


def _known_contract_and_sla(ctx: RoutingContext) -> tuple:
    """The active contract and SLA found with the sender's contact, or LOOKUP when the client came otherwise."""
    record = ctx.record
    if record is not None and record.client is not None and ctx.client is record.client:
        return record.active_contract_id, record.sla
    return LOOKUP, LOOKUP


def write(ctx: RoutingContext) -> None:
    """Create or update the ticket; set ``ctx.outcome`` and ``ctx.reason`` (committed by the pipeline)."""
    at = ctx.inbound.received_at or utcnow()
    if ctx.ticket is not None:
        ticket = ctx.ticket
        ctx.message = _message_fields(ctx, ticket.id, at)
        if ctx.reopened:
            ctx.ticket_status = "open"  # with updated_at, written with the outcome
        ctx.outcome = "ticket_updated"
        ctx.reason = f"appended to ticket #{ticket.number}" + (" and reopened it" if ctx.reopened else "")
        ctx.explain("write", ctx.reason)
        return
    contract_id, sla = _known_contract_and_sla(ctx)
    ticket = open_ticket(
        ctx.session,
        client=ctx.client,
        contact=ctx.contact,
        subject=clean_text(ctx.subject),
        channel="email",
        at=at,
        contract_id=contract_id,
        sla=sla,
    )
    ctx.ticket = ticket
    ctx.message = _message_fields(ctx, ticket.id, at)
    if ctx.client is None:
        ctx.outcome = "triaged"
        ctx.reason = f"new ticket #{ticket.number} in triage: {ctx.sender_email} belongs to no client"
    else:
        ctx.outcome = "ticket_created"
        ctx.reason = f"new ticket #{ticket.number} for client {ctx.client.name!r}"
    details = []
    if ticket.contract_id is not None:
        details.append(f"contract id {ticket.contract_id}")
    if ticket.sla_snapshot:
        due = ticket.first_response_due_at
        details.append(f"SLA {ticket.sla_snapshot['name']!r}" + (f", first response due {due.isoformat(timespec='minutes')}" if due else ""))
    ctx.explain("write", ctx.reason + (f" ({'; '.join(details)})" if details else ""))
