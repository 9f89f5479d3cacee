"""Step 2, loop guard: auto-replies, bounces, our own addresses and mail storms never open tickets."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, func, literal_column, select

from models import InboundMessage
from models.addresses import AddressPatterns
from models.base import UTCDateTime
from routing.automail import classify
from routing.context import RoutingContext
from routing.outcomes import Ignored

NEW_TICKET_OUTCOMES = ("ticket_created", "triaged")


def loop_guard(ctx: RoutingContext) -> None:
    """Raise Ignored for bounces, auto-replies, our own support addresses and senders over the rate limit."""
    mail = ctx.mail
    assert mail is not None

    verdict = classify(mail, envelope_from=ctx.inbound.envelope_from)
    if verdict is not None:
        raise Ignored(verdict.outcome, verdict.reason)

    if ctx.settings.support_addresses:
        patterns = AddressPatterns.from_entries(ctx.settings.support_addresses)
        for _name, address in mail.from_addresses:
            hit = patterns.match(address)
            if hit:
                raise Ignored("ignored_loop", f"From {address} is one of our own support addresses ({hit})")
        loop = mail.header_all("X-Loop")
        for value in loop:
            hit = patterns.match(value)
            if hit:
                raise Ignored("ignored_loop", f"X-Loop names our support address {hit}: this mail went round")

    ctx.explain("loop_guard", "not an auto-reply, bounce or mail from our own addresses")


# Built once: constructing a statement costs more than running it (bind parameters vary).
RECENT_NEW_TICKETS = (
    select(func.count())
    .select_from(InboundMessage)
    .where(
        InboundMessage.sender_email == bindparam("rl_sender"),
        InboundMessage.received_at > bindparam("rl_since", type_=UTCDateTime()),
        InboundMessage.received_at <= bindparam("rl_until", type_=UTCDateTime()),
        # literal values, not bind parameters: PostgreSQL's generic plan of the prepared statement
        # can then use the partial index ix_inbound_new_tickets_by_sender (models.inbound)
        InboundMessage.outcome.in_([literal_column(f"'{o}'") for o in NEW_TICKET_OUTCOMES]),
        InboundMessage.id != bindparam("rl_inbound_id"),
    )
    .scalar_subquery()
)


def recent_window(sender_email: str, received_at, inbound_id: int) -> dict:
    """Bind parameters of :data:`RECENT_NEW_TICKETS`: the sender's tickets opened in the hour before a message.

    Counts the sender's inbound messages that opened a ticket (``ticket_created`` or
    ``triaged``), other than this one.
    """
    return {
        "rl_sender": sender_email,
        "rl_since": received_at - timedelta(hours=1),
        "rl_until": received_at,
        "rl_inbound_id": inbound_id,
    }


def rate_limit(ctx: RoutingContext, count: int) -> None:
    """Raise Ignored(ignored_loop) when the sender opened more than the allowed tickets in the last hour.

    The limit is ``TICKETPOST_RATE_LIMIT_PER_HOUR`` (0 switches it off); ``count`` is the result
    of :data:`RECENT_NEW_TICKETS` (read with the sender, routing.sender_record).
    """
    limit = ctx.settings.rate_limit_per_hour
    if not limit or limit <= 0 or not ctx.sender_email:
        return
    if count >= limit:
        from core import telemetry as metrics

        metrics.rate_limited()
        raise Ignored(
            "ignored_loop",
            f"{ctx.sender_email} opened {count} tickets in the last hour, the rate limit is {limit} "
            "per hour (TICKETPOST_RATE_LIMIT_PER_HOUR): treated as a mail loop",
            step="loop_guard",
        )
