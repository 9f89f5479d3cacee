"""Every reply the SMTP listener gives of its own, named (enhanced status codes, RFC 3463)."""

from __future__ import annotations

__all__ = [
    "REPLY_SENDER_OK",
    "REPLY_RCPT_OK",
    "REPLY_STORED",
    "REPLY_BAD_SENDER",
    "REPLY_BAD_RECIPIENT",
    "REPLY_BAD_SENDER_SYNTAX",
    "REPLY_BAD_RECIPIENT_SYNTAX",
    "REPLY_TOO_MANY_RECIPIENTS",
    "REPLY_UNKNOWN_RECIPIENT",
    "REPLY_TOO_BIG",
    "REPLY_TOO_MANY_CONNECTIONS",
    "REPLY_TOO_MANY_FROM_YOU",
    "REPLY_DATABASE_DOWN",
    "REPLY_INTERNAL_ERROR",
    "REPLY_SHUTTING_DOWN",
    "REPLY_TIMEOUT",
    "REPLY_SESSION_TOO_LONG",
    "BUILTIN_REPLIES",
]

REPLY_SENDER_OK = "250 2.1.0 Sender OK"
REPLY_RCPT_OK = "250 2.1.5 Recipient OK"
REPLY_STORED = "250 2.0.0 OK: stored as inbound message {inbound_id}"
REPLY_BAD_SENDER = "553 5.1.7 Sender address contains control characters"
REPLY_BAD_RECIPIENT = "553 5.1.3 Recipient address contains control characters"
REPLY_BAD_SENDER_SYNTAX = "501 5.1.7 Bad sender address syntax"
REPLY_BAD_RECIPIENT_SYNTAX = "501 5.1.3 Bad recipient address syntax"
REPLY_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
REPLY_UNKNOWN_RECIPIENT = "550 5.1.1 Recipient address rejected: not a support address here"
REPLY_TOO_BIG = "552 5.3.4 Message size exceeds the maximum allowed here"
REPLY_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
REPLY_TOO_MANY_FROM_YOU = "421 4.7.0 Too many connections from your address, try again later"
REPLY_DATABASE_DOWN = "451 4.3.0 Temporary local problem (storage unavailable), try again later"
REPLY_INTERNAL_ERROR = "451 4.3.0 Temporary local problem, try again later"
REPLY_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
REPLY_TIMEOUT = "421 4.4.2 Timeout, closing connection"
REPLY_SESSION_TOO_LONG = "421 4.4.2 Session time limit reached, closing connection"

#: aiosmtpd's own wording for replies we must give with enhanced status codes.
BUILTIN_REPLIES = {
    "552 Error: message size exceeds fixed maximum message size": REPLY_TOO_BIG,
    "552 Error: Too much mail data": REPLY_TOO_BIG,
}
