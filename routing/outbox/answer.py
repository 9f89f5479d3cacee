"""Whether routing answers a message, and the outbox row that does (SPEC §10), in its transaction.

:func:`plan_answer` runs once routing knows the outcome (in the place the outcome is recorded):

* ``ticket_created`` (and ``triaged`` with ``TICKETPOST_ACKNOWLEDGE_TRIAGED``) is acknowledged,
  unless the client switched acknowledgements off (``send_acknowledgements``);
* ``rejected_not_primary`` and ``rejected_unknown_sender`` get a notice of refusal;
* nothing else is answered: automatic mail, bounces, loops and rate-limited senders, duplicates,
  muted contacts, ``rejected_unauthenticated`` (the From is likely forged), unusable senders.

Then the recipient must pass the loop rules: not one of our own addresses, not a null, daemon or
no-reply sender, not a From whose DMARC failed at a trusted server, at most
``TICKETPOST_ACKNOWLEDGE_PER_HOUR`` acknowledgements an hour and one notice per
``TICKETPOST_NOTICE_INTERVAL``. Every decision not to answer is written in the explanation as
``no acknowledgement: ...``. With ``TICKETPOST_OUTBOUND_URL`` unset nothing is decided, written
or explained (the routing of an installation that does not answer is unchanged).

:func:`write_answer` inserts the planned row (and, for an acknowledgement, its Message-ID into
``outbound_messages``, which the thread step already matches, so a reply to it continues the
ticket without the tag). Rendering happens in the dispatcher, never here: a template can never
fail a routing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.engine import Connection

from models import OutboundMessage, OutboxItem, utcnow
from models.addresses import AddressPatterns, address_key
from models.base import UTCDateTime
from routing.authentication import dmarc_failure
from routing.mailparse import clean_text
from routing.prepared import Prepared

ACKNOWLEDGED = ("ticket_created", "triaged")
NOTICES = {"rejected_not_primary": "notice_not_primary", "rejected_unknown_sender": "notice_unknown_sender"}
#: Why an outcome is never answered.
NEVER = {
    "ignored_auto_reply": "automatic mail is never answered",
    "ignored_bounce": "bounces and mail from mail systems are never answered",
    "ignored_loop": "mail from our own addresses or from a sender over the rate limit is never answered",
    "ignored_duplicate": "a copy of a message already on a ticket is not answered again",
    "ignored_contact_muted": "the contact is muted (ignore_email)",
    "rejected_unauthenticated": "a message refused as unauthenticated is never answered (its From is likely forged)",
    "rejected_invalid_sender": "the message has no usable address to answer",
}
NO_REPLY_LOCAL_PARTS = frozenset({
    "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply", "mailer-daemon",
    "postmaster", "mail-daemon", "mailerdaemon", "bounce", "bounces",
})
MAX_REFERENCES = 19

_OUTBOX = OutboxItem.__table__
_OUTBOUND = OutboundMessage.__table__
ANSWER_COLUMNS = ("kind", "status", "recipient", "ticket_id", "inbound_id", "client_id", "message_id", "payload",
                  "attempts", "next_attempt_at", "created_at", "updated_at")


@dataclass(frozen=True)
class Answer:
    """The outbox row routing writes with the outcome (``ticket_id`` filled in when written)."""

    kind: str  # acknowledgement | notice
    recipient: str
    client_id: int | None
    message_id: str
    payload: dict = field(default_factory=dict)

    def values(self, *, inbound_id: int, ticket_id: int | None) -> dict:
        now = utcnow()
        return {"kind": self.kind, "status": "pending", "recipient": self.recipient, "ticket_id": ticket_id,
                "inbound_id": inbound_id, "client_id": self.client_id, "message_id": self.message_id,
                "payload": self.payload, "attempts": 0, "next_attempt_at": now, "created_at": now,
                "updated_at": now}


def _typed(table, prefix: str, column: str):
    return bindparam(prefix + column, type_=table.c[column].type)


_INSERT_ANSWER = insert(_OUTBOX).values({c: _typed(_OUTBOX, "a_", c) for c in ANSWER_COLUMNS})
_INSERT_OUTBOUND = insert(_OUTBOUND).values(ticket_id=bindparam("a_ticket_id"), message_id=bindparam("a_message_id"),
                                            created_at=bindparam("a_created_at", type_=UTCDateTime()))
INSERT_ANSWER, INSERT_OUTBOUND = Prepared(_INSERT_ANSWER), Prepared(_INSERT_OUTBOUND)
#: PostgreSQL: an acknowledgement's two rows in one statement (one round trip).
INSERT_ACKNOWLEDGEMENT = Prepared(_INSERT_ANSWER.add_cte(_INSERT_OUTBOUND.cte("outbound_message")))
_RECENT = Prepared(
    select(func.count(), func.max(_OUTBOX.c.created_at)).select_from(_OUTBOX).where(
        _OUTBOX.c.recipient == bindparam("recipient"), _OUTBOX.c.kind == bindparam("kind"),
        _OUTBOX.c.created_at > bindparam("since", type_=UTCDateTime()))
)
#: PostgreSQL: concurrent routings answering one recipient queue here until commit, so the
#: per-recipient limits hold under a storm too.
_RECIPIENT_LOCK = Prepared(select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key"), 0))))


def with_acknowledgement(record, new_ticket):
    """``record`` (a statement that opens the CTE ``new_ticket``) writing an acknowledgement too.

    PostgreSQL: the outbox row and its Message-ID for threading ride in the statement that
    records the outcome and opens the ticket (data-modifying CTEs), so answering a new ticket
    costs routing no round trip of its own. Bound as :func:`answer_params`.
    """
    values = [_typed(_OUTBOX, "a_", c) for c in ANSWER_COLUMNS if c != "ticket_id"]
    row = insert(_OUTBOX).from_select(
        ["ticket_id", *(c for c in ANSWER_COLUMNS if c != "ticket_id")], select(new_ticket.c.id, *values),
    ).cte("acknowledgement")
    message_id = insert(_OUTBOUND).from_select(
        ["ticket_id", "message_id", "created_at"],
        select(new_ticket.c.id, _typed(_OUTBOX, "a_", "message_id"), _typed(_OUTBOX, "a_", "created_at")),
    ).cte("acknowledgement_message_id")
    return record.add_cte(row).add_cte(message_id)


def answer_params(answer: Answer, *, inbound_id: int, ticket_id: int | None) -> dict:
    """Bind parameters (``a_*``) of :data:`INSERT_ANSWER` and :data:`INSERT_OUTBOUND`."""
    return {"a_" + k: v for k, v in answer.values(inbound_id=inbound_id, ticket_id=ticket_id).items()}


def write_answer(db: Connection, answer: Answer, *, inbound_id: int, ticket_id: int | None) -> None:
    """Insert the outbox row (and an acknowledgement's Message-ID for threading) in ``db``'s transaction."""
    params = answer_params(answer, inbound_id=inbound_id, ticket_id=ticket_id)
    threads = answer.kind == "acknowledgement" and ticket_id is not None
    if threads and db.dialect.name == "postgresql":
        INSERT_ACKNOWLEDGEMENT.rows(db, params)
        return
    INSERT_ANSWER.rows(db, params)
    if threads:
        INSERT_OUTBOUND.rows(db, params)


def plan_answer(ctx) -> Answer | None:
    """The answer to routing's outcome in ``ctx`` (a RoutingContext), or None; explains a refusal."""
    settings = ctx.settings
    if not settings.outbound_url:
        return None
    outcome = ctx.outcome
    if outcome in ACKNOWLEDGED:
        if outcome == "triaged" and not settings.acknowledge_triaged:
            return _no(ctx, "tickets in triage are not acknowledged (TICKETPOST_ACKNOWLEDGE_TRIAGED is off)")
        if ctx.client is not None and not ctx.client.send_acknowledgements:
            return _no(ctx, f"client {ctx.client.name!r} has acknowledgements switched off (send_acknowledgements)")
        kind, template = "acknowledgement", "acknowledgement"
    elif outcome in NOTICES:
        kind, template = "notice", NOTICES[outcome]
    elif outcome in NEVER:
        return _no(ctx, NEVER[outcome])
    else:  # a reply to a ticket, a fault: nothing to answer, nothing to explain
        return None

    recipient = ctx.sender_email
    if not recipient:
        return _no(ctx, "the message has no usable address to answer")
    why = _never_to(ctx, recipient)
    if why:
        return _no(ctx, why)
    why = _over_limit(ctx, kind, recipient)
    if why:
        return _no(ctx, why)

    mail = ctx.mail
    payload = {"template": template, "subject": clean_text(mail.subject or "", 998)}
    if not mail.message_id_synthetic:
        payload["in_reply_to"] = ctx.message_id
        payload["references"] = [r for r in mail.references if r != ctx.message_id][-MAX_REFERENCES:]
    if kind == "notice":
        payload["rule"] = _rule(ctx)
    domain = parseaddr(settings.reply_address)[1].rpartition("@")[2] or "ticketpost.invalid"
    message_id = f"{kind[:3]}.{uuid.uuid4().hex}@{domain}"
    what = "an acknowledgement" if kind == "acknowledgement" else "a notice of refusal"
    ctx.explain("answer", f"{what} to {recipient} is queued (Message-ID <{message_id}>)")
    return Answer(kind, recipient, ctx.client.id if ctx.client is not None else None, message_id, payload)


def _no(ctx, why: str) -> None:
    ctx.explain("answer", f"no acknowledgement: {why}")
    return None


def _never_to(ctx, recipient: str) -> str | None:
    """Why ``recipient`` is never answered, or None."""
    settings = ctx.settings
    ours = AddressPatterns.from_entries([*settings.support_addresses, parseaddr(settings.reply_address)[1]])
    hit = ours.match(recipient)
    if hit:
        return f"{recipient} is one of our own addresses ({hit})"
    envelope = ctx.inbound.envelope_from
    if envelope is not None and envelope.strip() in ("", "<>"):
        return "the envelope sender is null (<>): automatic mail is never answered"
    local = address_key(recipient).rpartition("@")[0]
    if local in NO_REPLY_LOCAL_PARTS:
        return f"{recipient} is a mail system or no-reply address"
    if settings.trusted_authserv_ids:
        failed = dmarc_failure(message=ctx.mail.message, raw=ctx.mail.raw,
                               trusted_authserv_ids=settings.trusted_authserv_ids)
        if failed:
            return f"the From failed DMARC at a trusted server ({failed}): it is likely forged"
    return None


def _over_limit(ctx, kind: str, recipient: str) -> str | None:
    """Why the per-recipient limit of ``kind`` stops this answer, or None."""
    settings = ctx.settings
    now = utcnow()
    if kind == "acknowledgement":
        limit = settings.acknowledge_per_hour
        if limit <= 0:
            return "acknowledgements are switched off (TICKETPOST_ACKNOWLEDGE_PER_HOUR=0)"
        # An acknowledgement goes only to the sender of a new ticket, so the tickets this sender
        # opened in the hour before (read with the sender for the storm guard, no statement of its
        # own) bound the acknowledgements they got: under the limit there, under the limit here.
        record = ctx.record
        if record is not None and record.recent_new_tickets is not None:
            count = record.recent_new_tickets
            if count >= limit:
                return (f"{recipient} opened {count} tickets in the last hour and was acknowledged at most "
                        f"that often; the limit is {limit} acknowledgements an hour (TICKETPOST_ACKNOWLEDGE_PER_HOUR)")
            return None
        count, _last = _RECENT.first(ctx.db, {"recipient": recipient, "kind": kind, "since": now - timedelta(hours=1)})
        if count >= limit:
            return (f"{count} acknowledgements went to {recipient} in the last hour, the limit is {limit} "
                    "(TICKETPOST_ACKNOWLEDGE_PER_HOUR)")
        return None
    # notices: one per recipient and interval, exact even under a storm (PostgreSQL: concurrent
    # routings answering this recipient queue on a transaction lock until commit)
    if ctx.db.dialect.name == "postgresql":
        _RECIPIENT_LOCK.rows(ctx.db, {"key": f"outbox:{recipient}"})
    interval = settings.notice_interval
    count, last = _RECENT.first(ctx.db, {"recipient": recipient, "kind": kind,
                                          "since": now - timedelta(seconds=interval)})
    if count:
        when = last.isoformat(timespec="seconds") if hasattr(last, "isoformat") else str(last)
        return (f"a notice of refusal already went to {recipient} at {when}; one per "
                f"{_duration(interval)} (TICKETPOST_NOTICE_INTERVAL)")
    return None


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _rule(ctx) -> str:
    """The rule that refused the message, in words for its sender (never the primary's address)."""
    if ctx.outcome == "rejected_not_primary":
        name = ctx.client.name if ctx.client is not None else "your company"
        return (f"{name} has asked us to open tickets by e-mail only when they come from its primary "
                f"contact, and {ctx.sender_email} is not that contact.")
    return (f"{ctx.sender_email} is not an address of a customer we know, and mail from unknown "
            "senders does not open tickets.")
