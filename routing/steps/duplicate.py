"""Step 7, duplicate: the same message (Message-ID and sender) already on a ticket is ignored."""

from __future__ import annotations

from routing.context import RoutingContext
from routing.outcomes import Ignored


def duplicate(ctx: RoutingContext) -> None:
    """Raise Ignored(ignored_duplicate) when this sender's message is already on a ticket.

    Copies of one message routed at once queue on the pipeline's Message-ID lock, so the second
    one's answer (routing.sender_record) sees the first one's committed ticket message.
    """
    record = ctx.record
    if record is not None and record.duplicate_ticket_number is not None:
        raise Ignored(
            "ignored_duplicate",
            f"message <{ctx.message_id}> from {ctx.sender_email} is already on ticket "
            f"#{record.duplicate_ticket_number}",
        )
