"""Step 3, sender: the From address, normalised; plus the duplicate check and the rate limit."""

from __future__ import annotations

from sqlalchemy import Text, bindparam, func, select

from models.addresses import InvalidAddress, parse_address
from routing.context import RoutingContext
from routing.outcomes import Ignored, Rejected
from routing.prepared import Prepared
from routing.sender_record import lookup_sender
from routing.steps.loop_guard import rate_limit

#: pg_advisory_xact_lock on a 64-bit hash of the Message-ID (released at commit). Keyed by the
#: Message-ID alone, not (Message-ID, sender): copies from different senders merely wait for each
#: other, and routing.pipeline can take the same lock in its first statement, before the sender
#: is known.
_DUPLICATE_LOCK = Prepared(select(
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=Text), 0))
))


def sender(ctx: RoutingContext) -> None:
    """Pick the sender address; raise Rejected(rejected_invalid_sender) when there is none."""
    mail = ctx.mail
    assert mail is not None
    candidates = mail.from_addresses
    problems: list[str] = []
    chosen: tuple[str, str, str] | None = None  # (name, address, domain)
    for name, address in candidates:
        try:
            checked = parse_address(address.strip().strip("<>"))
        except InvalidAddress as exc:
            problems.append(f"{address[:100]!r}: {exc}")
            continue
        chosen = (name, checked.key, checked.domain)
        break
    via = "From"
    if chosen is None and len(candidates) > 1:
        for name, address in mail.sender_header:
            try:
                checked = parse_address(address.strip().strip("<>"))
            except InvalidAddress:
                continue
            chosen, via = (name, checked.key, checked.domain), "Sender"
            break
    if chosen is None:
        if not candidates:
            raw_from = mail.raw_header("From")
            why = "the message has no From header" if raw_from is None else f"From {mail.from_header[:200]!r} holds no address"
        else:
            why = "no usable From address (" + "; ".join(problems)[:500] + ")"
        raise Rejected("rejected_invalid_sender", why)

    name, address, domain = chosen
    ctx.sender_name, ctx.sender_email, ctx.sender_domain = name, address, domain
    if len(candidates) > 1:
        listed = ", ".join(a for _, a in candidates)[:300]
        if via == "Sender":
            ctx.explain("sender", f"From lists {len(candidates)} addresses ({listed}), none usable; using the Sender header {address}")
        else:
            ctx.explain("sender", f"From lists {len(candidates)} addresses ({listed}); using the first valid one, {address}")
    else:
        ctx.explain("sender", f"sender {address}")

    # Two copies of one message routed at the same time must not both pass the duplicate check:
    # on PostgreSQL they queue on a transaction lock keyed by the Message-ID, taken in a statement
    # before the one that checks; the second then sees the first one's committed ticket message.
    # Usually the pipeline's row-lock statement already took it (locked_message_id); a statement
    # of its own only when PostgreSQL read another Message-ID than the parser (folded, missing,
    # not ASCII). (SQLite's BEGIN IMMEDIATE already serialises whole routings.)
    if ctx.locked_message_id != ctx.message_id and ctx.db.dialect.name == "postgresql":
        _DUPLICATE_LOCK.rows(ctx.db, {"key": ctx.message_id})

    # one round trip for what the database knows about the sender (used by the next steps too)
    record = lookup_sender(ctx.db, email=address, message_id=ctx.message_id,
                           inbound_id=ctx.inbound.id, received_at=ctx.inbound.received_at)
    ctx.record = record
    rate_limit(ctx, record.recent_new_tickets)
    duplicate = record.duplicate_ticket_number
    if duplicate is not None:
        raise Ignored(
            "ignored_duplicate",
            f"message <{ctx.message_id}> from {address} is already on ticket #{duplicate}",
        )
