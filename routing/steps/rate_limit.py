"""Step 6, rate limit: a sender who opened too many tickets within an hour is treated as a loop (SPEC §6)."""

from __future__ import annotations

from core import telemetry
from routing.context import RoutingContext
from routing.outcomes import Ignored


def rate_limit(ctx: RoutingContext) -> None:
    """Raise Ignored(ignored_loop) when the sender opened the allowed tickets already.

    The limit is ``TICKETPOST_RATE_LIMIT_PER_HOUR`` per hour (0 switches it off). The count
    (routing.sender_record.RECENT_NEW_TICKETS) is of the sender's mail received within an hour of
    this one that opened a ticket. On PostgreSQL the pipeline's lock statement serialises the
    routings of one sender, so concurrent workers cannot both see the last free place.
    """
    limit = ctx.settings.rate_limit_per_hour
    if not limit or limit <= 0 or ctx.record is None:
        return
    count = ctx.record.recent_new_tickets
    if count >= limit:
        telemetry.rate_limited()
        raise Ignored(
            "ignored_loop",
            f"{ctx.sender_email} opened {count} tickets within the hour, the rate limit is {limit} "
            "per hour (TICKETPOST_RATE_LIMIT_PER_HOUR): treated as a mail loop",
        )
