"""Step 2, loop guard: auto-replies, bounces and mail from our own addresses never open tickets.

(Mail storms from one sender: the rate_limit step, routing.steps.rate_limit.)
"""

from __future__ import annotations

from models.addresses import AddressPatterns
from routing.automail import classify
from routing.context import RoutingContext
from routing.outcomes import Ignored


def loop_guard(ctx: RoutingContext) -> None:
    """Raise Ignored for bounces, auto-replies and mail from our own support addresses."""
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
