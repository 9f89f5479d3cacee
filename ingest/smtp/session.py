"""One SMTP session: aiosmtpd's protocol with admission, our reply wording and the time limits.

Admission (:class:`Sessions`): at most ``SMTP_MAX_CONNECTIONS`` sessions, and at most
``SMTP_MAX_CONNECTIONS_PER_IP`` from one client address, so one client cannot hold every slot;
either refusal is ``421 4.7.0`` and the connection is closed.

Time: ``SMTP_IDLE_TIMEOUT_S`` between commands, ``SMTP_DATA_TIMEOUT_S`` for a DATA transfer, and
``SMTP_SESSION_TIMEOUT_S`` for the whole session, whatever it does; each closes with
``421 4.4.2``. Commands that make no progress (NOOP, RSET, HELP, VRFY) do not restart the idle
timer, so a client sending ``NOOP`` every few seconds is closed when it has been idle that long.
"""

from __future__ import annotations

import logging
from collections import Counter

from aiosmtpd.smtp import SMTP, syntax

from ingest.smtp.data import FastData
from ingest.smtp.handler import IntakeHandler
from ingest.smtp.policy import unclosed_path
from ingest.smtp.replies import (
    BUILTIN_REPLIES,
    REPLY_BAD_RECIPIENT_SYNTAX,
    REPLY_BAD_SENDER_SYNTAX,
    REPLY_SESSION_TOO_LONG,
    REPLY_SHUTTING_DOWN,
    REPLY_TIMEOUT,
    REPLY_TOO_MANY_CONNECTIONS,
    REPLY_TOO_MANY_FROM_YOU,
)

log = logging.getLogger(__name__)


class Sessions:
    """The live sessions of one listener, and the caps on how many may be open (per client too)."""

    def __init__(self, limit: int, per_client: int | None = None) -> None:
        self.limit = limit
        self.per_client = per_client or limit
        self.live: set["IntakeSMTP"] = set()
        self._by_client: Counter[str] = Counter()

    def admit(self, protocol: "IntakeSMTP", client: str) -> str | None:
        """None when ``protocol`` (from address ``client``) may go on, else the ``421`` to send."""
        if len(self.live) >= self.limit:
            return REPLY_TOO_MANY_CONNECTIONS
        if self._by_client[client] >= self.per_client:
            return REPLY_TOO_MANY_FROM_YOU
        self.live.add(protocol)
        self._by_client[client] += 1
        return None

    def release(self, protocol: "IntakeSMTP", client: str) -> None:
        if protocol in self.live:
            self.live.discard(protocol)
            self._by_client[client] -= 1
            if self._by_client[client] <= 0:
                del self._by_client[client]


class IntakeSMTP(FastData, SMTP):
    """aiosmtpd's SMTP with admission, enhanced status codes and the time limits (module docs).

    Lines up to 1 MiB are accepted in DATA: RFC 5322 says 998 characters, but real senders
    (generated HTML, broken MUAs) exceed it, and a ``500`` would make them drop the mail.
    Command lines stay limited by aiosmtpd's command size limits.
    """

    line_length_limit = 1024 * 1024

    def __init__(self, handler: IntakeHandler, *, sessions: Sessions, data_timeout: float,
                 session_timeout: float, **kw):
        super().__init__(handler, **kw)
        self._sessions = sessions
        self._data_timeout = data_timeout
        self._session_timeout = session_timeout
        self._session_deadline = float("inf")
        self._idle_deadline = self._idle_before = float("inf")
        self._client = ""
        self._admitted = False
        self._refused = False

    def connection_made(self, transport) -> None:
        if not self._admitted and not self._refused:  # not the TLS layer after STARTTLS
            peer = transport.get_extra_info("peername")
            self._client = str(peer[0]) if peer else ""
            refusal = self._sessions.admit(self, self._client)
            if refusal is not None:
                self._refused = True
                log.warning("connection refused", extra={"peer": self._client,
                                                         "reply": refusal})
                self.event_handler.metrics.reply(refusal)
                transport.write(refusal.encode("ascii") + b"\r\n")
                transport.close()
                return
            self._admitted = True
            self._session_deadline = self.loop.time() + self._session_timeout
            self.event_handler.metrics.session(+1)
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._refused:
            return
        self._sessions.release(self, self._client)
        self.event_handler.metrics.session(-1)
        super().connection_lost(error)

    async def push(self, status) -> None:
        if isinstance(status, str):
            status = BUILTIN_REPLIES.get(status, status)
        await super().push(status)

    # --- time limits ------------------------------------------------------------------------

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd calls this before every command (and DATA with the DATA timeout): restart
        the idle timer, never past the end of the session."""
        self._idle_before = self._idle_deadline
        self._idle_deadline = self.loop.time() + (duration or self._timeout_duration)
        self._arm_timer()

    def _no_progress(self) -> None:
        """The command just received made no progress: the idle timer goes on from before it."""
        self._idle_deadline = self._idle_before
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        deadline = min(self._idle_deadline, self._session_deadline)
        self._timeout_handle = self.loop.call_at(deadline, self._timeout_cb)

    def _timeout_cb(self) -> None:
        reply = (REPLY_SESSION_TOO_LONG if self.loop.time() >= self._session_deadline
                 else REPLY_TIMEOUT)
        if self.transport is not None:
            try:
                self.transport.write(reply.encode("ascii") + b"\r\n")
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        super()._timeout_cb()

    @syntax("NOOP [ignored]")
    async def smtp_NOOP(self, arg: str) -> None:
        self._no_progress()
        await super().smtp_NOOP(arg)

    @syntax("RSET")
    async def smtp_RSET(self, arg: str) -> None:
        self._no_progress()
        await super().smtp_RSET(arg)

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str) -> None:
        self._no_progress()
        await super().smtp_HELP(arg)

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str) -> None:
        self._no_progress()
        await super().smtp_VRFY(arg)

    # --- path syntax aiosmtpd lets through --------------------------------------------------

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if unclosed_path(arg, "FROM:"):
            self.event_handler.metrics.reply(REPLY_BAD_SENDER_SYNTAX)
            await self.push(REPLY_BAD_SENDER_SYNTAX)
            return
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if unclosed_path(arg, "TO:"):
            self.event_handler.metrics.reply(REPLY_BAD_RECIPIENT_SYNTAX)
            await self.push(REPLY_BAD_RECIPIENT_SYNTAX)
            return
        await super().smtp_RCPT(arg)

    def say_goodbye(self) -> None:
        """Close this session at shutdown, telling the client to come back later."""
        if self.transport is not None:
            try:
                self.transport.write(REPLY_SHUTTING_DOWN.encode("ascii") + b"\r\n")
            finally:
                self.transport.close()
