"""Message content steps: calendar responses stop as auto-replies; the text a technician reads.

``calendar`` runs right after the loop guard (it is a loop-guard decision, kept in its own step
so it stays separate from the header checks there); ``content`` runs before ``write``, for mail
that becomes a ticket message only.
"""

from __future__ import annotations

from routing.context import RoutingContext
from routing.outcomes import Ignored
from routing.reply_text import reply_text
from routing.subjects import strip_reply_prefixes

#: iTIP methods (RFC 5546) that answer an invitation rather than ask for anything.
CALENDAR_RESPONSES = {
    "REPLY": "an answer to an invitation (accepted, declined or tentative)",
    "CANCEL": "a cancelled meeting",
    "COUNTER": "a counter-proposal for a meeting",
    "DECLINECOUNTER": "a declined counter-proposal",
}


def calendar(ctx: RoutingContext) -> None:
    """Raise Ignored(ignored_auto_reply) for calendar responses; invitations (REQUEST) go on."""
    mail = ctx.mail
    assert mail is not None
    if not (mail.content_type.startswith("multipart/") or mail.content_type == "text/calendar"):
        return  # no text/calendar part possible: the body is not read here
    methods = mail.body.calendar
    for method in methods:
        if method in CALENDAR_RESPONSES:
            raise Ignored("ignored_auto_reply",
                          f"a calendar response (text/calendar METHOD:{method}, {CALENDAR_RESPONSES[method]}): "
                          "sent by a calendar, not a request", step="loop_guard")
    if methods:
        listed = ", ".join(m or "no METHOD" for m in methods)
        ctx.explain("loop_guard", f"a calendar invitation ({listed}): ordinary mail")


def is_reply(ctx: RoutingContext) -> bool:
    """Whether the mail answers or forwards another: In-Reply-To, References, or a Re:/Fwd: prefix."""
    mail = ctx.mail
    return bool(mail.in_reply_to or mail.references) or strip_reply_prefixes(mail.subject) != mail.subject


def content(ctx: RoutingContext) -> None:
    """The reply text of the ticket message, and notes on what was capped or simplified."""
    mail = ctx.mail
    assert mail is not None
    body = mail.body
    for note in body.notes:
        ctx.explain("content", note)
    ctx.reply_text = None
    if is_reply(ctx) and body.text:
        new = reply_text(body.text)
        if new != body.text:
            ctx.reply_text = new
            ctx.explain("content", f"reply_text: the new part of the reply ({len(new):,} of "
                                   f"{len(body.text):,} characters; quoted history and signature left out)")
