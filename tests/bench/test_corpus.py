"""The benchmark corpus is realistic, labelled, deterministic and parseable by the stdlib."""

from __future__ import annotations

import email
from collections import Counter
from email import policy

from sqlalchemy import func, select

from bench.corpus import CORPUS_CLIENTS, KINDS, MAX_SIZE, MIN_SIZE, generate, seed_database

N = 400


def _corpus() -> list[bytes]:
    return list(generate(N, seed=7))


def test_every_message_is_between_2_and_200_kb():
    sizes = [len(raw) for raw in _corpus()]
    assert min(sizes) >= MIN_SIZE
    assert max(sizes) <= MAX_SIZE


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes():
    assert list(generate(50, seed=3)) == list(generate(50, seed=3))
    assert list(generate(50, seed=3)) != list(generate(50, seed=4))


def test_every_message_parses_and_says_what_kind_it_is():
    kinds = Counter()
    attachments = alternatives = 0
    for seq, raw in enumerate(_corpus()):
        message = email.message_from_bytes(raw, policy=policy.default)
        assert message["X-Corpus-Seq"] == str(seq)
        kinds[message["X-Corpus-Kind"]] += 1
        assert message["Message-ID"] and message["From"].addresses
        assert message.get_body(("plain",)).get_content().strip()
        parts = list(message.walk())
        attachments += any(part.get_content_disposition() == "attachment" for part in parts)
        alternatives += any(part.get_content_type() == "multipart/alternative" for part in parts)
    assert set(kinds) == set(KINDS)
    assert 0.12 * N < kinds["reply"] < 0.28 * N
    assert 0.2 * N < attachments < 0.4 * N
    assert 0.4 * N < alternatives < 0.6 * N


def test_a_duplicate_repeats_an_earlier_message_byte_for_byte_below_the_corpus_headers():
    corpus = _corpus()
    duplicates = [raw for raw in corpus if raw.startswith(b"X-Corpus-Kind: duplicate")]
    assert duplicates
    for raw in duplicates:
        target = int(email.message_from_bytes(raw)["X-Corpus-Target"])
        original = corpus[target]
        assert raw[raw.index(b"Received:"):] == original[original.index(b"Received:"):]


def test_a_reply_points_at_an_earlier_message_of_the_same_client():
    corpus = [email.message_from_bytes(raw, policy=policy.default) for raw in _corpus()]
    owner = {domain: client.name for client in CORPUS_CLIENTS for domain in client.domains}

    def client_of(message) -> str:
        domain = message["From"].addresses[0].domain.lower()
        return next(name for d, name in owner.items() if domain == d or domain.endswith("." + d))

    replies = [m for m in corpus if m["X-Corpus-Kind"] == "reply"]
    for reply in replies:
        parent = corpus[int(reply["X-Corpus-Target"])]
        assert reply["In-Reply-To"] == parent["Message-ID"]
        assert client_of(reply) == client_of(parent)


def test_seeding_creates_the_clients_domains_and_one_primary_contact_each(sqlite_engine):
    from models import Client, ClientDomain, Contact

    seed_database(sqlite_engine)
    seed_database(sqlite_engine)  # idempotent
    with sqlite_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Client)) == len(CORPUS_CLIENTS)
        domains = conn.scalars(select(ClientDomain.domain)).all()
        primaries = conn.scalar(select(func.count()).where(Contact.is_primary))
    assert sorted(domains) == sorted(d for c in CORPUS_CLIENTS for d in c.domains)
    assert all(d == d.lower() and "@" not in d for d in domains)
    assert primaries == len(CORPUS_CLIENTS)
