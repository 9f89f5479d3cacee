"""The bytes of an answer: headers safe whatever the person's mail held, bodies any client reads."""

from __future__ import annotations

import email
from email import policy
from types import SimpleNamespace

from routing.outbox.compose import compose


def _row(**payload):
    return SimpleNamespace(id=1, kind="acknowledgement", recipient="ann@acme.example", message_id="ack.1@msp.example",
                           payload={"template": "acknowledgement", **payload})


def _values(subject: str) -> dict:
    return {"ticket": {"number": 7, "subject": subject, "status": "open", "first_response_due_at": None,
                       "resolution_due_at": None, "created_at": None},
            "subject": subject, "client": {"name": "Äcme GmbH"},
            "contact": {"first_name": "Zoë", "last_name": "Ünal\r\nBcc: evil@x.example", "name": "Zoë Ünal\r\nBcc: evil@x.example",
                        "email": "ann@acme.example"},
            "recipient": "ann@acme.example", "rule": "", "kind": "acknowledgement", "_template": None}


def test_non_ascii_names_and_subjects_are_encoded_and_nothing_can_inject_a_header():
    row = _row(subject="Drucker\r\nBcc: evil@x.example kaputt", in_reply_to="bad id>\r\nX: y",
               references=["ok@acme.example"])
    raw = compose(row, _values("Drucker\r\nBcc: evil@x.example — kaputt"), reply_address="Support Ö <help@msp.example>")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert raw.isascii() and b"\r\nBcc:" not in head and b"\r\nX: y" not in head
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "[#7] Drucker Bcc: evil@x.example — kaputt"
    assert msg["To"].addresses[0].username == "ann" and "Zoë" in msg["To"].addresses[0].display_name
    assert msg["From"].addresses[0].display_name == "Support Ö"
    assert msg["In-Reply-To"] is None  # an unusable Message-ID is not repeated
    text = msg.get_body(("plain",)).get_content()
    assert "Hello Zoë" in text and "Äcme GmbH" in text and "#7" in text


def test_a_long_subject_stays_within_smtp_line_limits():
    subject = "x" * 2000
    raw = compose(_row(subject=subject), _values(subject), reply_address="help@msp.example")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
