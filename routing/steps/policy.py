"""Step 11, policy: may this message open a new ticket? (Replies to a ticket always may.)"""

from __future__ import annotations

from sqlalchemy import select

from models import Contact
from routing.context import RoutingContext
from routing.outcomes import Rejected


def policy(ctx: RoutingContext) -> None:
    """Raise Rejected when the unmatched policy, the primary-contact rule or authentication refuses."""
    if ctx.ticket is not None:
        ctx.explain("policy", "a reply to an existing ticket: no new-ticket rules apply")
        return
    settings = ctx.settings
    client = ctx.client
    if client is None:
        if settings.unmatched_policy == "reject":
            raise Rejected(
                "rejected_unknown_sender",
                f"{ctx.sender_email} belongs to no client and unknown senders are rejected (UNMATCHED_POLICY=reject)",
            )
        ctx.explain("policy", "unknown sender: the ticket goes to triage (UNMATCHED_POLICY=triage)")
        return
    if not client.tickets_only_by_primary_contact:
        ctx.explain("policy", f"client {client.name!r} accepts tickets from any of its contacts")
        return
    contact = ctx.contact
    if contact is None or not contact.is_primary:
        primary = ctx.db.scalar(
            select(Contact.email).where(Contact.client_id == client.id, Contact.is_primary.is_(True)).limit(1)
        )
        who = f"its primary contact is {primary}" if primary else "it has no primary contact"
        raise Rejected(
            "rejected_not_primary",
            f"client {client.name!r} takes tickets by e-mail only from its primary contact; "
            f"{ctx.sender_email} is not it ({who})",
        )
    if client.require_authenticated_sender or settings.require_authenticated_sender:
        _require_authentication(ctx)
    else:
        ctx.explain("policy", f"{ctx.sender_email} is the primary contact of {client.name!r}")


def _require_authentication(ctx: RoutingContext) -> None:
    """Raise Rejected(rejected_unauthenticated) unless routing.authentication vouches for the sender."""
    from routing.authentication import evaluate_authentication

    verdict = evaluate_authentication(
        message=ctx.mail.message,
        raw=ctx.mail.raw,
        from_domain=ctx.sender_domain or "",
        trusted_authserv_ids=ctx.settings.trusted_authserv_ids,
        dkim_verify=ctx.settings.dkim_verify,
    )
    who = "the client" if ctx.client.require_authenticated_sender else "the installation"
    if not verdict.authenticated:
        raise Rejected(
            "rejected_unauthenticated",
            f"{ctx.sender_email} claims to be the primary contact, but {who} requires an "
            f"authenticated sender and the message is not authenticated: {verdict.detail}",
        )
    ctx.explain("policy", f"{ctx.sender_email} is the primary contact, authenticated ({verdict.method}: {verdict.detail})")
