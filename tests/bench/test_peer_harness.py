"""The head-to-head harness scores each side from its results and speaks the peer's tag format."""

from __future__ import annotations

import email
from email import policy

from bench.peer_django_helpdesk import _corpus_headers, _rewrite_tag, score


def _record(kind, ticket, *, target=None, opened=False):
    return {"kind": kind, "target": target, "ticket": ticket, "opened": opened,
            "expected_ticket": None, "ticket_number": ticket, "outcome": ""}


def test_a_side_that_appends_everything_fails_every_row_but_threading():
    records = {
        0: _record("new", 1, opened=True),
        1: _record("reply", 1, target=0),
        2: _record("duplicate", 1, target=0),
        3: _record("auto_reply", 1, target=0),
        4: _record("new", 2, opened=True),
        5: _record("wrong_client_tag", 1, target=0),
    }
    rows = score(records)
    assert rows["new messages opened a ticket"] == (2, 2)
    assert rows["replies threaded onto their ticket"] == (1, 1)
    assert rows["duplicates not ticketed twice"] == (0, 1)
    assert rows["auto-replies ignored"] == (0, 1)
    assert rows["wrong-client tags refused"] == (0, 1)


def test_a_side_that_ignores_and_refuses_passes_those_rows():
    records = {
        0: _record("new", 1, opened=True),
        1: _record("duplicate", None, target=0),
        2: _record("auto_reply", None, target=0),
        3: _record("wrong_client_tag", 2, target=0, opened=True),
        4: _record("reply", 3, target=0, opened=True),  # opened its own ticket: not threaded
    }
    rows = score(records)
    assert rows["duplicates not ticketed twice"] == (1, 1)
    assert rows["auto-replies ignored"] == (1, 1)
    assert rows["wrong-client tags refused"] == (1, 1)
    assert rows["replies threaded onto their ticket"] == (0, 1)


def test_our_tag_in_an_encoded_subject_becomes_the_peer_tag_of_the_same_ticket():
    raw = (
        b"X-Corpus-Kind: wrong_client_tag\r\nX-Corpus-Seq: 9\r\nX-Corpus-Target: 2\r\n"
        b"From: a@b.example\r\nSubject: =?iso-8859-1?q?AW=3A_=5B=2314=5D_Drucker_gest=F6rt?=\r\n"
        b" =?iso-8859-1?q?_heute?=\r\nMessage-ID: <x@b.example>\r\n\r\nbody\r\n"
    )
    rewritten = _rewrite_tag(raw, {14: 203})
    message = email.message_from_bytes(rewritten, policy=policy.default)
    assert message["Subject"] == "AW: [support-203] Drucker gestört heute"
    assert message["Message-ID"] == "<x@b.example>"
    assert _corpus_headers(rewritten) == {"kind": "wrong_client_tag", "seq": "9", "target": "2"}


def test_a_tag_the_peer_never_saw_is_left_alone():
    raw = b"X-Corpus-Kind: reply\r\nX-Corpus-Seq: 1\r\nSubject: Re: [#5] x\r\n\r\nbody\r\n"
    assert _rewrite_tag(raw, {}) == raw
