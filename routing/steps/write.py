"""Step 13, write: the new ticket and its first message, or the appended reply."""

from __future__ import annotations

from models import utcnow
from routing.context import RoutingContext
from routing.mailparse import clean_text
from routing.tickets import LOOKUP, NEW_TICKET_NUMBER, ticket_values


def _message_fields(ctx: RoutingContext, ticket_id: int | None, at) -> dict:
    """The ticket message (routing.statements.MESSAGE_COLUMNS), stored with the outcome in one statement."""
    body = ctx.mail.body
    return {
        "ticket_id": ticket_id,
        "created_at": at,
        "inbound_id": ctx.inbound.id,
        "message_id": ctx.message_id,
        "sender_email": ctx.sender_email,
        "body_text": body.text,
        "reply_text": ctx.reply_text,
        "attachments": [a.as_dict() for a in body.attachments],
    }


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
    contract_id, sla = ctx.client_terms or (LOOKUP, LOOKUP)
    values = ticket_values(
        ctx.session if ctx.client_terms is None and ctx.client is not None else None,  # for LOOKUPs
        client=ctx.client,
        contact=ctx.contact,
        subject=clean_text(ctx.subject),
        channel="email",
        at=at,
        contract_id=contract_id,
        sla=sla,
    )
    ctx.new_ticket = values  # opened with the outcome, in one statement (routing.pipeline)
    ctx.message = _message_fields(ctx, None, at)
    number = NEW_TICKET_NUMBER  # the ticket's number once it has one
    if ctx.client is None:
        ctx.outcome = "triaged"
        ctx.reason = f"new ticket #{number} in triage: {ctx.sender_email} belongs to no client"
    else:
        ctx.outcome = "ticket_created"
        ctx.reason = f"new ticket #{number} for client {ctx.client.name!r}"
    details = []
    if values["contract_id"] is not None:
        details.append(f"contract id {values['contract_id']}")
    if values["sla_snapshot"]:
        due = values["first_response_due_at"]
        details.append(f"SLA {values['sla_snapshot']['name']!r}" + (f", first response due {due.isoformat(timespec='minutes')}" if due else ""))
    ctx.explain("write", ctx.reason + (f" ({'; '.join(details)})" if details else ""))
