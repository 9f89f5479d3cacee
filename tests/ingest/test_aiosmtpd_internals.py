"""The aiosmtpd internals the SMTP listener relies on are still there and behave as assumed.

``ingest/smtp/data.py`` (the DATA fast path) and ``ingest/smtp/session.py`` (the timers) use
private parts of aiosmtpd 1.4.6 (``ingest.smtp.data.AIOSMTPD_INTERNALS``). These tests check
them on aiosmtpd's own ``SMTP`` class, over a real socket, so an upgrade that changes them fails
here instead of in production.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from aiosmtpd.smtp import SMTP, Envelope

from ingest.smtp.data import AIOSMTPD_INTERNALS, FastData


class Probe(FastData, SMTP):
    """aiosmtpd's own SMTP with only the DATA fast path on top."""

    _data_timeout = 30.0


@pytest.mark.parametrize("name", sorted(AIOSMTPD_INTERNALS["methods"]))
def test_the_methods_used_keep_their_parameters(name):
    method = getattr(SMTP, name, None)
    assert method is not None, f"aiosmtpd's SMTP has no {name} any more"
    assert tuple(inspect.signature(method).parameters) == AIOSMTPD_INTERNALS["methods"][name]


class Recorder:
    """A handler that records what DATA hands it."""

    def __init__(self) -> None:
        self.data_calls: list[tuple] = []

    async def handle_DATA(self, server, session, envelope):
        self.data_calls.append((server, session, envelope))
        return "250 recorded"


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if line[3:4] != b"-":
            return line


async def _live_session():
    """aiosmtpd's SMTP (plus the DATA fast path) on a free port with one connected client; its protocol object."""
    loop = asyncio.get_running_loop()
    handler = Recorder()
    protocols: list[SMTP] = []

    def factory():
        protocol = Probe(handler, hostname="internals.test", data_size_limit=12345, timeout=77,
                        loop=loop)
        protocols.append(protocol)
        return protocol

    server = await loop.create_server(factory, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _reply(reader)
    return server, handler, protocols[0], reader, writer


def test_a_live_session_has_the_attributes_and_behaviour_relied_on():
    async def scenario():
        server, handler, proto, reader, writer = await _live_session()
        loop = asyncio.get_running_loop()
        try:
            for name in AIOSMTPD_INTERNALS["attributes"]:
                assert hasattr(proto, name), f"a session has no {name} any more"
            assert proto.loop is loop and proto.event_handler is handler
            assert proto.data_size_limit == 12345 and proto._timeout_duration == 77
            assert proto.transport is not None
            assert isinstance(proto._reader, asyncio.StreamReader)
            assert isinstance(proto._timeout_handle, asyncio.TimerHandle)

            # check_helo_needed: True (and 503 sent) before HELO, False after
            assert await proto.check_helo_needed() is True
            assert (await _reply(reader)).startswith(b"503")
            writer.write(b"HELO c.example\r\nMAIL FROM:<a@acme.example>\r\nRCPT TO:<b@x.example>\r\n")
            for _ in range(3):
                assert (await _reply(reader)).startswith(b"250")
            assert await proto.check_helo_needed() is False
            assert await proto.check_auth_needed("DATA") is False

            # the envelope is built by MAIL/RCPT
            assert isinstance(proto.envelope, Envelope)
            assert proto.envelope.mail_from == "a@acme.example"
            assert proto.envelope.rcpt_tos == ["b@x.example"]

            # every command re-arms the idle timer through _reset_timeout() just before it runs
            calls = []
            real_reset = proto._reset_timeout
            proto._reset_timeout = lambda duration=None: (calls.append(duration),
                                                          real_reset(duration))[1]
            writer.write(b"NOOP\r\n")
            assert (await _reply(reader)).startswith(b"250")
            assert calls == [None]
            del proto._reset_timeout

            # _reset_timeout(d) arms _timeout_handle d seconds ahead; firing it calls _timeout_cb
            proto._reset_timeout(500)
            assert 499 < proto._timeout_handle.when() - loop.time() <= 500
            assert proto._timeout_handle._callback == proto._timeout_cb

            # DATA through the fast path: read from _reader, handed to the handler hook with
            # (server, session, envelope), the hook's reply sent, a fresh envelope afterwards
            envelope = proto.envelope
            writer.write(b"DATA\r\n")
            assert (await _reply(reader)).startswith(b"354")
            writer.write(b"Subject: hi\r\n\r\n..dotted\r\n.\r\n")
            assert await _reply(reader) == b"250 recorded\r\n"
            assert handler.data_calls == [(proto, proto.session, envelope)]
            assert envelope.original_content == b"Subject: hi\r\n\r\n.dotted\r\n"
            assert proto.envelope is not envelope and proto.envelope.rcpt_tos == []
            old = proto.envelope
            proto._set_post_data_state()
            assert proto.envelope is not old

            # push sends one reply line
            await proto.push("250 pushed")
            assert await _reply(reader) == b"250 pushed\r\n"

            # _timeout_cb closes the connection
            proto._timeout_cb()
            assert await reader.read() == b""
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())
