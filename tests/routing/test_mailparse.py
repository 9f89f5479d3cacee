"""The fast parser: headers decoded in any charset, bodies on demand, never an exception."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.html_text import html_to_text
from routing.mailparse import decode_header_value, parse_message, read_headers
from routing.subjects import new_ticket_subject, strip_reply_prefixes, ticket_tags


def test_headers_are_decoded_from_rfc2047_and_raw_8bit():
    raw = ("From: =?iso-8859-1?q?J=FCrgen?= <j@acme.com>\r\nSubject: Grüße aus Köln\r\n\r\nx").encode()
    mail = parse_message(raw)
    assert mail.subject == "Grüße aus Köln"
    assert mail.from_addresses == [("Jürgen", "j@acme.com")]


def test_raw_cp1252_header_bytes_are_decoded():
    mail = parse_message(b"Subject: Gr\xfc\xdfe \x80 5\r\n\r\n")
    assert mail.subject == "Grüße € 5"


def test_folded_headers_are_unfolded():
    mail = parse_message(b"Subject: a very\r\n long subject\r\n\r\n")
    assert mail.subject == "a very long subject"


def test_a_missing_message_id_becomes_a_stable_synthetic_one():
    raw = b"From: a@b.example\r\n\r\nbody"
    assert parse_message(raw).message_id == parse_message(raw).message_id
    assert parse_message(raw).message_id_synthetic
    assert parse_message(raw).message_id != parse_message(raw + b"!").message_id


def test_message_ids_are_read_without_brackets_and_references_in_order():
    mail = parse_message(b"Message-ID: <a@x>\r\nIn-Reply-To: <b@x>\r\nReferences: <c@x>\r\n <b@x>\r\n\r\n")
    assert (mail.message_id, mail.in_reply_to, mail.references) == ("a@x", ["b@x"], ["c@x", "b@x"])


def test_the_body_is_parsed_only_when_asked_for():
    mail = parse_message(b"From: a@b.example\r\nContent-Type: text/plain\r\n\r\nhello\r\n")
    assert mail._full is None
    assert mail.body.text.strip() == "hello"


def test_html_becomes_readable_text():
    text = html_to_text("<div>Hello&nbsp;<b>world</b></div><script>x()</script><p>Second &amp; last</p>").text
    assert text == "Hello world\n\nSecond & last" or text == "Hello world\nSecond & last"


def test_garbage_never_raises():
    for raw in (b"", b"\x00\xff\xfe", b"\r\n\r\n", b"From:\r\n", b"Content-Type: multipart/mixed\r\n\r\n--",
                b"Subject: =?utf-8?b?!!!?=\r\n\r\n", b"From: " + b"<" * 5000 + b"\r\n\r\n"):
        mail = parse_message(raw)
        assert isinstance(mail.body.text, str)


def test_decode_header_value_handles_none_and_unknown_charsets():
    assert decode_header_value(None) == ""
    assert "x" in decode_header_value("=?x-unknown?q?x?=")


def test_reply_prefixes_and_tags():
    assert strip_reply_prefixes("Re: AW: RV: SV: Antw: VS: WG: Fwd: TR: Hello") == "Hello"
    assert strip_reply_prefixes("Re[3]: Re(2): Hello") == "Hello"
    assert strip_reply_prefixes("Return policy") == "Return policy"
    assert ticket_tags("RE: [Ticket#42] and [#7]") == [42, 7]
    assert new_ticket_subject("   ") == "(no subject)"


def _normalised(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n"))


def test_the_fast_mime_walker_reads_the_same_text_and_files_as_the_stdlib():
    """Our bytes-search MIME split agrees with email.policy.default on a realistic corpus."""
    from email import message_from_bytes, policy

    from bench.corpus import generate

    compared = 0
    for raw in generate(150, seed=7):
        reference = message_from_bytes(raw, policy=policy.default)
        plain = reference.get_body(preferencelist=("plain",))
        if plain is None:
            continue
        body = parse_message(raw).body
        assert _normalised(body.text) == _normalised(plain.get_content())
        expected_files = [part.get_filename() for part in reference.iter_attachments()]
        assert [a.filename for a in body.attachments] == expected_files
        assert [a.size for a in body.attachments] == [
            len(part.get_content()) for part in reference.iter_attachments()]
        compared += 1
    assert compared > 100


_HEADER_LINES = st.one_of(
    st.builds(lambda n, v, eol: f"{n}:{v}{eol}".encode("utf-8", "surrogateescape"),
              st.sampled_from(["Subject", "From", "Content-Type", "X-Odd", "from x", ":", "A"]),
              st.text(max_size=40), st.sampled_from(["\r\n", "\n", "\r", ""])),
    st.builds(lambda v: (" " + v + "\r\n").encode("utf-8"), st.text(max_size=20)),  # continuations
    st.binary(max_size=30),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_HEADER_LINES, max_size=8))
def test_the_header_reader_parses_every_block_as_the_stdlib_header_parser_does(lines):
    head = b"".join(lines)
    ours = read_headers(head)
    stdlib = BytesHeaderParser(policy=compat32).parsebytes(head)
    assert list(ours.raw_items()) == list(stdlib.raw_items())
