"""Step 1, parse: read the raw bytes into the routing view of the message."""

from __future__ import annotations

from routing.context import RoutingContext
from routing.mailparse import clean_text, parse_message


def parse(ctx: RoutingContext) -> None:
    """Parse headers (body later, on demand); the Message-ID and subject go on the inbound row."""
    inbound = ctx.inbound
    mail = parse_message(inbound.raw or b"", sha256=inbound.sha256)
    ctx.mail = mail
    ctx.message_id = clean_text(mail.message_id, 998)
    if mail.message_id_synthetic:
        ctx.explain("parse", f"no Message-ID; using the synthetic <{mail.message_id}> from the SHA-256 of the raw bytes")
    else:
        ctx.explain("parse", f"Message-ID <{mail.message_id}>, subject {mail.subject[:200]!r}")
