"""Writes the winmail.dat of tests/mail/outlook_inline_images_winmail.eml (run once; kept for review).

A TNEF stream as Outlook writes it, reduced to what tnefparse reads: the signature and key, a
message-level body (attBody), and per file attAttachRendData, attAttachTitle and attAttachData
(MS-OXTNEF 2.1.3). Checksums are the 16-bit sum of the data bytes.
"""

from __future__ import annotations

import base64
import struct

LVL_MESSAGE, LVL_ATTACHMENT = 1, 2
ATT_BODY = 0x0002800C  # type text (0x0002) << 16 | attBody
ATT_RENDDATA = 0x00069002
ATT_TITLE = 0x00018010
ATT_DATA = 0x0006800F  # type byte (0x0006) << 16 | attAttachData
ATT_MAPIPROPS = 0x00069003
PR_RTF_COMPRESSED = (0x0102, 0x1009)  # PT_BINARY, PidTagRtfCompressed


def _object(level: int, name: int, data: bytes) -> bytes:
    return struct.pack("<BII", level, name, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def _mapi_binary(prop: tuple[int, int], data: bytes) -> bytes:
    """A MAPI property block with one binary property (MS-OXTNEF 2.1.3.4)."""
    padding = b"\x00" * (-len(data) % 4)
    return struct.pack("<IHHII", 1, *prop, 1, len(data)) + data + padding


def tnef(body: str, files: list[tuple[str, bytes]], *, rtf: bytes | None = None) -> bytes:
    """A TNEF stream with ``body`` (attBody) or, given ``rtf``, only a compressed RTF body."""
    out = struct.pack("<IH", 0x223E9F78, 0x0101)
    if rtf is not None:
        import compressed_rtf

        out += _object(LVL_MESSAGE, ATT_MAPIPROPS, _mapi_binary(PR_RTF_COMPRESSED, compressed_rtf.compress(rtf)))
    else:
        out += _object(LVL_MESSAGE, ATT_BODY, body.encode("cp1252") + b"\x00")
    for name, data in files:
        out += _object(LVL_ATTACHMENT, ATT_RENDDATA, b"\x00" * 14)
        out += _object(LVL_ATTACHMENT, ATT_TITLE, name.encode("cp1252") + b"\x00")
        out += _object(LVL_ATTACHMENT, ATT_DATA, data)
    return out


FILES = [("Fehlerprotokoll.txt", b"2026-11-27 09:14 backup job failed: disk quota exceeded\r\n"),
         ("config.xml", b"<?xml version=\"1.0\"?><config><retention>30</retention></config>\n")]
BODY = "Hallo,\r\nim Anhang das Protokoll der fehlgeschlagenen Sicherung.\r\nGruss, Bob\r\n"

RTF = (rb"{\rtf1\ansi\ansicpg1252\fromtext \deff0{\fonttbl{\f0\fswiss Arial;}}"
       rb"{\*\generator Microsoft Exchange Server;}\pard\plain\f0 Hallo,\par "
       rb"der Scanner im Empfang meldet \'84Papierstau\'93, obwohl keiner da ist.\par Gru\'df, Bob\par}")

if __name__ == "__main__":
    rich = "--rtf" in __import__("sys").argv
    print(base64.encodebytes(tnef(BODY, FILES[:1], rtf=RTF) if rich else tnef(BODY, FILES)).decode("ascii"), end="")
