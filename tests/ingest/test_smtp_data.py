"""The DATA reader of the SMTP listener: however the bytes arrive, it stores what was sent."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.smtp.data import read_message

LINE = st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
DOTTY_LINE = st.one_of(LINE, LINE.map(lambda b: b"." + b), st.just(b"."), st.just(b".."))


def dot_stuff(message: bytes) -> bytes:
    """What an SMTP client sends for ``message`` (CRLF lines): stuffed, then CRLF.CRLF."""
    lines = message.split(b"\r\n")[:-1] if message else []
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in lines) + b".\r\n"


def read(wire: bytes, *, chunks: list[int], stream_limit: int, size_limit: int | None):
    async def run():
        reader = asyncio.StreamReader(limit=stream_limit)
        task = asyncio.ensure_future(read_message(reader, size_limit))
        position = 0
        for size in chunks:
            reader.feed_data(wire[position:position + size])
            position += size
            await asyncio.sleep(0)
        reader.feed_data(wire[position:] + b"QUIT\r\n")
        result = await task
        leftover = await reader.readuntil(b"\r\n")
        return result, leftover

    return asyncio.run(run())


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(DOTTY_LINE, max_size=12),
    chunks=st.lists(st.integers(min_value=1, max_value=40), max_size=10),
    stream_limit=st.integers(min_value=4, max_value=64),
)
def test_any_message_in_any_chunks_reads_back_exactly(lines, chunks, stream_limit):
    message = b"".join(line + b"\r\n" for line in lines)
    result, leftover = read(dot_stuff(message), chunks=chunks, stream_limit=stream_limit,
                            size_limit=None)
    assert result == message
    assert leftover == b"QUIT\r\n", "the next command is left for the session"


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(DOTTY_LINE, min_size=1, max_size=12),
       stream_limit=st.integers(min_value=4, max_value=64))
def test_a_message_over_the_size_limit_is_read_to_its_end_and_refused(lines, stream_limit):
    message = b"".join(line + b"\r\n" for line in lines)
    limit = max(0, len(message) - 1)
    result, leftover = read(dot_stuff(message), chunks=[], stream_limit=stream_limit,
                            size_limit=limit or None)
    if limit:
        assert result is None
    assert leftover == b"QUIT\r\n"
