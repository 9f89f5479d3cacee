"""Mail in over SMTP, a webhook out over HTTP: the in-process stack (listener, queue, routing
worker) routes the mail, hands the inbound id to the outbox dispatcher after its commit, and the
ticket.created event reaches the receiver signed (both databases). No webhook runner runs here:
the delivery goes the hand-over's way."""

from __future__ import annotations

import json
import smtplib

from models import Client, ClientDomain, Contact
from models.db import session_scope
from routing.webhooks.signing import verify
from tests.webhooks.conftest import SECRET, SECRET_KEY, add_webhook

SUPPORT = "help@msp.example"


def test_mail_over_smtp_becomes_a_signed_ticket_created_delivery(start_stack, database_url, receiver):
    stack = start_stack(database_url, support_addresses=SUPPORT, secret_key=SECRET_KEY,
                        webhooks_allow_private=True)
    with session_scope(stack.engine) as s:
        acme = Client(name="Acme")
        s.add(acme)
        s.flush()
        s.add(ClientDomain(client_id=acme.id, domain="acme.example"))
        s.add(Contact(client_id=acme.id, first_name="Alice", last_name="Able", email="alice@acme.example"))
    add_webhook(stack.engine, receiver.base + "/psa", events=("ticket.created", "ticket.updated"))
    data = (f"From: Alice Able <alice@acme.example>\r\nTo: {SUPPORT}\r\nSubject: VPN down\r\n"
            "Message-ID: <vpn-1@acme.example>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\n"
            "The VPN does not connect since this morning.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", stack.port, timeout=10) as client:
        client.sendmail("alice@acme.example", [SUPPORT], data)
    (got,) = receiver.wait_for("/psa", 1, timeout=60)
    assert verify(SECRET, got.headers, got.body)
    body = json.loads(got.body)
    assert body["type"] == "ticket.created"
    data = body["data"]
    assert data["ticket"]["subject"] == "VPN down" and data["ticket"]["number"] == data["ticket"]["id"]
    assert data["client"]["name"] == "Acme" and data["contact"]["email"] == "alice@acme.example"
    assert data["inbound"]["message_id"] == "vpn-1@acme.example" and data["inbound"]["source"] == "smtp"
