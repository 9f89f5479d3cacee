"""The outbox and template endpoints: list and filter, retry, per-client templates checked on save."""

from __future__ import annotations

from models import OutboxItem, Ticket, utcnow
from models.db import session_scope
from tests.admin_api.conftest import make_client


def _rows(engine):
    """A ticket with a sent acknowledgement, a failed notice, and a pending webhook delivery."""
    with session_scope(engine) as s:
        ticket = Ticket(subject="Printer", status="open", channel="email")
        s.add(ticket)
        s.flush()
        now = utcnow()
        rows = [
            OutboxItem(kind="acknowledgement", status="sent", recipient="a@acme.com", ticket_id=ticket.id,
                       message_id="ack.1@msp.example", attempts=1, next_attempt_at=now, sent_at=now),
            OutboxItem(kind="notice", status="failed", recipient="b@acme.com", message_id="not.1@msp.example",
                       attempts=3, next_attempt_at=now, reason="gave up after 3 attempts: connection refused"),
            OutboxItem(kind="webhook", status="pending", target_id=7, payload={"type": "ticket.created"},
                       attempts=0, next_attempt_at=now),
        ]
        s.add_all(rows)
        s.flush()
        return ticket.id, [r.id for r in rows]


def test_the_outbox_lists_items_with_the_spec_fields_and_filters(admin, technician, api_engine):
    ticket_id, (ack, notice, hook) = _rows(api_engine)
    everything = technician.ok("GET", "/api/v1/outbox")
    assert everything["total"] == 3 and [i["id"] for i in everything["items"]] == [hook, notice, ack]
    item = everything["items"][2]
    for field in ("id", "kind", "status", "recipient", "ticket_id", "inbound_id", "message_id", "attempts", "reason"):
        assert field in item
    assert (item["kind"], item["status"], item["ticket_id"], item["message_id"]) == (
        "acknowledgement", "sent", ticket_id, "ack.1@msp.example")
    failed = admin.ok("GET", "/api/v1/outbox?status=failed")["items"]
    assert [i["id"] for i in failed] == [notice] and "connection refused" in failed[0]["reason"]
    assert [i["id"] for i in admin.ok("GET", "/api/v1/outbox?kind=webhook")["items"]] == [hook]
    assert [i["id"] for i in admin.ok("GET", f"/api/v1/outbox?ticket_id={ticket_id}")["items"]] == [ack]
    bad = admin.request("GET", "/api/v1/outbox?status=lost")
    assert bad.status_code == 422 and "status" in bad.text


def test_a_failed_item_is_retried_with_fresh_attempts_and_a_sent_one_is_not(admin, technician, api_engine):
    _ticket, (ack, notice, _hook) = _rows(api_engine)
    assert technician.request("POST", f"/api/v1/outbox/{notice}/retry").status_code == 403
    retried = admin.ok("POST", f"/api/v1/outbox/{notice}/retry", 202)
    assert retried["item"]["status"] == "pending" and retried["item"]["attempts"] == 0
    assert retried["item"]["message_id"] == "not.1@msp.example"  # a resend keeps its Message-ID
    again = admin.request("POST", f"/api/v1/outbox/{ack}/retry")
    assert again.status_code == 409 and "already sent" in again.json()["detail"]
    assert admin.request("POST", "/api/v1/outbox/999999/retry").status_code == 404


def test_replay_is_another_name_for_retry(admin, technician, api_engine):
    _ticket, (_ack, notice, _hook) = _rows(api_engine)
    assert technician.request("POST", f"/api/v1/outbox/{notice}/replay").status_code == 403
    replayed = admin.ok("POST", f"/api/v1/outbox/{notice}/replay", 202)
    assert replayed["item"]["status"] == "pending" and replayed["item"]["message_id"] == "not.1@msp.example"


def test_clients_acknowledge_by_default_and_can_switch_it_off(admin):
    client = make_client(admin)
    assert client["send_acknowledgements"] is True
    changed = admin.ok("PATCH", f"/api/v1/clients/{client['id']}", json={"send_acknowledgements": False})
    assert changed["send_acknowledgements"] is False


def test_a_client_template_defaults_then_overrides_then_defaults_again(admin, technician):
    client = make_client(admin)
    url = f"/api/v1/clients/{client['id']}/templates/acknowledgement"
    default = technician.ok("GET", url)
    assert default["is_default"] is True and "ticket.number" in default["subject"]
    body = {"subject": "[#{{ ticket.number }}] got it: {{ subject }}",
            "body_text": "Hi {{ contact.first_name }}, ticket {{ ticket.number }} for {{ client.name }}.",
            "body_html": "<p>Hi {{ contact.first_name }}</p>"}
    assert technician.request("PUT", url, json=body).status_code == 403
    saved = admin.ok("PUT", url, json=body)
    assert saved["is_default"] is False and saved["subject"] == body["subject"]
    assert admin.ok("GET", url)["body_text"] == body["body_text"]
    admin.ok("DELETE", url, 204)
    assert admin.ok("GET", url)["is_default"] is True


def test_a_template_mistake_is_a_422_naming_the_part_when_saved(admin):
    client = make_client(admin)
    url = f"/api/v1/clients/{client['id']}/templates/notice_not_primary"
    cases = {
        "body_text": {"subject": "ok", "body_text": "{% if %}broken"},  # does not compile
        "subject": {"subject": "{{ no_such_variable }}", "body_text": "ok"},  # unknown name
        "body_html": {"subject": "ok", "body_text": "ok", "body_html": "{{ ''.__class__.__mro__ }}"},  # sandbox
    }
    for part, body in cases.items():
        response = admin.request("PUT", url, json=body)
        assert response.status_code == 422, (part, response.text)
        assert part in str(response.json()["detail"]), response.text
    assert admin.ok("GET", url)["is_default"] is True  # nothing half-applied
    assert admin.request("PUT", f"/api/v1/clients/{client['id']}/templates/greeting", json=cases["subject"]).status_code == 422
    assert admin.request("GET", "/api/v1/clients/999999/templates/acknowledgement").status_code == 404
