"""The dispatcher sends outbox rows over real SMTP, retries with backoff, fails with a reason."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from models import OutboxItem, Ticket, utcnow
from models.db import session_scope
from routing.outbox.dispatcher import dispatch


def _ticket_and_ack(engine, *, recipient="alice@acme.example", subject="Printer offline") -> int:
    with session_scope(engine) as s:
        ticket = Ticket(number=None, subject=subject, status="open", channel="email")
        s.add(ticket)
        s.flush()
        ticket.number = ticket.id
        row = OutboxItem(kind="acknowledgement", status="pending", recipient=recipient, ticket_id=ticket.id,
                         message_id=f"ack.{ticket.id}.test@msp.example",
                         payload={"template": "acknowledgement", "subject": subject,
                                  "in_reply_to": "orig-1@acme.example", "references": ["root@acme.example"]},
                         attempts=0, next_attempt_at=utcnow())
        s.add(row)
        s.flush()
        return row.id


def _row(engine, row_id) -> OutboxItem:
    with session_scope(engine) as s:
        return s.get(OutboxItem, row_id)


def test_an_acknowledgement_goes_out_over_starttls_and_auth_with_its_headers(engine, sink, outbound_settings):
    row_id = _ticket_and_ack(engine)
    counts = dispatch(engine=engine, settings=outbound_settings)
    assert counts == {"sent": 1, "retrying": 0, "failed": 0}
    (got,) = sink.wait_for(1)
    assert got.tls and got.authenticated
    assert sink.auth_attempts == [(True, "ticketpost")]  # credentials only after STARTTLS
    msg = got.message
    row = _row(engine, row_id)
    assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None
    assert msg["Message-ID"] == f"<{row.message_id}>"
    assert msg["Subject"] == f"[#{row.ticket_id}] Printer offline"
    assert msg["In-Reply-To"] == "<orig-1@acme.example>"
    assert msg["References"] == "<root@acme.example> <orig-1@acme.example>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert got.rcpt_tos == ["alice@acme.example"] and got.mail_from == "help@msp.example"


def test_sink_down_means_retries_with_backoff_then_failed_with_the_reason(engine, sink, outbound_settings):
    row_id = _ticket_and_ack(engine)
    sink.stop()
    assert dispatch(engine=engine, settings=outbound_settings) == {"sent": 0, "retrying": 1, "failed": 0}
    row = _row(engine, row_id)
    assert row.status == "pending" and row.attempts == 1 and "Connection refused" in row.reason
    for attempt in (2, 3):
        counts = dispatch(engine=engine, settings=outbound_settings)
    assert counts == {"sent": 0, "retrying": 0, "failed": 1}
    row = _row(engine, row_id)
    assert row.status == "failed" and row.attempts == 3
    assert row.reason.startswith("gave up after 3 attempts: cannot connect to 127.0.0.1")
    assert sink.messages == []


def test_backoff_doubles_and_a_row_is_not_sent_before_it_is_due(engine, sink, outbound_settings, monkeypatch):
    settings = outbound_settings.model_copy(update={"outbox_min_backoff_s": 60.0, "outbox_max_attempts": 5})
    row_id = _ticket_and_ack(engine)
    sink.stop()
    dispatch(engine=engine, settings=settings)
    first = _row(engine, row_id)
    assert timedelta(seconds=55) < first.next_attempt_at - utcnow() <= timedelta(seconds=60)
    assert dispatch(engine=engine, settings=settings) == {"sent": 0, "retrying": 0, "failed": 0}  # not due
    with session_scope(engine) as s:
        s.execute(update(OutboxItem).values(next_attempt_at=utcnow()))
    dispatch(engine=engine, settings=settings)
    second = _row(engine, row_id)
    assert timedelta(seconds=115) < second.next_attempt_at - utcnow() <= timedelta(seconds=120)


def test_a_permanent_refusal_fails_at_once(engine, sink, outbound_settings):
    row_id = _ticket_and_ack(engine, recipient="gone@acme.example")
    sink.refuse.add("gone@acme.example")
    assert dispatch(engine=engine, settings=outbound_settings) == {"sent": 0, "retrying": 0, "failed": 1}
    row = _row(engine, row_id)
    assert row.status == "failed" and row.attempts == 1 and row.last_status_code == 550
    assert "550" in row.reason and "refused for good" in row.reason


def test_implicit_tls_smtps(engine, tmp_path, outbound_settings):
    from bench.smtp_sink import SmtpSink

    (tmp_path / "smtps").mkdir()
    smtps = SmtpSink(tmp_path / "smtps", implicit_tls=True).start()
    try:
        settings = outbound_settings.model_copy(update={"outbound_url": smtps.url, "outbound_ca_file": str(smtps.cert)})
        _ticket_and_ack(engine)
        assert dispatch(engine=engine, settings=settings)["sent"] == 1
        assert smtps.messages[0].tls and smtps.messages[0].authenticated
    finally:
        smtps.stop()


def test_credentials_are_never_sent_to_a_server_without_starttls(engine, outbound_settings):
    """A plain server (no STARTTLS): the send fails saying so, and AUTH is never tried."""
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    seen = []

    class Plain:
        async def handle_DATA(self, server, session, envelope):
            seen.append(envelope.content)
            return "250 OK"

    port = free_port()
    plain = Controller(Plain(), hostname="127.0.0.1", port=port, server_hostname="plain.localhost",
                       auth_require_tls=False, authenticator=lambda *a: seen.append("AUTH") or False)
    plain.start()
    try:
        settings = outbound_settings.model_copy(update={"outbound_url": f"smtp://user:pw@127.0.0.1:{port}"})
        row_id = _ticket_and_ack(engine)
        dispatch(engine=engine, settings=settings)
        row = _row(engine, row_id)
        assert row.status == "pending" and "does not offer STARTTLS" in row.reason
        required = outbound_settings.model_copy(update={"outbound_url": f"smtp://127.0.0.1:{port}?tls=required"})
        with session_scope(engine) as s:
            s.execute(update(OutboxItem).values(next_attempt_at=utcnow()))
        dispatch(engine=engine, settings=required)
        assert "tls=required" in _row(engine, row_id).reason
        assert seen == []
        without = outbound_settings.model_copy(update={"outbound_url": f"smtp://127.0.0.1:{port}"})
        with session_scope(engine) as s:
            s.execute(update(OutboxItem).values(next_attempt_at=utcnow()))
        assert dispatch(engine=engine, settings=without)["sent"] == 1  # no credentials, no TLS asked: plain is fine
    finally:
        plain.stop()
