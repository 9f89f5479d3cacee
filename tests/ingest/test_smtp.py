"""The SMTP listener, spoken to with smtplib and swaks over real sockets (SPEC §4)."""

from __future__ import annotations

import shutil
import smtplib
import socket
import subprocess
import time

import pytest

from ingest.smtp import (
    REPLY_DATABASE_DOWN,
    SmtpConfigError,
    check_bind,
)
from models.db import make_engine
from tests.conftest import free_port, service_missing
from tests.ingest.smtp_fixtures import (
    CuttableLink,
    assert_each_routed_once,
    count_inbound,
    inbound_rows,
    message,
    self_signed_cert,
    wait_until,
)
from core.settings import Settings


def smtp(stack) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", stack.port, timeout=10)
    client.ehlo("client.example")
    return client


def reply_code_and_text(exc: smtplib.SMTPResponseException) -> tuple[int, str]:
    return exc.smtp_code, exc.smtp_error.decode()


def test_a_message_is_committed_before_250_and_then_routed(start_stack, database_url):
    stack = start_stack(database_url, worker=False)
    with smtp(stack) as client:
        client.mail("alice@acme.example")
        client.rcpt("help@msp.example")
        code, text = client.data(message(1))
    assert code == 250
    # No worker runs: what exists now was committed before the 250 was sent.
    rows = inbound_rows(stack.engine)
    assert len(rows) == 1
    row = rows[0]
    assert row.status == "received"
    assert row.source == "smtp"
    assert row.envelope_from == "alice@acme.example"
    assert row.envelope_to == ["help@msp.example"]
    assert str(row.id).encode() in text, "the 250 names the stored inbound message"

    from routing.broker import start_worker, stop_worker

    worker = start_worker(1, stack.settings)
    try:
        wait_until(lambda: count_inbound(stack.engine, status="routed") == 1, what="routing")
    finally:
        stop_worker(worker, 10)
    assert_each_routed_once(stack.engine, 1)


def test_only_support_addresses_are_accepted_as_recipients(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, support_addresses="help@msp.example,*@support.msp.example")
    with smtp(stack) as client:
        client.mail("alice@acme.example")
        assert client.rcpt("HELP@MSP.example")[0] == 250, "exact address, any case"
        assert client.rcpt("anyone@Support.MSP.example")[0] == 250, "domain wildcard"
        code, text = client.rcpt("someone@elsewhere.example")
        assert code == 550 and text.startswith(b"5.1.1")
        code, _ = client.rcpt("help@sub.support.msp.example")
        assert code == 550, "a wildcard covers its domain, not its subdomains"
        assert client.data(message(1))[0] == 250
    rows = inbound_rows(stack.engine)
    assert [r.envelope_to for r in rows] == [["HELP@MSP.example", "anyone@Support.MSP.example"]]


def test_a_message_for_nobody_of_ours_is_refused_at_rcpt_and_not_stored(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, support_addresses="help@msp.example")
    with smtp(stack) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("alice@acme.example", ["victim@elsewhere.example"], message(1))
    code, text = refused.value.recipients["victim@elsewhere.example"]
    assert code == 550 and text.startswith(b"5.1.1")
    assert count_inbound(stack.engine) == 0


def test_addresses_with_control_characters_are_refused_at_mail_and_rcpt_for_good(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, support_addresses="help@msp.example")
    with smtp(stack) as client:
        code, text = client.mail("alice\x00@acme.example")
        assert code == 553 and text.startswith(b"5.1.7")
        assert client.mail("alice@acme.example")[0] == 250, "the session goes on with a usable sender"
        code, text = client.rcpt("help\x00@msp.example")
        assert code == 553 and text.startswith(b"5.1.3")
        assert client.rcpt("help@msp.example")[0] == 250
        assert client.data(message(1))[0] == 250
    assert [r.envelope_from for r in inbound_rows(stack.engine)] == ["alice@acme.example"]


def test_without_support_addresses_any_recipient_is_accepted_on_loopback(start_stack, sqlite_url):
    stack = start_stack(sqlite_url)
    with smtp(stack) as client:
        assert client.sendmail("a@acme.example", ["whoever@wherever.example"], message(1)) == {}


def test_without_support_addresses_a_public_bind_is_refused():
    settings = Settings(smtp_host="0.0.0.0", support_addresses=[])
    with pytest.raises(SmtpConfigError, match="SUPPORT_ADDRESSES"):
        check_bind(settings)
    check_bind(Settings(smtp_host="0.0.0.0", support_addresses=["help@msp.example"]))
    check_bind(Settings(smtp_host="127.0.0.1", support_addresses=[]))


def test_a_malformed_support_address_is_a_clear_startup_error():
    with pytest.raises(SmtpConfigError, match="neither an address"):
        check_bind(Settings(support_addresses=["helpdesk"]))


def test_size_is_advertised_and_enforced_with_552_5_3_4(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, smtp_max_message_bytes=2000)
    with smtp(stack) as client:
        assert client.has_extn("size") and client.esmtp_features["size"] == "2000"
        # Declared too big in MAIL FROM SIZE=...
        code, text = client.mail("alice@acme.example", ["SIZE=5000"])
        assert (code, text[:5]) == (552, b"5.3.4")
        client.rset()
        # Not declared, but too big when it arrives.
        client.mail("alice@acme.example")
        client.rcpt("help@msp.example")
        code, text = client.data(message(1) + (b"x" * 70 + b"\r\n") * 50)
        assert (code, text[:5]) == (552, b"5.3.4")
        # Far beyond the limit (more than the listener ever buffers): read to the end, refused.
        client.mail("alice@acme.example")
        client.rcpt("help@msp.example")
        code, text = client.data(message(3) + (b"z" * 998 + b"\r\n") * 200)
        assert (code, text[:5]) == (552, b"5.3.4")
        # The session goes on: a small message still gets through.
        assert client.sendmail("alice@acme.example", ["help@msp.example"], message(2)) == {}
    assert count_inbound(stack.engine) == 1


def test_dot_stuffed_lines_are_stored_as_the_sender_wrote_them(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False)
    body = b"Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nends with a dot.\r\n.\r\n\r\nend\r\n"
    with smtp(stack) as client:  # smtplib dot-stuffs; the listener must undo exactly that
        assert client.sendmail("alice@acme.example", ["help@msp.example"], body) == {}
        # An empty message is a message too.
        client.mail("alice@acme.example")
        client.rcpt("help@msp.example")
        client.send(b"DATA\r\n")
        assert client.getreply()[0] == 354
        client.send(b".\r\n")
        assert client.getreply()[0] == 250
    raws = [r.raw for r in inbound_rows(stack.engine)]
    assert raws == [body, b""]


def test_lines_longer_than_rfc_5322_allows_are_still_accepted(start_stack, sqlite_url):
    """Real senders emit over-long lines (generated HTML); a 5xx for them would lose mail."""
    stack = start_stack(sqlite_url, worker=False)
    long_line = b"<p>" + b"y" * 5000 + b"</p>"
    with smtp(stack) as client:
        assert client.sendmail("alice@acme.example", ["help@msp.example"],
                               message(1) + long_line + b"\r\n") == {}
    assert long_line in inbound_rows(stack.engine)[0].raw


def test_connections_over_the_cap_get_421_4_7_0(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, smtp_max_connections=2)
    first, second = smtp(stack), smtp(stack)
    try:
        with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as third:
            greeting = third.recv(200)
        assert greeting.startswith(b"421 4.7.0")
        first.quit()
        wait_until(lambda: len(stack.smtp._sessions.live) < 2, what="a session to close")
        with smtp(stack) as fourth:
            assert fourth.noop()[0] == 250, "a freed slot is usable again"
    finally:
        second.close()


def test_the_database_going_away_during_a_session_gives_451_and_stores_nothing(
    start_stack, pg_url, monkeypatch
):
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    link = CuttableLink(url.host or "127.0.0.1", url.port or 5432)
    linked_url = url.set(host="127.0.0.1", port=link.port).render_as_string(hide_password=False)
    try:
        stack = start_stack(linked_url, worker=False)
        real = make_engine(pg_url)
        with smtp(stack) as client:
            assert client.sendmail("alice@acme.example", ["help@msp.example"], message(1)) == {}
            client.mail("alice@acme.example")
            client.rcpt("help@msp.example")
            link.cut()  # the database becomes unreachable while the sender is in DATA
            code, text = client.data(message(2))
            assert code == 451 and text.startswith(b"4.3.0")
            assert text.decode() == REPLY_DATABASE_DOWN[4:], "no internals in the reply"
            link.restore()
            # The sending server retries: now it is stored, once.
            assert client.sendmail("alice@acme.example", ["help@msp.example"], message(3)) == {}
        subjects = sorted(
            r.raw.split(b"Subject: ")[1].split(b"\r\n")[0] for r in inbound_rows(real)
        )
        assert subjects == [b"printer number 1 is jammed", b"printer number 3 is jammed"]
        real.dispose()
    finally:
        link.close()


def test_a_closed_database_port_gives_451_4_3_0(start_stack, tmp_path):
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    stack = start_stack(dead, worker=False)
    with smtp(stack) as client:
        client.mail("alice@acme.example")
        client.rcpt("help@msp.example")
        code, text = client.data(message(1))
    assert code == 451 and text.startswith(b"4.3.0")
    assert b"Error" not in text and b"psycopg" not in text.lower()


def test_an_internal_error_gives_451_without_internals(start_stack, sqlite_url, monkeypatch):
    stack = start_stack(sqlite_url, worker=False)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr("ingest.smtp.group_commit.insert_inbound", broken)
    with smtp(stack) as client:
        client.mail("alice@acme.example")
        client.rcpt("help@msp.example")
        code, text = client.data(message(1))
    assert code == 451
    assert b"ZeroDivision" not in text and b"secret" not in text


def test_handle_exception_answers_451_without_the_exception_name(start_stack, sqlite_url,
                                                                  monkeypatch):
    stack = start_stack(sqlite_url, worker=False)

    async def exploding_rcpt(*args, **kwargs):
        raise RuntimeError("kaboom internals")

    monkeypatch.setattr(stack.smtp.handler, "handle_RCPT", exploding_rcpt)
    # aiosmtpd binds hooks per session, so a new session picks up the broken hook.
    with smtp(stack) as client:
        client.mail("alice@acme.example")
        code, text = client.rcpt("help@msp.example")
    assert code == 451 and b"RuntimeError" not in text and b"kaboom" not in text


def test_a_bounce_with_the_null_reverse_path_is_stored_with_an_empty_envelope_sender(
    start_stack, sqlite_url
):
    stack = start_stack(sqlite_url, worker=False)
    with smtp(stack) as client:
        assert client.sendmail("<>", ["help@msp.example"], message(1)) == {}
    assert [r.envelope_from for r in inbound_rows(stack.engine)] == [""]


def test_an_idle_session_is_closed_with_421(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False, smtp_idle_timeout_s=0.3)
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as raw:
        received = b""
        while True:
            chunk = raw.recv(500)
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"220 ")
    assert b"421 4.4.2" in received


def test_a_stalled_data_transfer_is_closed_by_the_data_timeout(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False, smtp_data_timeout_s=0.5)
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as raw:
        f = raw.makefile("rwb")
        f.readline()
        for line in (b"EHLO c.example", b"MAIL FROM:<a@acme.example>",
                     b"RCPT TO:<help@msp.example>", b"DATA"):
            f.write(line + b"\r\n")
            f.flush()
            while True:
                reply = f.readline()
                if reply[3:4] != b"-":
                    break
        assert reply.startswith(b"354")
        f.write(b"Subject: half a message\r\n")
        f.flush()
        assert f.readline().startswith(b"421 4.4.2")
        assert f.readline() == b"", "the connection is closed"
    assert count_inbound(stack.engine) == 0


def test_starttls_with_swaks(start_stack, sqlite_url, tmp_path):
    if shutil.which("swaks") is None:
        service_missing("swaks", "the swaks binary is not installed")
    cert, key = self_signed_cert(tmp_path)
    stack = start_stack(sqlite_url, smtp_tls_cert=cert, smtp_tls_key=key,
                        support_addresses="help@msp.example")
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{stack.port}", "--tls", "--from", "alice@acme.example",
         "--to", "help@msp.example", "--header", "Subject: over TLS", "--body", "encrypted hello",
         "--ehlo", "client.example", "--timeout", "10"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "220 Ready to start TLS" in result.stdout
    assert "TLS started" in result.stdout
    assert "250 2.0.0 OK: stored as inbound message" in result.stdout
    wait_until(lambda: count_inbound(stack.engine, status="routed") == 1, what="routing")
    assert b"Subject: over TLS" in inbound_rows(stack.engine)[0].raw


def test_the_same_message_delivered_twice_makes_one_ticket(start_stack, database_url):
    stack = start_stack(database_url)
    raw = message(7)
    with smtp(stack) as client:
        assert client.sendmail("alice@acme.example", ["help@msp.example"], raw) == {}
        wait_until(lambda: count_inbound(stack.engine, status="routed") == 1, what="first routing")
        assert client.sendmail("alice@acme.example", ["help@msp.example"], raw) == {}
    wait_until(lambda: count_inbound(stack.engine, status="routed") == 2, what="second routing")
    outcomes = [r.outcome for r in inbound_rows(stack.engine)]
    assert outcomes[0] in ("triaged", "ticket_created")
    assert outcomes[1] == "ignored_duplicate"
    assert_each_routed_once(stack.engine, 2)


def test_stopping_finishes_the_store_in_flight_then_refuses_new_mail(start_stack, sqlite_url,
                                                                      monkeypatch):
    import ingest.smtp.group_commit as smtp_module

    stack = start_stack(sqlite_url, worker=False)
    real_store = smtp_module.insert_inbound
    started = __import__("threading").Event()

    def slow_store(*args):
        started.set()
        time.sleep(0.5)
        return real_store(*args)

    monkeypatch.setattr(smtp_module, "insert_inbound", slow_store)
    result = {}

    def send():
        with smtplib.SMTP("127.0.0.1", stack.port, timeout=10) as client:
            result["reply"] = client.sendmail("alice@acme.example", ["help@msp.example"],
                                              message(1))

    sender = __import__("threading").Thread(target=send)
    sender.start()
    assert started.wait(5)
    stack.smtp.stop(10)  # while the message is being stored
    sender.join(10)
    assert result.get("reply") == {}, "the message in flight got its 250"
    assert count_inbound(stack.engine) == 1
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", stack.port, timeout=2)


def test_the_same_message_delivered_twice_at_once_still_makes_one_ticket(start_stack, pg_url):
    """Two copies routed concurrently by different worker threads: one ticket, one duplicate."""
    stack = start_stack(pg_url, worker=False, worker_threads=4)
    pairs = 20
    with smtp(stack) as client:
        for n in range(pairs):
            raw = message(100 + n, sender=f"user{n}@acme.example")
            for _ in range(2):
                assert client.sendmail(f"user{n}@acme.example", ["help@msp.example"], raw) == {}
    from routing.broker import start_worker, stop_worker

    worker = start_worker(4, stack.settings)  # the copies are queued side by side: routed at once
    try:
        wait_until(lambda: count_inbound(stack.engine, status="routed") == 2 * pairs,
                   what="routing")
    finally:
        stop_worker(worker, 10)
    outcomes = sorted(r.outcome for r in inbound_rows(stack.engine))
    assert outcomes.count("ignored_duplicate") == pairs, outcomes
    assert_each_routed_once(stack.engine, 2 * pairs)
