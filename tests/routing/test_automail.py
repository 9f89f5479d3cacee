"""routing.automail.classify: which signal makes mail a bounce or an automatic reply, and which does not."""

from __future__ import annotations

import pytest

from routing.automail import classify, fold
from routing.mailparse import decode_8bit_header, parse_message


def mail(headers: str, body: str = "Hello.\n") -> bytes:
    return (headers.strip() + "\nMessage-ID: <m1@acme.com>\n\n" + body).encode()


def verdict(raw: bytes, envelope_from: str | None = "fwd@mailbox.example"):
    found = classify(parse_message(raw), envelope_from=envelope_from)
    return found.outcome if found else None


DSN = """--b
Content-Type: text/plain

Delivery to the following recipient failed.

--b
Content-Type: {ctype}

Reporting-MTA: dns; mx.acme.com
Final-Recipient: rfc822; x@example.org
Action: failed
Status: 5.1.1

--b--
"""


@pytest.mark.parametrize("ctype", ["message/delivery-status", "Message/Delivery-Status",
                                   "MESSAGE/DELIVERY-STATUS", "message/global-delivery-status"])
def test_a_delivery_status_part_makes_a_bounce_in_any_spelling_and_container(ctype):
    for container in ("multipart/report", "multipart/mixed"):
        raw = mail(f'From: Bob <bob@acme.com>\nContent-Type: {container}; boundary="b"', DSN.format(ctype=ctype))
        assert verdict(raw) == "ignored_bounce", (ctype, container)


def test_a_status_header_alone_is_no_report():
    raw = mail('From: Bob <bob@acme.com>\nX-Spam-Status: No\nContent-Type: multipart/mixed; boundary="b"',
               "--b\nContent-Type: text/plain\n\nThe delivery-date is Monday.\n--b--\n")
    assert verdict(raw) is None


def test_a_bounce_forwarded_as_an_attachment_is_the_forwarders_mail():
    inner = mail('From: MAILER-DAEMON@mx.acme.com\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"',
                 DSN.format(ctype="message/delivery-status")).decode()
    raw = mail('From: Bob <bob@acme.com>\nSubject: FW: Undeliverable: offer\nContent-Type: multipart/mixed; boundary="o"',
               f"--o\nContent-Type: text/plain\n\nWhat is this?\n--o\nContent-Type: message/rfc822\n\n{inner}\n--o--\n")
    assert verdict(raw) is None


@pytest.mark.parametrize("headers", [
    "From: MAILER-DAEMON <>", "From: <>", "From: Mail Delivery System <>",
    "From: Bob <bob@acme.com>\nReturn-Path: <>", "From: Bob <bob@acme.com>\nReturn-Path: <MAILER-DAEMON@mx.acme.com>",
    "From: post_master@vtext.com", "From: Mailer_Daemon@acme.com",
])
def test_spec_bounce_signals(headers):
    assert verdict(mail(headers)) == "ignored_bounce"


def test_the_null_envelope_is_a_bounce_and_a_forwarders_envelope_is_not():
    raw = mail("From: Bob <bob@acme.com>")
    assert verdict(raw, envelope_from="<>") == "ignored_bounce"
    assert verdict(raw, envelope_from="") == "ignored_bounce"
    assert verdict(raw) is None


def test_a_bounce_signal_wins_over_list_and_auto_reply_headers():
    raw = mail("From: MAILER-DAEMON@lists.acme.com\nPrecedence: list\nAuto-Submitted: auto-replied")
    assert verdict(raw) == "ignored_bounce"


def test_an_empty_return_path_value_or_a_person_is_no_bounce():
    assert verdict(mail("From: Bob <bob@acme.com>\nReturn-Path: <bob@acme.com>")) is None
    assert verdict(mail('From: "Team" <team>, "Board" <@@>')) is None


@pytest.mark.parametrize("headers, body, expected", [
    # a subject prefix alone never decides
    ("From: Bob <bob@acme.com>\nSubject: Undeliverable: printer mail", "Mail to the printer could not be delivered.", None),
    ("From: Bob <bob@acme.com>\nSubject: Out of Office: set mine up", "I am out of the office next week.", None),
    ("From: Bob <bob@acme.com>\nSubject: Read: the manual", "Please read it.", None),
    ("From: Bob <bob@acme.com>\nSubject: Re: Automatic reply: help", "Still broken.", None),
    # prefix and a second signal
    ("From: Bob <noreply@acme.com>\nSubject: Unzustellbar: Angebot", "", "ignored_bounce"),
    ("From: Microsoft Outlook <o@acme.com>\nSubject: Undeliverable: x", "", "ignored_bounce"),
    ("From: Bob <bob@acme.com>\nSubject: Undeliverable: x", "Reporting-MTA: dns; mx\nDiagnostic-Code: smtp; 550", "ignored_bounce"),
    ("From: Bob <bob@acme.com>\nSubject: Automatische Antwort: Drucker\nThread-Topic: Drucker", "", "ignored_auto_reply"),
    ("From: Bob <bob@acme.com>\nSubject: =?utf-8?q?R=C3=A9ponse_automatique_=3A_x?=\nThread-Topic: x", "", "ignored_auto_reply"),
    ("From: Bob <bob@acme.com>\nSubject: AUTO: Bob is out of the office", "This is an automated response.", "ignored_auto_reply"),
])
def test_the_subject_rule_needs_a_second_signal(headers, body, expected):
    assert verdict(mail(headers, body)) == expected


def test_no_message_id_corroborates_a_subject_prefix():
    raw = b"From: Bob <bob@acme.com>\nSubject: Out of office: until Monday\n\nAway.\n"
    assert verdict(raw) == "ignored_auto_reply"


def test_fold_compares_without_case_accents_and_blank_before_colon():
    assert fold("Réponse  automatique :  X") == "reponse automatique: x"


def test_raw_header_bytes_are_utf8_or_windows_1252_never_a_guess():
    assert decode_8bit_header("Jürgen".encode()) == "Jürgen"
    assert decode_8bit_header("Юникод запрещен".encode()[:-1]) == "Юникод запреще\ufffd"
    assert decode_8bit_header("Müller".encode("cp1252")) == "Müller"
