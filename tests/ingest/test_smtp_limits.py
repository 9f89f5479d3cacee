"""SMTP limits (issue 15 item 10), over real sockets: recipients, path syntax, time, per-client cap."""

from __future__ import annotations

import smtplib
import socket

from tests.ingest.smtp_fixtures import inbound_rows, message, wait_until


def smtp(stack, source: str = "127.0.0.1") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", stack.port, timeout=10, source_address=(source, 0))
    client.ehlo("client.example")
    return client


def read_until_closed(f, send: bytes, *, every: int = 1, limit: int = 200) -> list[bytes]:
    """Send ``send`` (one line) and read its reply, up to ``limit`` times, until the server closes;
    return every line read."""
    lines = []
    for _ in range(limit):
        try:
            f.write(send + b"\r\n")
            f.flush()
        except OSError:
            break
        line = f.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(b"421"):
            lines.append(f.readline())
            break
        __import__("time").sleep(0.1 * every)
    return lines


def test_recipients_are_capped_with_452_4_5_3_and_repeats_are_stored_once(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False, smtp_max_recipients=3,
                        support_addresses="*@msp.example")
    with smtp(stack) as client:
        assert client.mail("alice@acme.example")[0] == 250
        for n in range(3):
            assert client.rcpt(f"help{n}@msp.example")[0] == 250
        for _ in range(50):  # the same recipients again, also in another spelling
            assert client.rcpt("help0@msp.example")[0] == 250
            assert client.rcpt("HELP1@MSP.EXAMPLE")[0] == 250
        code, text = client.rcpt("help3@msp.example")
        assert (code, text[:5]) == (452, b"4.5.3")
        assert client.data(message(1))[0] == 250
    assert inbound_rows(stack.engine)[0].envelope_to == [
        "help0@msp.example", "help1@msp.example", "help2@msp.example"]


def test_the_default_recipient_cap_is_100(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False, support_addresses="*@msp.example")
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as raw:
        f = raw.makefile("rwb")
        f.readline()
        commands = [b"HELO c.example", b"MAIL FROM:<alice@acme.example>"] + [
            f"RCPT TO:<r{n}@msp.example>".encode() for n in range(150)]
        f.write(b"".join(c + b"\r\n" for c in commands))  # pipelined, as a bulk sender would
        f.flush()
        replies = [f.readline()[:3] for _ in commands]
    assert replies[2:].count(b"250") == 100
    assert replies[102:] == [b"452"] * 50


def test_a_sender_that_is_not_an_address_is_refused_with_501_5_1_7(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False)
    with smtp(stack) as client:
        for path in ("<not an address>", "<bob@acme.example", "<bob>"):
            code, text = client.docmd("MAIL", f"FROM:{path}")
            assert code == 501 and text.startswith(b"5.1.7"), (path, code, text)
        assert client.docmd("MAIL", "FROM:<bob@>")[0] == 553  # aiosmtpd's own parser refuses it
        # unusual but well-formed envelope senders still pass: the From header is what counts
        for path in ("<>", "<root@localhost>", '<"a b"@host.local>', "<bob@[192.0.2.1]>"):
            assert client.docmd("MAIL", f"FROM:{path}")[0] == 250, path
            client.rset()


def test_a_recipient_that_is_not_an_address_is_refused_with_501_5_1_3(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False)  # no support addresses: any address is ours
    with smtp(stack) as client:
        client.mail("alice@acme.example")
        for path in ("<not an address>", "<help@msp.example"):
            code, text = client.docmd("RCPT", f"TO:{path}")
            assert code == 501 and text.startswith(b"5.1.3"), (path, code, text)
        assert client.rcpt("help@msp.example")[0] == 250


def test_noop_does_not_keep_an_idle_session_open(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False, smtp_idle_timeout_s=1.0)
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as raw:
        f = raw.makefile("rwb")
        f.readline()
        lines = read_until_closed(f, b"NOOP")  # a NOOP every 0.1 s, up to 200 of them
    assert lines[-2].startswith(b"421 4.4.2 Timeout"), lines[-3:]
    assert lines[-1] == b"", "the connection is closed"


def test_a_session_ends_at_the_session_time_limit_however_busy(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False, smtp_idle_timeout_s=30,
                        smtp_session_timeout_s=1.0)
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as raw:
        f = raw.makefile("rwb")
        f.readline()
        lines = read_until_closed(f, b"HELO c.example")  # a real command every 0.1 s
    assert lines[-2].startswith(b"421 4.4.2 Session time limit"), lines[-3:]
    assert lines[-1] == b""


def test_one_client_address_cannot_take_every_connection_slot(start_stack, sqlite_url):
    stack = start_stack(sqlite_url, worker=False, smtp_max_connections=5,
                        smtp_max_connections_per_ip=2)
    held = [smtp(stack), smtp(stack)]
    try:
        with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as third:
            assert third.recv(200).startswith(b"421 4.7.0 Too many connections from your address")
        # another client (another loopback address) still gets in and delivers
        with smtp(stack, source="127.0.0.2") as other:
            assert other.sendmail("bob@acme.example", ["help@msp.example"], message(1)) == {}
        held.pop().quit()
        wait_until(lambda: len(stack.smtp._sessions.live) < 2, what="a session to close")
        with smtp(stack) as again:
            assert again.noop()[0] == 250, "a freed slot of that client is usable again"
    finally:
        for client in held:
            client.close()
