"""One SMTP session: aiosmtpd's protocol with admission, our reply wording and the timeouts."""

from __future__ import annotations

import logging

from aiosmtpd.smtp import SMTP

from ingest.smtp.data import FastData
from ingest.smtp.handler import IntakeHandler
from ingest.smtp.replies import (
    BUILTIN_REPLIES,
    REPLY_SHUTTING_DOWN,
    REPLY_TIMEOUT,
    REPLY_TOO_MANY_CONNECTIONS,
)

log = logging.getLogger(__name__)


class Sessions:
    """The live sessions of one listener, and the cap on how many may be open."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.live: set["IntakeSMTP"] = set()

    def admit(self, protocol: "IntakeSMTP") -> bool:
        if len(self.live) >= self.limit:
            return False
        self.live.add(protocol)
        return True

    def release(self, protocol: "IntakeSMTP") -> None:
        self.live.discard(protocol)


class IntakeSMTP(FastData, SMTP):
    """aiosmtpd's SMTP with a connection cap, enhanced status codes and a DATA timeout.

    Lines up to 1 MiB are accepted in DATA: RFC 5322 says 998 characters, but real senders
    (generated HTML, broken MUAs) exceed it, and a ``500`` would make them drop the mail.
    Command lines stay limited by aiosmtpd's command size limits.
    """

    line_length_limit = 1024 * 1024

    def __init__(self, handler: IntakeHandler, *, sessions: Sessions, data_timeout: float, **kw):
        super().__init__(handler, **kw)
        self._sessions = sessions
        self._data_timeout = data_timeout
        self._admitted = False
        self._refused = False

    def connection_made(self, transport) -> None:
        first = not self._admitted and not self._refused
        if first:
            if not self._sessions.admit(self):
                self._refused = True
                log.warning("connection refused: too many sessions")
                self.event_handler.metrics.reply(REPLY_TOO_MANY_CONNECTIONS)
                transport.write(REPLY_TOO_MANY_CONNECTIONS.encode("ascii") + b"\r\n")
                transport.close()
                return
            self._admitted = True
            self.event_handler.metrics.session(+1)
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._refused:
            return
        self._sessions.release(self)
        self.event_handler.metrics.session(-1)
        super().connection_lost(error)

    async def push(self, status) -> None:
        if isinstance(status, str):
            status = BUILTIN_REPLIES.get(status, status)
        await super().push(status)

    def _timeout_cb(self) -> None:
        if self.transport is not None:
            try:
                self.transport.write(REPLY_TIMEOUT.encode("ascii") + b"\r\n")
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        super()._timeout_cb()

    def say_goodbye(self) -> None:
        """Close this session at shutdown, telling the client to come back later."""
        if self.transport is not None:
            try:
                self.transport.write(REPLY_SHUTTING_DOWN.encode("ascii") + b"\r\n")
            finally:
                self.transport.close()
