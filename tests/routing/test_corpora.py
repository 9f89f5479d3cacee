"""Real mail nobody here wrote (``../shared/corpora``) routes as each folder's README asks, on both databases.

Every file of a folder is stored and routed through the real pipeline as an IMAP poll of the
support mailbox stores it (no envelope at all: only the message can tell what it is; the SMTP
path with a forwarder's envelope sender is tests/ingest/test_smtp_corpora.py), with one
client owning the domains of the folder's From addresses: a bounce or automatic reply that slipped
through would open a ticket, not merely land in triage. What routing decided is compared with an
independent reading of each file by the standard library (tests.corpora.folder_problems):

- no bounce or automatic reply opens a ticket; a bounce is ``ignored_bounce`` wherever one of
  SPEC §3's bounce signals is there (in every folder);
- customer mail never fails or crashes; it is ``rejected_invalid_sender`` only when the stdlib
  finds no From address the product's address rule accepts; it is ignored as automatic only for a
  header signal; a ticket keeps words of the mail's text and lists at least its files.
"""

from __future__ import annotations

import pytest

from core.settings import Settings
from ingest.store import store_inbound
from routing.pipeline import route_inbound
from tests.corpora import (
    FOLDERS,
    Routed,
    corpus_files,
    delivered_bytes,
    folder_problems,
    register_client,
    stdlib_view,
    summary,
)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_corpus_mail_routes_as_its_folder_asks(engine, folder):
    raws = {path.name: delivered_bytes(path) for path in corpus_files(folder)}
    views = {name: stdlib_view(raw) for name, raw in raws.items()}
    register_client(engine, views)
    settings = Settings()
    routed, crashes = {}, {}
    for name, raw in raws.items():  # one database per folder, store and route in a loop
        inbound_id = store_inbound(raw=raw, source="imap:support", engine=engine)
        try:
            result = route_inbound(inbound_id, engine=engine, settings=settings)
        except Exception as exc:  # noqa: BLE001 - a crash is a finding, listed with the others
            crashes[name] = f"{type(exc).__name__}: {exc}"
            continue
        routed[name] = Routed(result.outcome, result.reason, inbound_id)
    assert not crashes, crashes
    assert len(routed) == len(raws) > 0
    print(f"\n{folder} on {engine.dialect.name}: {len(routed)} mails: {summary(routed)}")
    problems = folder_problems(folder, engine, raws, views, routed)
    assert not problems, f"{len(problems)} of {len(routed)}:\n" + "\n".join(problems)


def test_the_corpora_are_where_the_tests_look_for_them():
    counts = {folder: len(corpus_files(folder)) for folder in FOLDERS}
    assert counts["bounces"] >= 250 and counts["auto_replies"] >= 20 and counts["customer"] >= 150, counts
