"""Message content: HTML within a time bound, MIME caps said out loud, attachments read back exactly."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import Settings
from ingest.store import store_inbound
from models import TicketMessage
from routing import html_text
from routing.attachments import content_disposition, read_attachment, safe_filename
from routing.html_text import html_to_text
from routing.mailparse import MAX_DEPTH, MAX_PARTS, extract_body, parse_message
from routing.pipeline import route_inbound
from routing.reply_text import reply_text
from tests.routing.world import build_world

PATHOLOGICAL = '<a b="' * 23000  # issue 15: 138 KB that took 46 s in the old converter


def html_mail(html: str, message_id: str = "html@acme.com") -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "bob@acme.com", "support@msp.example", "HTML"
    mail["Message-ID"] = f"<{message_id}>"
    mail.set_content(html, subtype="html")
    return mail.as_bytes()


def route(engine, raw: bytes):
    with Session(engine) as session, session.begin():
        build_world(session)
    inbound_id = store_inbound(raw=raw, source="smtp", envelope_from="bob@acme.com", engine=engine)
    result = route_inbound(inbound_id, engine=engine, settings=Settings())
    with Session(engine) as session:
        message = session.scalars(select(TicketMessage).where(TicketMessage.inbound_id == inbound_id)).first()
        return result, message


def test_the_pathological_html_of_issue_15_is_routed_with_plain_tag_stripping_noted(engine):
    result, message = route(engine, html_mail(PATHOLOGICAL))
    assert result.outcome == "ticket_created"
    notes = [e["decision"] for e in result.explanation if e["step"] == "content"]
    assert any("23,000 unclosed tags" in n and "plain tag stripping" in n for n in notes), notes
    assert "<a" not in message.body_text


def test_html_the_converter_overruns_is_stopped_in_its_process_and_stripped(monkeypatch):
    slow = "<p " + " ".join(f"a{i}=x" for i in range(60000)) + ">the words</p>"  # lxml is quadratic here
    assert html_text.precheck(slow) == ""  # the precheck lets it through: the time bound must act
    monkeypatch.setattr(html_text, "TIME_LIMIT", 0.3)
    result = html_to_text(slow)
    assert "was stopped" in result.note and "plain tag stripping" in result.note
    assert result.text == "the words"
    monkeypatch.setattr(html_text, "TIME_LIMIT", 5.0)
    assert html_to_text("<p>" + "x " * 20000 + "</p>").note == ""  # a new helper took over


def test_html_keeps_lists_tables_and_links_readable():
    text = html_to_text('<p>See <a href="https://kb.example/1">the guide</a></p><ul><li>one</li><li>two</li></ul>'
                        "<table><tr><td>srv1</td><td>down</td></tr></table>").text
    assert "[the guide](https://kb.example/1)" in text
    assert "* one" in text and "* two" in text
    assert "srv1  down" in text


def test_html_the_converter_loses_is_stripped_instead():
    result = html_to_text("<div>" * 400 + "deep words" + "</div>" * 400)
    assert result.text == "deep words" and "returned no text" in result.note


def test_strip_tags_is_linear_and_keeps_words():
    assert html_text.strip_tags("<p>a &amp; b</p><script>x()</script><br>c<x y='") == "a & b\n\nc"


def test_ten_thousand_parts_keep_the_cap_and_say_so():
    parts = "".join(f"--b\r\nContent-Type: application/octet-stream\r\n\r\n{i}\r\n" for i in range(10_000))
    raw = f"From: bob@acme.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n{parts}--b--\r\n".encode()
    body = extract_body(raw)
    assert len(body.attachments) <= MAX_PARTS
    assert body.notes == (f"more than {MAX_PARTS} MIME parts: only the first {MAX_PARTS} were read",)
    assert "--b" not in body.text


def test_nesting_past_the_cap_is_noted_and_its_boundaries_never_become_text():
    depth = MAX_DEPTH + 10
    raw = "From: bob@acme.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for level in range(1, depth):
        raw += f"--b{level - 1}\r\nContent-Type: multipart/mixed; boundary=b{level}\r\n\r\n"
    raw += f"--b{depth - 1}\r\nContent-Type: text/plain\r\n\r\ndeep words\r\n"
    for level in reversed(range(depth)):
        raw += f"--b{level}--\r\n"
    body = extract_body(("Content-Type: text/plain\r\n\r\ntop words\r\n" and raw).encode())
    assert f"MIME nesting deeper than {MAX_DEPTH} levels: the parts below were not read" in body.notes
    assert "--b" not in body.text and "Content-Type" not in body.text


def test_caps_are_in_the_explanation(engine):
    parts = "".join(f"--b\r\nContent-Type: application/octet-stream\r\n\r\n{i}\r\n" for i in range(1500))
    raw = ("From: bob@acme.com\r\nTo: support@msp.example\r\nSubject: many\r\nMessage-ID: <many@acme.com>\r\n"
           f"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n{parts}--b--\r\n")
    result, message = route(engine, raw.encode())
    assert result.outcome == "ticket_created"
    assert any(f"more than {MAX_PARTS} MIME parts" in e["decision"] for e in result.explanation)
    assert message.body_text.strip() == "hello"


def test_a_broken_winmail_dat_stays_a_file_and_says_so():
    raw = (b"From: bob@acme.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/ms-tnef; name=winmail.dat\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.b64encode(b"not tnef at all") + b"\r\n--b--\r\n")
    body = extract_body(raw)
    assert [a.filename for a in body.attachments] == ["winmail.dat"]
    assert body.notes == ("a winmail.dat (TNEF) attachment could not be opened: kept as a file",)


def _read_back(raw: bytes, entry: dict, chunk: int) -> bytes:
    return b"".join(read_attachment(entry, lambda offset, length: raw[offset:offset + length], chunk=chunk))


def test_attachments_read_back_from_the_raw_bytes_in_any_chunk_size():
    data = os.urandom(5000)
    text = ("Grüße, €, and a long line " * 40 + "\n") * 20
    mail = EmailMessage()
    mail["From"] = "bob@acme.com"
    mail.set_content("body")
    mail.add_attachment(data, maintype="application", subtype="octet-stream", filename="a.bin")
    mail.add_attachment(text.encode("utf-8"), maintype="text", subtype="plain", filename="b.txt", cte="quoted-printable")
    mail.add_attachment(b"plain 7bit\r\n", maintype="text", subtype="x-log", filename="c.log", cte="7bit")
    raw = mail.as_bytes().replace(b"\n", b"\r\n")
    files = parse_message(raw).body.attachments
    expected = [data, text.encode("utf-8"), b"plain 7bit\r\n"]
    for entry, want in zip((f.as_dict() for f in files), expected, strict=True):
        assert entry["sha256"] == hashlib.sha256(want).hexdigest()
        for chunk in (1, 3, 7, 76, 4096, 1 << 20):
            assert _read_back(raw, entry, chunk) == want, (entry["filename"], chunk)


def test_base64_with_junk_reads_back_as_routing_decoded_it():
    payload = base64.encodebytes(os.urandom(300)).replace(b"\n", b"\r\n \t")
    raw = (b"From: bob@acme.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + payload + b"--b--\r\n")
    entry = parse_message(raw).body.attachments[0].as_dict()
    assert _read_back(raw, entry, 5) == binascii.a2b_base64(payload)


def test_download_names_are_safe():
    assert safe_filename("..\\..\\Windows\\evil.bat") == "evil.bat"
    assert safe_filename("/etc/passwd") == "passwd"
    assert safe_filename("a\r\nSet-Cookie: x.txt") == "aSet-Cookie: x.txt"
    assert safe_filename("\u202egnp.exe") == "gnp.exe"
    assert safe_filename("", "message/rfc822") == "attachment.eml"
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'
    assert content_disposition('a"b;c.pdf') == 'attachment; filename="a_b_c.pdf"; filename*=UTF-8\'\'a%22b%3Bc.pdf'
    assert content_disposition("Prüfung.pdf") == (
        "attachment; filename=\"Prufung.pdf\"; filename*=UTF-8''Pr%C3%BCfung.pdf")


def test_reply_text_cuts_quotes_and_signatures_and_never_leaves_nothing():
    assert reply_text("Thanks!\n\nOn Tue, 4 Mar 2025 at 09:12, MSP <s@msp.example> wrote:\n> old\n") == "Thanks!"
    assert reply_text("Hallo\n\nVon: MSP\nGesendet: Montag\nAn: Bob\nBetreff: x\n\nalt") == "Hallo"
    assert reply_text("fine\n-- \nBob Builder\n+49 30 1\n") == "fine"
    quoted_only = "> just a quote\n> nothing new\n"
    assert reply_text(quoted_only) == quoted_only
    assert reply_text("no quote here\nat all\n") == "no quote here\nat all\n"
