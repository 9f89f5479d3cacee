"""An attachment's bytes read back from the stored raw message, in chunks, exactly as sent.

The raw message is the single source of truth: routing records where each file's encoded body
lies in it (``location``: start, end, transfer encoding, and for a file inside a winmail.dat its
position there). A download reads that range in chunks through ``read(offset, length)`` (the
caller's database read) and undoes the transfer encoding chunk by chunk, so a 10 MB file never
sits in memory whole (BENCHMARKS.md, "Attachment download"). Only a file inside a winmail.dat is
read whole: the TNEF container has to be parsed to find it.

Messages routed before attachments had a location are located again by re-reading the raw
message (:func:`locate`).
"""

from __future__ import annotations

import binascii
import re
import unicodedata
from collections.abc import Callable, Iterator
from urllib.parse import quote

from routing.mailparse import extract_body
from routing.tnef import file_data

#: Bytes of the raw message read per chunk (a multiple of 4 keeps base64 aligned more often).
CHUNK = 1 << 20

_B64_KEEP = re.compile(rb"[^A-Za-z0-9+/=]")
_MIME_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\u0080-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

Reader = Callable[[int, int], bytes]


class AttachmentUnreadable(LookupError):
    """Raised when an attachment's bytes are no longer where its entry says (e.g. raw purged)."""


def locate(raw: bytes, index: int) -> dict | None:
    """The stored entry (with ``location``) of attachment ``index`` of ``raw``, read afresh."""
    files = extract_body(raw).attachments
    if not 0 <= index < len(files):
        return None
    return files[index].as_dict()


def read_attachment(entry: dict, read: Reader, *, chunk: int = CHUNK) -> Iterator[bytes]:
    """The bytes of the attachment ``entry`` (as stored), chunk by chunk, via ``read(offset, length)``."""
    location = entry.get("location") or {}
    start, end = int(location.get("start", 0)), int(location.get("end", 0))
    encoding = location.get("encoding") or ""
    if end < start:
        raise AttachmentUnreadable("the attachment's location is empty")
    encoded = _ranges(read, start, end, chunk)
    if encoding == "base64":
        decoded = _base64(encoded)
    elif encoding == "quoted-printable":
        decoded = _quoted_printable(encoded)
    else:
        decoded = encoded
    if location.get("tnef") is None:
        yield from decoded
        return
    data = file_data(b"".join(decoded), int(location["tnef"]))
    if data is None:
        raise AttachmentUnreadable("the file is no longer in its winmail.dat")
    yield data


def _ranges(read: Reader, start: int, end: int, chunk: int) -> Iterator[bytes]:
    offset = start
    while offset < end:
        piece = read(offset, min(chunk, end - offset))
        if not piece:
            raise AttachmentUnreadable("the raw message is shorter than the attachment's location")
        offset += len(piece)
        yield piece


def _base64(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Decode base64 across chunk borders; characters outside the alphabet are skipped."""
    rest = b""
    for piece in pieces:
        data = rest + _B64_KEEP.sub(b"", piece)
        usable = len(data) - len(data) % 4
        rest = data[usable:]
        if usable:
            yield _a2b(data[:usable])
    if rest:
        rest = rest.rstrip(b"=")
        rest = rest[: len(rest) - len(rest) % 4] if len(rest) % 4 == 1 else rest
        if rest:
            yield _a2b(rest + b"=" * (-len(rest) % 4))


def _a2b(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return b""


def _quoted_printable(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Decode quoted-printable across chunk borders (each chunk cut after a line break)."""
    rest = b""
    for piece in pieces:
        data = rest + piece
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield binascii.a2b_qp(data[:cut])
    if rest:
        yield binascii.a2b_qp(rest)


def media_type(value: str) -> str:
    """``value`` when it is a plain ``type/subtype``, else ``application/octet-stream``."""
    value = (value or "").strip()
    return value.lower() if _MIME_TYPE.fullmatch(value) else "application/octet-stream"


def safe_filename(name: str, content_type: str = "") -> str:
    """The last path component of ``name`` without control or direction characters (never empty)."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("", name).strip().strip(".")
    if not name:
        name = "attachment"
    if content_type == "message/rfc822" and not name.lower().endswith(".eml"):
        name += ".eml"
    return name[:200]


def content_disposition(name: str) -> str:
    """RFC 6266 ``attachment`` with an ASCII ``filename`` and, for other names, ``filename*``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r'["\\;%]', "_", ascii_name).strip() or "attachment"
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value
