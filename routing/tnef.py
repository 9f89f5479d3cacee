"""Outlook's winmail.dat (TNEF) opened with tnefparse: its files and its body text.

The body is the plain body when there is one, else the HTML body (converted by the caller), else
the compressed RTF body (Outlook's rich text) unpacked with compressed-rtf and read with striprtf.

A TNEF file's attachments are listed as attachments of the message in its place (the
winmail.dat itself is not listed when it opens); each is addressed by its position inside the
winmail.dat (Attachment.tnef), so a download reads the winmail.dat part from the raw message
again and takes that file out of it. A winmail.dat that does not open stays an ordinary file.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass

log = logging.getLogger("ticketpost.routing.tnef")

_LONG_FILENAME = 0x3707  # MAPI_ATTACH_LONG_FILENAME
_MIME_TAG = 0x370E  # MAPI_ATTACH_MIME_TAG
_CONTENT_ID = 0x3712  # MAPI_ATTACH_CONTENT_ID


@dataclass(frozen=True)
class TnefFile:
    """One file inside a winmail.dat."""

    filename: str
    content_type: str
    content_id: str
    data: bytes


@dataclass(frozen=True)
class TnefContent:
    """What a winmail.dat holds: its files, and its body as text or HTML (either may be empty)."""

    files: tuple[TnefFile, ...]
    text: str
    html: str


def open_tnef(data: bytes) -> TnefContent | None:
    """The files and body of the TNEF ``data``; None when it is not TNEF or is broken."""
    try:
        from tnefparse import TNEF

        tnef = TNEF(data, do_checksum=False)
    except Exception:  # noqa: BLE001 - a broken winmail.dat stays a plain file
        log.debug("winmail.dat does not open", exc_info=True)
        return None
    files = []
    for position, item in enumerate(tnef.attachments):
        props = {p.name: p.data for p in getattr(item, "mapi_attrs", ())}
        name = _text(props.get(_LONG_FILENAME)) or _text(getattr(item, "name", "")) or f"attachment-{position + 1}"
        ctype = _text(props.get(_MIME_TAG)).lower() or mimetypes.guess_type(name)[0] or "application/octet-stream"
        data_ = item.data if isinstance(item.data, bytes) else b""
        files.append(TnefFile(filename=_safe(name), content_type=_safe(ctype),
                              content_id=_safe(_text(props.get(_CONTENT_ID)).strip("<>")), data=data_))
    text = _text(tnef.body) or _rtf_text(tnef)
    return TnefContent(files=tuple(files), text=text.replace("\r\n", "\n"), html=_text(tnef.htmlbody))


def _rtf_text(tnef) -> str:
    """The text of an RTF-only body (Outlook's rich text; HTML wrapped in RTF too): compressed-rtf
    to unpack it, striprtf to read it. '' when there is none or it does not read."""
    try:
        rtf = tnef.rtfbody  # tnefparse unpacks it with compressed-rtf
        if not rtf or not rtf.lstrip().startswith(b"{\\rtf"):
            return ""
        from striprtf.striprtf import rtf_to_text

        return rtf_to_text(rtf.decode("latin-1"), errors="replace").strip()
    except Exception:  # noqa: BLE001 - an unreadable body leaves the files
        log.debug("winmail.dat RTF body does not read", exc_info=True)
        return ""


def file_data(data: bytes, position: int) -> bytes | None:
    """The bytes of file number ``position`` inside the TNEF ``data`` (None when it is not there)."""
    content = open_tnef(data)
    if content is None or not 0 <= position < len(content.files):
        return None
    return content.files[position].data


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("cp1252", errors="replace")
    return str(value).replace("\x00", "").strip()


def _safe(value: str) -> str:
    """At most 255 characters, storable (no lone surrogates)."""
    return value.encode("utf-8", errors="replace").decode("utf-8")[:255]
