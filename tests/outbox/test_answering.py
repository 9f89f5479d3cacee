"""Answering over real SMTP: mail in through the SMTP listener, answers out to an aiosmtpd sink.

The stack is the in-process one of the SMTP tests (listener, queue, routing worker) on both
databases; TICKETPOST_OUTBOUND_URL points at a sink that wants STARTTLS and AUTH.
"""

from __future__ import annotations

import smtplib
import time
import uuid

import pytest
from sqlalchemy import select

from models import Client, ClientDomain, Contact, InboundMessage, OutboxItem
from models.db import session_scope
from tests.ingest.smtp_fixtures import wait_until

SUPPORT = "help@msp.example"


def world(engine) -> None:
    """Acme (anyone may open tickets; alice and the primary bob), Beta (primary contact only)."""
    with session_scope(engine) as s:
        acme = Client(name="Acme")
        beta = Client(name="Beta", tickets_only_by_primary_contact=True)
        quiet = Client(name="Quiet", send_acknowledgements=False)
        gamma = Client(name="Gamma", tickets_only_by_primary_contact=True, require_authenticated_sender=True)
        s.add_all([acme, beta, quiet, gamma])
        s.flush()
        s.add_all([ClientDomain(client_id=acme.id, domain="acme.example"),
                   ClientDomain(client_id=beta.id, domain="beta.example"),
                   ClientDomain(client_id=quiet.id, domain="quiet.example"),
                   ClientDomain(client_id=gamma.id, domain="gamma.example")])
        s.add_all([
            Contact(client_id=acme.id, first_name="Alice", last_name="Able", email="alice@acme.example"),
            Contact(client_id=acme.id, first_name="Bob", last_name="Boss", email="bob@acme.example", is_primary=True),
            Contact(client_id=beta.id, first_name="Berta", last_name="Boss", email="boss@beta.example", is_primary=True),
            Contact(client_id=beta.id, first_name="Walter", last_name="Worker", email="worker@beta.example"),
            Contact(client_id=gamma.id, first_name="Gina", last_name="Gamma", email="ceo@gamma.example", is_primary=True),
        ])


def mail(sender: str, subject: str, *, message_id: str | None = None, headers: dict | None = None,
         body: str = "Hello, please help.") -> tuple[str, bytes]:
    message_id = message_id or f"{uuid.uuid4().hex}@{sender.rpartition('@')[2].rstrip('>')}"
    lines = [f"From: {sender}", f"To: {SUPPORT}", f"Subject: {subject}", f"Message-ID: <{message_id}>",
             "Date: Fri, 04 Dec 2026 10:00:00 +0000"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return message_id, ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def deliver(stack, sender: str, data: bytes, *, envelope_from: str | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", stack.port, timeout=10) as client:
        client.sendmail(sender if envelope_from is None else envelope_from, [SUPPORT], data)


def routed(engine, message_id: str) -> InboundMessage:
    """The inbound row of ``message_id`` once routed."""
    found: list[InboundMessage] = []

    def done() -> bool:
        with session_scope(engine) as s:
            row = s.scalar(select(InboundMessage).where(InboundMessage.message_id == message_id))
            if row is not None and row.status == "routed":
                found.append(row)
                return True
        return False

    wait_until(done, timeout=30, what=f"routing of <{message_id}>")
    return found[0]


def decisions(row: InboundMessage) -> list[str]:
    return [e["decision"] for e in row.explanation if e["step"] == "answer"]


def all_sent(engine) -> list[OutboxItem]:
    """The outbox rows, once every one is recorded as sent (the sink may hear of it first)."""
    wait_until(lambda: all(i.status == "sent" for i in outbox(engine)), timeout=10, what="rows recorded as sent")
    return outbox(engine)


def outbox(engine, **where) -> list[OutboxItem]:
    with session_scope(engine) as s:
        query = select(OutboxItem).order_by(OutboxItem.id)
        for key, value in where.items():
            query = query.where(getattr(OutboxItem, key) == value)
        return list(s.scalars(query))


@pytest.fixture
def answering(start_stack, database_url, sink, outbound_env):
    """start(**env) → an SMTP stack on ``database_url`` whose answers go to ``sink``."""

    def start(**env):
        stack = start_stack(database_url, outbound_url=sink.url, outbound_ca_file=str(sink.cert),
                            support_addresses=SUPPORT, reply_from=f"MSP Support <{SUPPORT}>", **env)
        world(stack.engine)
        return stack

    return start


def test_a_new_ticket_is_acknowledged_and_a_reply_to_the_acknowledgement_threads_onto_it(answering, sink):
    stack = answering()
    first_id, data = mail("Alice Able <alice@acme.example>", "Printer down",
                          headers={"References": "<older@acme.example>"})
    deliver(stack, "alice@acme.example", data)
    row = routed(stack.engine, first_id)
    assert row.outcome == "ticket_created"
    (got,) = sink.wait_for(1)
    ack = got.message
    number = row.ticket_id
    assert ack["Subject"] == f"[#{number}] Printer down"
    assert ack["From"] == f"MSP Support <{SUPPORT}>" and ack["To"] == "Alice Able <alice@acme.example>"
    assert ack["In-Reply-To"] == f"<{first_id}>"
    assert ack["References"].split() == ["<older@acme.example>", f"<{first_id}>"]
    assert ack["Auto-Submitted"] == "auto-replied" and ack["X-Auto-Response-Suppress"] == "All"
    assert f"ticket #{number}" in ack.get_body(("plain",)).get_content()
    assert got.tls and got.authenticated and got.rcpt_tos == ["alice@acme.example"]
    (item,) = all_sent(stack.engine)
    assert (item.kind, item.status, item.ticket_id, item.inbound_id) == ("acknowledgement", "sent", number, row.id)
    assert ack["Message-ID"] == f"<{item.message_id}>"
    assert decisions(row) == [f"an acknowledgement to alice@acme.example is queued (Message-ID <{item.message_id}>)"]

    # a reply to the acknowledgement, without the [#N] tag, continues the ticket
    reply_id, data = mail("alice@acme.example", "Re: your mail", headers={"In-Reply-To": ack["Message-ID"]})
    deliver(stack, "alice@acme.example", data)
    reply = routed(stack.engine, reply_id)
    assert (reply.outcome, reply.ticket_id) == ("ticket_updated", number)
    time.sleep(0.3)
    assert len(sink.messages) == 1  # a reply is not acknowledged


def test_a_sender_known_by_one_name_is_addressed_by_it_without_routings_placeholder(answering, sink):
    stack = answering()
    first_id, data = mail("carl@acme.example", "Scanner jammed")
    deliver(stack, "carl@acme.example", data)
    assert routed(stack.engine, first_id).outcome == "ticket_created"
    (got,) = sink.wait_for(1)
    assert got.message["To"] == "Carl <carl@acme.example>"  # the contact's last name is "(unknown)"
    assert "(unknown)" not in got.data.decode()


def test_a_colleague_refused_by_the_primary_contact_rule_gets_one_notice_without_the_primarys_address(answering, sink):
    stack = answering()
    first_id, data = mail("worker@beta.example", "VPN broken")
    deliver(stack, "worker@beta.example", data)
    row = routed(stack.engine, first_id)
    assert row.outcome == "rejected_not_primary" and "boss@beta.example" in row.reason  # internal reason names it
    (got,) = sink.wait_for(1)
    notice = got.message
    text = notice.get_body(("plain",)).get_content()
    assert "boss@beta.example" not in got.data.decode() and "Boss" not in got.data.decode()
    assert "Beta" in text and "primary contact" in text and "VPN broken" in text
    assert notice["Auto-Submitted"] == "auto-replied" and notice["In-Reply-To"] == f"<{first_id}>"
    (item,) = all_sent(stack.engine)
    assert (item.kind, item.status, item.recipient, item.ticket_id) == ("notice", "sent", "worker@beta.example", None)

    second_id, data = mail("worker@beta.example", "VPN still broken")
    deliver(stack, "worker@beta.example", data)
    second = routed(stack.engine, second_id)
    assert second.outcome == "rejected_not_primary"
    (why,) = decisions(second)
    assert why.startswith("no acknowledgement: a notice of refusal already went to worker@beta.example")
    assert "TICKETPOST_NOTICE_INTERVAL" in why
    assert len(outbox(stack.engine)) == 1


def test_unknown_senders_get_a_notice_only_under_the_reject_policy(answering, sink):
    stack = answering(unmatched_policy="reject")
    first_id, data = mail("stranger@elsewhere.example", "Hello?")
    deliver(stack, "stranger@elsewhere.example", data)
    assert routed(stack.engine, first_id).outcome == "rejected_unknown_sender"
    (got,) = sink.wait_for(1)
    assert "not an address of a customer we know" in got.message.get_body(("plain",)).get_content()
    assert outbox(stack.engine)[0].kind == "notice"


def test_triage_is_acknowledged_only_when_switched_on(answering, sink):
    stack = answering()
    first_id, data = mail("stranger@elsewhere.example", "Hello?")
    deliver(stack, "stranger@elsewhere.example", data)
    row = routed(stack.engine, first_id)
    assert row.outcome == "triaged"
    assert decisions(row) == ["no acknowledgement: tickets in triage are not acknowledged "
                              "(TICKETPOST_ACKNOWLEDGE_TRIAGED is off)"]
    assert outbox(stack.engine) == []


def test_triage_acknowledged_when_switched_on(answering, sink):
    stack = answering(acknowledge_triaged="true")
    first_id, data = mail("stranger@elsewhere.example", "Hello?")
    deliver(stack, "stranger@elsewhere.example", data)
    assert routed(stack.engine, first_id).outcome == "triaged"
    (got,) = sink.wait_for(1)
    assert got.message["Subject"].startswith("[#")


NEVER_ANSWERED = [
    # (what, sender, envelope sender or None, extra headers, outcome, the explanation says)
    ("an auto-reply", "alice@acme.example", None, {"Auto-Submitted": "auto-replied"},
     "ignored_auto_reply", "automatic mail is never answered"),
    ("an out-of-office of Exchange", "alice@acme.example", None, {"X-Auto-Response-Suppress": "All"},
     "ignored_auto_reply", "automatic mail is never answered"),
    ("a bounce (null envelope sender)", "alice@acme.example", "", {},
     "ignored_bounce", "bounces and mail from mail systems are never answered"),
    ("a MAILER-DAEMON sender", "MAILER-DAEMON@acme.example", None, {},
     "ignored_bounce", "bounces and mail from mail systems are never answered"),
    ("our own address", SUPPORT, None, {},
     "ignored_loop", "mail from our own addresses or from a sender over the rate limit is never answered"),
    ("a forged primary contact", "ceo@gamma.example", None, {},
     "rejected_unauthenticated", "a message refused as unauthenticated is never answered (its From is likely forged)"),
    ("a client with acknowledgements off", "someone@quiet.example", None, {},
     "ticket_created", "client 'Quiet' has acknowledgements switched off (send_acknowledgements)"),
    ("a no-reply address", "noreply@acme.example", None, {},
     "ticket_created", "noreply@acme.example is a mail system or no-reply address"),
    ("a From whose DMARC failed at our trusted server", "alice@acme.example", None,
     {"Authentication-Results": "mx.msp.example; dmarc=fail (p=reject) header.from=acme.example"},
     "ticket_created", "the From failed DMARC at a trusted server (dmarc=fail at mx.msp.example): it is likely forged"),
]


def test_mail_that_must_never_be_answered_is_not_and_the_explanation_says_why(answering, sink):
    stack = answering(trusted_authserv_ids="mx.msp.example")
    rows = []
    for what, sender, envelope, headers, _outcome, _says in NEVER_ANSWERED:
        message_id, data = mail(sender, f"case: {what}", headers=headers)
        deliver(stack, sender, data, envelope_from=envelope)
        rows.append(routed(stack.engine, message_id))
    for (what, _s, _e, _h, outcome, says), row in zip(NEVER_ANSWERED, rows):
        assert row.outcome == outcome, (what, row.reason)
        assert decisions(row) == [f"no acknowledgement: {says}"], what
    assert outbox(stack.engine) == []
    time.sleep(0.3)
    assert sink.messages == []


def test_a_sender_over_the_rate_limit_is_not_answered(answering, sink):
    stack = answering(rate_limit_per_hour=2, acknowledge_per_hour=10)
    rows = []
    for n in range(3):
        message_id, data = mail("alice@acme.example", f"storm {n}")
        deliver(stack, "alice@acme.example", data)
        rows.append(routed(stack.engine, message_id))
    assert [r.outcome for r in rows] == ["ticket_created", "ticket_created", "ignored_loop"]
    assert decisions(rows[2]) == ["no acknowledgement: mail from our own addresses or from a sender over the "
                                  "rate limit is never answered"]
    sink.wait_for(2)
    assert len(outbox(stack.engine)) == 2


def test_acknowledgements_are_capped_per_recipient_and_hour(answering, sink):
    stack = answering(acknowledge_per_hour=2)
    rows = []
    for n in range(3):
        message_id, data = mail("alice@acme.example", f"issue {n}")
        deliver(stack, "alice@acme.example", data)
        rows.append(routed(stack.engine, message_id))
    other_id, data = mail("bob@acme.example", "my own issue")
    deliver(stack, "bob@acme.example", data)
    other = routed(stack.engine, other_id)
    assert [r.outcome for r in rows] == ["ticket_created"] * 3
    assert decisions(rows[2]) == ["no acknowledgement: alice@acme.example opened 2 tickets in the last hour and was "
                                  "acknowledged at most that often; the limit is 2 acknowledgements an hour "
                                  "(TICKETPOST_ACKNOWLEDGE_PER_HOUR)"]
    assert decisions(other)[0].startswith("an acknowledgement to bob@acme.example is queued")
    got = sink.wait_for(3)
    assert sorted(m.rcpt_tos[0] for m in got) == ["alice@acme.example", "alice@acme.example", "bob@acme.example"]


def test_without_outbound_url_nothing_is_queued_or_explained(start_stack, database_url, sink):
    stack = start_stack(database_url, support_addresses=SUPPORT)
    world(stack.engine)
    message_id, data = mail("alice@acme.example", "Printer down")
    deliver(stack, "alice@acme.example", data)
    row = routed(stack.engine, message_id)
    assert row.outcome == "ticket_created" and decisions(row) == []
    assert outbox(stack.engine) == []


def test_sink_down_retries_then_failed_then_an_api_retry_sends_it_with_the_same_message_id(answering, sink):
    import warnings

    from admin_api.app import create_app
    from routing.outbox.dispatcher import OutboxPoller

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    stack = answering(outbox_max_attempts=3, outbox_min_backoff_s=0.05, outbox_poll_interval_s=0.05,
                      admin_token="outbox-admin")
    poller = OutboxPoller(engine=stack.engine, settings=stack.settings)
    poller.start()
    try:
        sink.stop()
        message_id, data = mail("alice@acme.example", "Mail server test")
        deliver(stack, "alice@acme.example", data)
        row = routed(stack.engine, message_id)
        assert row.outcome == "ticket_created"  # routing never waits for, or fails with, the answer

        def failed() -> bool:
            items = outbox(stack.engine)
            return bool(items) and items[0].status == "failed"

        wait_until(failed, timeout=30, what="the acknowledgement to give up")
        (item,) = outbox(stack.engine)
        assert item.attempts == 3 and item.reason.startswith("gave up after 3 attempts: cannot connect to 127.0.0.1")

        sink.start()  # the mail server is back, on the same port
        with TestClient(create_app(engine=stack.engine, settings=stack.settings)) as api:
            headers = {"Authorization": "Bearer outbox-admin"}
            listed = api.get("/api/v1/outbox?status=failed", headers=headers).json()
            assert [i["id"] for i in listed["items"]] == [item.id] and listed["items"][0]["reason"] == item.reason
            response = api.post(f"/api/v1/outbox/{item.id}/retry", headers=headers)
            assert response.status_code == 202, response.text
            (got,) = sink.wait_for(1)

            def sent() -> bool:
                return outbox(stack.engine)[0].status == "sent"

            wait_until(sent, timeout=10, what="the retried row to be recorded as sent")
            shown = api.get(f"/api/v1/outbox?ticket_id={row.ticket_id}", headers=headers).json()["items"][0]
        assert got.message["Message-ID"] == f"<{item.message_id}>" and shown["message_id"] == item.message_id
        assert shown["status"] == "sent" and shown["attempts"] == 1
    finally:
        poller.stop()


def test_a_clients_own_template_is_used_with_html_and_a_broken_one_falls_back_to_the_default(answering, sink):
    from models import ClientTemplate

    stack = answering()
    with session_scope(stack.engine) as s:
        acme = s.scalar(select(Client).where(Client.name == "Acme"))
        beta = s.scalar(select(Client).where(Client.name == "Beta"))
        s.add(ClientTemplate(client_id=acme.id, kind="acknowledgement",
                             subject="Acme IT [#{{ ticket.number }}]: {{ subject }}",
                             body_text="Dear {{ contact.first_name }}, {{ client.name }} ticket {{ ticket.number }}.",
                             body_html="<p>Dear {{ contact.first_name }} &amp; team</p>"))
        # saved around the API's check (as an old row could be): fails when rendered
        s.add(ClientTemplate(client_id=beta.id, kind="notice_not_primary", subject="{{ nope.nope }}",
                             body_text="x"))
    first_id, data = mail("alice@acme.example", "Mouse broken")
    deliver(stack, "alice@acme.example", data)
    number = routed(stack.engine, first_id).ticket_id
    (got,) = sink.wait_for(1)
    ack = got.message
    assert ack["Subject"] == f"Acme IT [#{number}]: Mouse broken"
    assert ack.get_body(("plain",)).get_content().strip() == f"Dear Alice, Acme ticket {number}."
    assert "Dear Alice &amp; team" in ack.get_body(("html",)).get_content()

    second_id, data = mail("worker@beta.example", "Need access")
    deliver(stack, "worker@beta.example", data)
    assert routed(stack.engine, second_id).outcome == "rejected_not_primary"
    got = sink.wait_for(2)[1]
    assert got.message["Subject"] == "Your message was not opened as a ticket: Need access"  # the default
