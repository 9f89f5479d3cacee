"""Step 8, client: an existing contact with the sender's address decides; else the domain match."""

from __future__ import annotations

from routing.context import RoutingContext
from routing.domains import match_domain


def client(ctx: RoutingContext) -> None:
    """Find the sender's client (None = unknown sender) and, on the way, the existing contact."""
    record = ctx.record  # looked up with the sender, in the same statement
    if record is not None and record.contact is not None:
        ctx.contact, ctx.client = record.contact, record.client
        ctx.client_terms = (record.active_contract_id, record.sla)
        ctx.client_via = "contact"
        ctx.explain("client", f"{ctx.sender_email} is a contact of client {ctx.client.name!r} (id {ctx.client.id})")
        return
    match = match_domain(ctx.db, ctx.sender_domain or "", on=ctx.inbound.received_at.date())
    if match is None:
        ctx.explain("client", f"no contact {ctx.sender_email} and no client owns {ctx.sender_domain} or a parent domain")
        return
    ctx.client = match.client  # read by the same query, with its contract and SLA
    ctx.client_terms = (match.active_contract_id, match.sla)
    ctx.client_via = f"domain {match.domain}"
    how = "exactly" if match.domain == ctx.sender_domain else f"as a subdomain of {match.domain}"
    ctx.explain("client", f"domain {ctx.sender_domain} matches client {ctx.client.name!r} (id {ctx.client.id}) {how}")
