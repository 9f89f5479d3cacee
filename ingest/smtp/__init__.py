"""The SMTP listener: takes mail for the support addresses; answers 250 only once it is durable.

Built on aiosmtpd, one module per concept:

* ``policy``: which recipients are ours, address syntax, the bind check, the STARTTLS context;
* ``replies``: every reply we give, named;
* ``metrics``: SMTP metric events, sent from a thread of their own;
* ``group_commit``: the writer thread (one INSERT and one COMMIT per batch);
* ``handler``: the aiosmtpd handler (MAIL, RCPT, end of DATA);
* ``data``: the DATA fast path (a re-implementation of aiosmtpd's DATA reading);
* ``session``: one session (admission, time limits, reply wording);
* ``server``: the listener's event loop in a thread, graceful stop.

The names callers use are importable from here. What it guarantees (SPEC §4):

* Recipients: only ``TICKETPOST_SUPPORT_ADDRESSES`` (``help@msp.example`` or ``*@msp.example``,
  case-insensitive, IDNA domains) else ``550 5.1.1``, at RCPT time. With no support addresses
  configured any recipient is accepted, but only while listening on loopback: :func:`check_bind`
  refuses to start on another address (that would be an open relay into the helpdesk).
* Addresses: ``MAIL FROM`` is ``<>`` or an RFC 5321 mailbox, else ``501 5.1.7``; ``RCPT TO`` a
  mailbox, else ``501 5.1.3``; at most ``SMTP_MAX_RECIPIENTS`` different recipients per message
  (``452 4.5.3``), a repeated one stored once.
* ``SIZE`` is advertised; a declared or actual size over ``SMTP_MAX_MESSAGE_BYTES`` gets
  ``552 5.3.4``. More than ``SMTP_MAX_CONNECTIONS`` sessions, or ``SMTP_MAX_CONNECTIONS_PER_IP``
  from one client address, get ``421 4.7.0`` and are closed.
* ``250`` only after the message is committed, with group commit (:class:`GroupCommitWriter`):
  one writer thread takes every message whose DATA ended while it was busy, stores them in one
  round trip (:func:`ingest.store.insert_inbound`) and one COMMIT, then answers each
  session with its own id. The event loop never touches the database. Database down → every
  message of that batch gets ``451 4.3.0`` and none of it is stored (one transaction); any other
  failure of a batch stores its messages one by one, so one bad row costs only its own ``451``.
  Then the hand-over thread (``ingest.handover``) gives the ids to the queue; a broker outage
  still answers ``250`` (the sweeper hands the message over later).
* Any unexpected error → ``451 4.3.0`` with no internals in the reply (never aiosmtpd's
  ``500 Error: (ClassName) ...``, which makes senders drop mail).
* STARTTLS when ``SMTP_TLS_CERT`` and ``SMTP_TLS_KEY`` are set. An idle timeout between commands
  (``NOOP`` and the like do not restart it), a longer one for the DATA transfer and one for the
  whole session; each closes with ``421 4.4.2``.
* Graceful stop: stop listening, refuse new DATA with ``421``, let the stores in flight finish
  and answer, then close the remaining sessions.
"""

from __future__ import annotations

from ingest.smtp.group_commit import BATCH_MAX_BYTES, BATCH_MAX_MESSAGES, GroupCommitWriter
from ingest.smtp.handler import IntakeHandler
from ingest.smtp.metrics import MetricsSender
from ingest.smtp.policy import RecipientPolicy, SmtpConfigError, check_bind, tls_context
from ingest.smtp.replies import *  # noqa: F403 - every named reply
from ingest.smtp.replies import __all__ as _replies
from ingest.smtp.server import SmtpServer
from ingest.smtp.session import IntakeSMTP, Sessions

__all__ = [
    "BATCH_MAX_BYTES",
    "BATCH_MAX_MESSAGES",
    "GroupCommitWriter",
    "IntakeHandler",
    "IntakeSMTP",
    "MetricsSender",
    "RecipientPolicy",
    "Sessions",
    "SmtpConfigError",
    "SmtpServer",
    "check_bind",
    "tls_context",
    *_replies,
]
