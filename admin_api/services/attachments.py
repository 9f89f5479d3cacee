"""Attachments of ticket messages: listed from the stored entries, read back from the raw message.

Decisions:
- The stored raw message is the only copy of a file: a download reads the part's range of
  ``inbound_messages.raw`` in 1 MiB chunks (``substr`` on the database side, in one read-only
  snapshot: never the write lock on SQLite) and undoes the transfer encoding as it streams
  (routing.attachments). No second copy is kept.
- ``index`` is the file's position in the message's ``attachments`` list. Files inside a
  winmail.dat are listed in its place, numbered like any other file (the winmail.dat itself is not
  listed when it opens); their entry's ``location.tnef`` says which file of it they are.
- Every download is ``Content-Disposition: attachment`` (RFC 6266: an ASCII ``filename`` and,
  for other names, ``filename*``; path and control characters removed), with the part's content
  type when it is a plain ``type/subtype`` (else application/octet-stream), ``nosniff`` and a
  sandboxing CSP, so an HTML or SVG file cannot run in the API's origin.
- The portal view lists the attachments of the tickets it shows, and only those.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import LargeBinary, bindparam, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from admin_api.services.errors import NotFound
from models import InboundMessage, TicketMessage
from models.db import read_snapshot
from routing.attachments import (
    content_disposition,
    locate,
    media_type,
    read_attachment,
    safe_filename,
)

PUBLIC_FIELDS = ("index", "filename", "content_type", "size", "sha256", "inline", "content_id")

#: A range of the raw message (substr counts from 1); read in models.db.read_snapshot, so on SQLite
#: a long download is a WAL read that never takes the write lock and intake goes on.
_SLICE = (
    select(func.substr(InboundMessage.raw, bindparam("offset") + 1, bindparam("length"), type_=LargeBinary))
    .where(InboundMessage.id == bindparam("inbound_id"))
)


@dataclass(frozen=True)
class Download:
    """What an attachment download answers: headers and the bytes as an iterator of chunks."""

    filename: str
    content_type: str
    size: int
    chunks: Iterator[bytes]

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Content-Disposition": content_disposition(self.filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, no-store",
        }


def public(entry: dict, index: int) -> dict:
    """The API view of a stored attachment entry (older entries had only name, type, size)."""
    return {
        "index": entry.get("index", index),
        "filename": entry.get("filename", entry.get("name", "attachment")),
        "content_type": entry.get("content_type", entry.get("type", "application/octet-stream")),
        "size": entry.get("size", 0),
        "sha256": entry.get("sha256"),
        "inline": bool(entry.get("inline", False)),
        "content_id": entry.get("content_id") or None,
    }


def public_list(entries: Iterable[dict] | None) -> list[dict]:
    return [public(entry, i) for i, entry in enumerate(entries or [])]


def open_download(session: Session, *, ticket_id: int, message_id: int, index: int) -> Download:
    """The attachment ``index`` of ticket message ``message_id`` on ticket ``ticket_id``; raises NotFound."""
    row = session.execute(
        select(TicketMessage.inbound_id, TicketMessage.attachments)
        .where(TicketMessage.id == message_id, TicketMessage.ticket_id == ticket_id)
    ).first()
    if row is None:
        raise NotFound("ticket message", message_id, message=f"ticket {ticket_id} has no message {message_id}")
    inbound_id, entries = row
    entries = entries or []
    if not 0 <= index < len(entries):
        raise NotFound("attachment", index, field="index",
                       message=f"message {message_id} has {len(entries)} attachment(s); no index {index}")
    if inbound_id is None:
        raise NotFound("attachment", index, field="index", message="the raw message of this attachment is gone")
    entry = entries[index]
    engine = session.get_bind()
    if "location" not in entry:  # routed before locations were kept: find it in the raw message again
        raw = session.scalar(select(InboundMessage.raw).where(InboundMessage.id == inbound_id))
        entry = locate(raw or b"", index) or entry
        if "location" not in entry:
            raise NotFound("attachment", index, field="index", message="the attachment is not in the raw message")
    session.rollback()  # a read: end the request's transaction before the (long) stream
    listed = public(entry, index)
    filename = safe_filename(listed["filename"], listed["content_type"])
    return Download(filename=filename, content_type=media_type(listed["content_type"]), size=listed["size"],
                    chunks=_chunks(engine, inbound_id, entry))


def _chunks(engine: Engine, inbound_id: int, entry: dict) -> Iterator[bytes]:
    """The file's bytes, read in ranges of the raw message in one read-only snapshot of its own."""
    with read_snapshot(engine) as conn:
        def read(offset: int, length: int) -> bytes:
            value = conn.execute(_SLICE, {"offset": offset, "length": length, "inbound_id": inbound_id}).scalar()
            return bytes(value or b"")

        # AttachmentUnreadable mid-stream propagates: the server then breaks the chunked response
        # off, so a client never takes a short file for a whole one
        yield from read_attachment(entry, read)


def portal_attachments(session: Session, ticket_ids: list[int]) -> dict[int, list[dict]]:
    """The attachments of these tickets' messages, by ticket id: each with its ``message_id``."""
    found: dict[int, list[dict]] = {ticket_id: [] for ticket_id in ticket_ids}
    if not ticket_ids:
        return found
    rows = session.execute(
        select(TicketMessage.ticket_id, TicketMessage.id, TicketMessage.attachments)
        .where(TicketMessage.ticket_id.in_(ticket_ids))
        .order_by(TicketMessage.id)
    )
    for ticket_id, message_id, entries in rows:
        for item in public_list(entries):
            found[ticket_id].append({"message_id": message_id, **item})
    return found
