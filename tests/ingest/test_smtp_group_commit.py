"""Group commit in the SMTP listener, over real smtplib sessions on PostgreSQL.

Messages whose DATA ended while the writer was busy share one INSERT and one COMMIT; each session
still gets its own ``250`` with its own id, and only after that COMMIT. To make "while the writer
was busy" certain rather than likely, a first message's INSERT is held (a hook on the driver's
``executemany``, which ingest.store uses on PostgreSQL, in the writer thread) while the other
sessions send theirs, until all of them wait; nothing is timed.
"""

from __future__ import annotations

import re
import smtplib
import threading

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from ingest.smtp import REPLY_DATABASE_DOWN
from models.db import make_engine
from tests.ingest.smtp_fixtures import CuttableLink, inbound_rows, message, wait_until

STORED = re.compile(rb"stored as inbound message (\d+)")
SESSIONS = 6


def send_one(port: int, mail: tuple[str, str, bytes], replies: list, i: int, errors: list) -> None:
    """One session sending (mail from, rcpt to, raw); its DATA reply goes to ``replies[i]``."""
    mail_from, rcpt_to, raw = mail
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("client.example")
            client.mail(mail_from)
            client.rcpt(rcpt_to)
            replies[i] = client.data(raw)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
        errors.append(exc)


class Transactions:
    """Counts the COMMITs and the inbound INSERTs on ``engine``; holds the first INSERT until
    ``release()``, so the messages arriving meanwhile queue up behind it."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.commits = 0
        self.inserts = 0
        self.on_second_insert = None  # called in the writer thread, before the second INSERT
        self._released = threading.Event()
        event.listen(engine, "commit", self._commit)
        self._executemany = psycopg.Cursor.executemany

        def executemany(cursor, query, *args, **kwargs):
            self._execute(str(query))
            return self._executemany(cursor, query, *args, **kwargs)

        psycopg.Cursor.executemany = executemany

    def _commit(self, conn) -> None:
        self.commits += 1

    def _execute(self, statement: str) -> None:
        if not statement.startswith("INSERT INTO inbound_messages"):
            return
        self.inserts += 1
        if self.inserts == 1:
            assert self._released.wait(30), "the test never released the first INSERT"
        elif self.inserts == 2 and self.on_second_insert is not None:
            self.on_second_insert()

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        event.remove(self.engine, "commit", self._commit)
        psycopg.Cursor.executemany = self._executemany


@pytest.fixture
def held_writer():
    """Factory: held_writer(stack) → Transactions on the listener's engine (removed afterwards)."""
    made: list[Transactions] = []

    def _hold(stack) -> Transactions:
        made.append(Transactions(stack.engine))
        return made[-1]

    yield _hold
    for transactions in made:
        transactions.close()


def send_behind_a_held_insert(stack, transactions: "Transactions",
                              mails: list[tuple[str, str, bytes]]) -> list[tuple[int, bytes]]:
    """Send ``mails[0]``; while its INSERT is held, send the others, each in its own session, at
    once; let the INSERT go once all of them wait for their store. DATA replies in order."""
    replies: list = [None] * len(mails)
    errors: list[BaseException] = []
    threads = [threading.Thread(target=send_one, args=(stack.port, mail, replies, i, errors))
               for i, mail in enumerate(mails)]
    threads[0].start()
    wait_until(lambda: transactions.inserts == 1 or errors, timeout=30,
               what="the first message's INSERT")
    for t in threads[1:]:
        t.start()
    wait_until(lambda: stack.smtp.handler.in_flight == len(mails) or errors, timeout=30,
               what=f"all {len(mails)} sessions to finish DATA")
    transactions.release()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return replies


def test_concurrent_sessions_share_commits_and_each_gets_its_own_id(start_stack, pg_url,
                                                                    held_writer):
    stack = start_stack(pg_url, worker=False)
    transactions = held_writer(stack)
    # Identical bytes from every session, told apart only by the envelope: each 250 must still
    # name the row with that session's own recipient.
    raw = message(1)
    mails = [(f"sender{i}@acme.example", f"help{i}@msp.example", raw) for i in range(SESSIONS)]
    replies = send_behind_a_held_insert(stack, transactions, mails)
    inserts, commits = transactions.inserts, transactions.commits  # before the test's own reads

    assert [code for code, _ in replies] == [250] * SESSIONS, replies
    ids = [int(STORED.search(text).group(1)) for _, text in replies]
    assert len(set(ids)) == SESSIONS, f"each session has its own id: {ids}"
    rows = {row.id: row for row in inbound_rows(stack.engine)}
    assert sorted(rows) == sorted(ids)
    for (mail_from, rcpt_to, _), inbound_id in zip(mails, ids, strict=True):
        assert rows[inbound_id].envelope_from == mail_from
        assert rows[inbound_id].envelope_to == [rcpt_to]
    # The first message waited alone in the held INSERT; the other five queued behind it and
    # were committed together.
    assert commits < SESSIONS, f"{commits} COMMITs for {SESSIONS} messages"
    assert (inserts, commits) == (2, 2)


def test_a_database_failure_during_a_batch_answers_451_to_each_of_its_sessions(
    start_stack, pg_url, held_writer
):
    url = make_url(pg_url)
    link = CuttableLink(url.host or "127.0.0.1", url.port or 5432)
    linked_url = url.set(host="127.0.0.1", port=link.port).render_as_string(hide_password=False)
    real = make_engine(pg_url)
    try:
        stack = start_stack(linked_url, worker=False)
        transactions = held_writer(stack)
        # The second INSERT carries the batch that queued behind the first: the database goes
        # away just as it is sent.
        transactions.on_second_insert = link.cut
        mails = [("alice@acme.example", "help@msp.example", message(n)) for n in range(SESSIONS)]
        replies = send_behind_a_held_insert(stack, transactions, mails)

        codes = [code for code, _ in replies]
        assert codes == [250] + [451] * (SESSIONS - 1), replies
        for code, text in replies:
            if code == 451:
                assert text.decode() == REPLY_DATABASE_DOWN[4:]
        stored_id = next(int(STORED.search(text).group(1)) for code, text in replies if code == 250)
        assert [row.id for row in inbound_rows(real)] == [stored_id], (
            "nothing of the failed batch was stored"
        )
        assert transactions.inserts == 2, "the failed batch was one INSERT, not retried row by row"
    finally:
        real.dispose()
        link.close()


@pytest.fixture
def refused_sender(pg_url):
    """A PostgreSQL trigger that refuses to store mail from one envelope sender (a row-level fault)."""
    sender = "refused@acme.example"
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE FUNCTION tp_test_refuse_sender() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.envelope_from = '{sender}' THEN RAISE EXCEPTION 'refused by the test trigger'; END IF; "
            "RETURN NEW; END $$"))
        conn.execute(text("CREATE TRIGGER tp_test_refuse_sender BEFORE INSERT ON inbound_messages "
                          "FOR EACH ROW EXECUTE FUNCTION tp_test_refuse_sender()"))
    try:
        yield sender
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER tp_test_refuse_sender ON inbound_messages"))
            conn.execute(text("DROP FUNCTION tp_test_refuse_sender()"))
        engine.dispose()


def test_one_bad_row_in_a_batch_fails_only_its_own_session(start_stack, pg_url, held_writer, refused_sender):
    stack = start_stack(pg_url, worker=False)
    transactions = held_writer(stack)
    # The database refuses this envelope sender's row, and with it the batch's INSERT; the
    # listener then stores that batch's messages one by one.
    senders = [f"user{i}@acme.example" for i in range(SESSIONS)]
    senders[3] = refused_sender
    mails = [(sender, "help@msp.example", message(n)) for n, sender in enumerate(senders)]
    replies = send_behind_a_held_insert(stack, transactions, mails)

    codes = [code for code, _ in replies]
    assert codes == [250, 250, 250, 451, 250, 250], replies
    assert transactions.inserts > 2, "the failed batch was stored again row by row"
    stored = [row.envelope_from for row in inbound_rows(stack.engine)]
    assert sorted(stored) == sorted(s for s in senders if s != refused_sender)
