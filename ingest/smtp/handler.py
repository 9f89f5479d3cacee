"""The aiosmtpd handler: what happens at EHLO, MAIL, RCPT and at the end of DATA."""

from __future__ import annotations

import logging

from aiosmtpd.smtp import Envelope, Session
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from core.settings import Settings
from ingest.smtp.group_commit import GroupCommitWriter
from ingest.smtp.metrics import MetricsSender
from ingest.smtp.policy import RecipientPolicy, has_control_characters, is_mailbox, recipient_key
from ingest.smtp.replies import (
    REPLY_BAD_RECIPIENT,
    REPLY_BAD_RECIPIENT_SYNTAX,
    REPLY_BAD_SENDER,
    REPLY_BAD_SENDER_SYNTAX,
    REPLY_DATABASE_DOWN,
    REPLY_INTERNAL_ERROR,
    REPLY_RCPT_OK,
    REPLY_SENDER_OK,
    REPLY_SHUTTING_DOWN,
    REPLY_STORED,
    REPLY_TOO_MANY_RECIPIENTS,
    REPLY_UNKNOWN_RECIPIENT,
)

log = logging.getLogger(__name__)


class IntakeHandler:
    """aiosmtpd handler: sender and recipient checks at MAIL and RCPT; 250 after the group commit.

    MAIL: the reverse-path must be ``<>`` or an RFC 5321 mailbox (``501 5.1.7``). RCPT: a
    mailbox (``501 5.1.3``), one of the support addresses (``550 5.1.1``), at most
    ``SMTP_MAX_RECIPIENTS`` different ones per message (``452 4.5.3``: the client sends the rest
    in another transaction); a recipient given twice is answered ``250`` and stored once.
    """

    def __init__(self, *, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.policy = RecipientPolicy.from_settings(settings)
        self.max_recipients = settings.smtp_max_recipients
        self.closing = False
        self.in_flight = 0
        self.accepted = 0
        self.metrics = MetricsSender()
        self.writer = GroupCommitWriter(engine=engine)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # We offer no AUTH (login_always_fail): do not advertise it after STARTTLS.
        return [r for r in responses if not r[4:].upper().startswith("AUTH")]

    async def handle_MAIL(self, server, session: Session, envelope: Envelope, address, options):
        # A control character (NUL above all) cannot be stored: refuse it now for good, rather
        # than 451 after DATA on every retry. The same for recipients.
        if has_control_characters(address):
            self.metrics.reply(REPLY_BAD_SENDER)
            return REPLY_BAD_SENDER
        if address != "<>" and not is_mailbox(address):
            self.metrics.reply(REPLY_BAD_SENDER_SYNTAX)
            return REPLY_BAD_SENDER_SYNTAX
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return REPLY_SENDER_OK

    async def handle_RCPT(self, server, session: Session, envelope: Envelope, address, options):
        if has_control_characters(address):
            self.metrics.reply(REPLY_BAD_RECIPIENT)
            return REPLY_BAD_RECIPIENT
        if not is_mailbox(address):
            self.metrics.reply(REPLY_BAD_RECIPIENT_SYNTAX)
            return REPLY_BAD_RECIPIENT_SYNTAX
        if not self.policy.accepts(address):
            log.info("recipient refused", extra={"rcpt": address, "peer": str(session.peer)})
            self.metrics.reply(REPLY_UNKNOWN_RECIPIENT)
            return REPLY_UNKNOWN_RECIPIENT
        key = recipient_key(address)
        if any(recipient_key(known) == key for known in envelope.rcpt_tos):
            return REPLY_RCPT_OK  # the same recipient again: stored once
        if len(envelope.rcpt_tos) >= self.max_recipients:
            self.metrics.reply(REPLY_TOO_MANY_RECIPIENTS)
            return REPLY_TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return REPLY_RCPT_OK

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:
        reply = await self._data(envelope)
        self.metrics.reply(reply)
        return reply

    async def _data(self, envelope: Envelope) -> str:
        if self.closing:
            return REPLY_SHUTTING_DOWN
        raw = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        if mail_from == "<>":
            mail_from = ""  # the null reverse-path of bounces
        self.in_flight += 1
        try:
            inbound_id = await self.writer.store(raw, mail_from, list(envelope.rcpt_tos))
        except SQLAlchemyError as exc:
            log.warning(
                "database unavailable; answered 451",
                extra={"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"},
            )
            return REPLY_DATABASE_DOWN
        except Exception:  # noqa: BLE001 - the sender must retry, never drop the mail
            log.exception("storing an inbound message failed; answered 451")
            return REPLY_INTERNAL_ERROR
        finally:
            self.in_flight -= 1
        self.accepted += 1
        return REPLY_STORED.format(inbound_id=inbound_id)

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error; answered 451", exc_info=error)
        self.metrics.reply(REPLY_INTERNAL_ERROR)
        return REPLY_INTERNAL_ERROR
