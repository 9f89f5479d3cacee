"""The DATA fast path: reads a message in large pieces instead of aiosmtpd's line-by-line loop.

aiosmtpd's own ``smtp_DATA`` reads one line per ``await`` and was the listener's hot spot; this
re-implementation reads up to each ``.CRLF`` (or 1 MiB at a time). It keeps aiosmtpd's behaviour
(checks, replies, envelope, handler hook, post-DATA state) but, having to, reaches into its
private internals: the names in :data:`AIOSMTPD_INTERNALS`. aiosmtpd is therefore pinned in
``pyproject.toml`` to the release this was written for (1.4.6), and
``tests/ingest/test_aiosmtpd_internals.py`` fails when any of them changes shape.
"""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import MISSING, syntax

from ingest.smtp.replies import REPLY_TOO_BIG

#: What of aiosmtpd's ``SMTP`` (1.4.6) the listener uses beyond its documented API (handler hooks
#: and ``smtp_*`` methods): instance attributes (set by ``SMTP.__init__`` / ``connection_made``)
#: and methods with their parameters. This module uses the DATA ones; ``ingest.smtp.session``
#: the timer ones (``_reset_timeout``, ``_timeout_cb``, ``_timeout_handle``,
#: ``_timeout_duration``, ``loop``) and ``event_handler``.
AIOSMTPD_INTERNALS = {
    "attributes": ("_reader", "envelope", "transport", "data_size_limit", "loop",
                   "event_handler", "_timeout_handle", "_timeout_duration"),
    "methods": {
        "check_helo_needed": ("self", "helo"),
        "check_auth_needed": ("self", "caller_method"),
        "_reset_timeout": ("self", "duration"),
        "_timeout_cb": ("self",),
        "_call_handler_hook": ("self", "command", "args"),
        "_set_post_data_state": ("self",),
        "push": ("self", "status"),
    },
}


class FastData:
    """Mixin for aiosmtpd's ``SMTP``: ``smtp_DATA`` reading the message in large pieces.

    The subclass sets ``_data_timeout`` (seconds for the whole transfer).
    """

    _data_timeout: float

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA, read in large pieces.

        The message ends at CRLF "." CRLF; lines starting with "." lose that dot (RFC 5321
        4.5.2). A message over SMTP_MAX_MESSAGE_BYTES is read to its end, discarded, and
        answered ``552 5.3.4``. The DATA timeout covers the whole transfer.
        """
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        self._reset_timeout(self._data_timeout)
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await self._read_message()
        except asyncio.IncompleteReadError:
            return  # the client went away mid-message: nothing was acknowledged
        if content is None:
            await self.push(REPLY_TOO_BIG)
            self._set_post_data_state()
            self._reset_timeout()
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        if self.transport is not None:
            self._reset_timeout()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_message(self) -> bytes | None:
        """The un-dot-stuffed message, or None when it exceeds the size limit (then discarded).

        Reads up to each ".CRLF" (or 1 MiB, the stream limit, at a time); the message ends where
        that dot starts a line, i.e. the two bytes before it are CRLF (the start of DATA counts as
        a line start).
        """
        return await read_message(self._reader, self.data_size_limit)


async def read_message(reader: asyncio.StreamReader, limit: int | None) -> bytes | None:
    """The un-dot-stuffed message from ``reader``, or None when over ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    tail = b"\r\n"  # the last two bytes read so far
    while True:
        try:
            piece = await reader.readuntil(b".\r\n")
        except asyncio.LimitOverrunError as exc:
            piece = await reader.readexactly(exc.consumed)  # no terminator in it
        else:
            before_dot = (tail + piece[:-3])[-2:]
            if before_dot == b"\r\n":
                piece = piece[:-3]
                size += len(piece)
                if size <= (limit or size):
                    parts.append(piece)
                break
        size += len(piece)
        if limit and size > limit:
            parts = []  # keep reading to the end, keep nothing
        else:
            parts.append(piece)
        tail = (tail + piece)[-2:]
    if limit and size > limit:
        return None
    data = b"".join(parts)
    data = data.replace(b"\r\n.", b"\r\n")
    return data[1:] if data.startswith(b".") else data
