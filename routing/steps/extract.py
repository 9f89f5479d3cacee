"""Step 5, extract: the body text and the attachment list, decoded before any lock is taken."""

from __future__ import annotations

from routing.context import RoutingContext


def extract(ctx: RoutingContext) -> None:
    """Decode the body and list the attachments now (the write step stores them).

    Decoding is routing's heaviest CPU work (charsets, HTML to text); it runs here, before the
    pipeline opens the write transaction, so no single message holds the database's write lock
    (SQLite) or its row and duplicate locks (PostgreSQL) while it is decoded.
    """
    assert ctx.mail is not None
    ctx.mail.body  # noqa: B018 - computed once and kept (ParsedMail.body is a cached property)
