"""The webhooks API (SPEC §11): subscriptions, secrets shown once, SSRF guard, roles, deliveries,
replay and the test event, delivered to a real receiver on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from core.settings import Settings
from routing.webhooks.delivery import WebhookRunner
from routing.webhooks.signing import verify
from tests.admin_api.conftest import ADMIN_TOKEN, SECRET_KEY, Api, TestClient


@pytest.fixture
def settings(pg_url) -> Settings:
    return Settings(database_url=pg_url, admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY, webhooks_allow_private=True,
                    webhooks_min_backoff_s=0)


def _deliver(api_engine, settings) -> None:
    runner = WebhookRunner(engine=api_engine, settings=settings)
    runner.run_once()
    assert runner.sender.drain(30)


def _create(admin: Api, url: str, **extra) -> dict:
    return admin.ok("POST", "/api/v1/webhooks", 201, json={"url": url, "events": ["ticket.created"], **extra})


def test_a_generated_secret_is_shown_once_and_never_again(admin, receiver):
    made = _create(admin, receiver.base + "/a")
    assert made["secret"].startswith("whsec_") and made["events"] == ["ticket.created"] and made["enabled"]
    again = admin.ok("GET", f"/api/v1/webhooks/{made['id']}")
    assert again["secret"] is None
    listed = admin.ok("GET", "/api/v1/webhooks")
    assert listed["total"] == 1 and listed["items"][0]["secret"] is None
    given = _create(admin, receiver.base + "/b", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert given["secret"] is None  # a secret the caller chose is not echoed


def test_technicians_read_webhooks_but_may_not_change_them(admin, technician, receiver):
    made = _create(admin, receiver.base + "/a")
    path = f"/api/v1/webhooks/{made['id']}"
    assert technician.ok("GET", "/api/v1/webhooks")["total"] == 1
    assert technician.ok("GET", path)["id"] == made["id"]
    assert technician.ok("GET", path + "/deliveries")["total"] == 0
    assert technician.post("/api/v1/webhooks", json={"url": receiver.base, "events": ["ticket.created"]}).status_code == 403
    assert technician.patch(path, json={"enabled": False}).status_code == 403
    assert technician.post(path + "/test").status_code == 403
    assert technician.post(path + "/deliveries/1/replay").status_code == 403
    assert technician.delete(path).status_code == 403
    assert admin.ok("GET", path)["enabled"] is True


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/latest",
                                 "http://10.1.2.3/", "http://[::1]:8080/", "http://[::ffff:192.168.0.1]/",
                                 "http://100.64.0.1/"])
def test_private_and_loopback_targets_are_refused_without_the_setting(api_engine, pg_url, url):
    from admin_api.app import create_app

    strict = Settings(database_url=pg_url, admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY)
    with TestClient(create_app(engine=api_engine, settings=strict)) as client:
        response = Api(client, ADMIN_TOKEN).post("/api/v1/webhooks", json={"url": url, "events": ["ticket.created"]})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][-1] == "url" and "TICKETPOST_WEBHOOKS_ALLOW_PRIVATE" in error["msg"]


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/x", "events": ["ticket.created"]}, "url"),
    ({"url": "https://user:pw@example.com/x", "events": ["ticket.created"]}, "url"),
    ({"url": "https://example.com/x", "events": []}, "events"),
    ({"url": "https://example.com/x", "events": ["ticket.deleted"]}, "events"),
    ({"url": "https://example.com/x", "events": ["ticket.created"], "secret": "not-whsec"}, "secret"),
])
def test_bad_input_is_a_422_naming_the_field(admin, body, field):
    response = admin.post("/api/v1/webhooks", json=body)
    assert response.status_code == 422, response.text
    assert any(field in [str(p) for p in e["loc"]] for e in response.json()["detail"]), response.text


def test_the_test_event_is_delivered_signed_listed_with_its_attempt_and_replayable(admin, receiver, api_engine,
                                                                                    settings):
    made = _create(admin, receiver.base + "/t")
    path = f"/api/v1/webhooks/{made['id']}"
    queued = admin.ok("POST", path + "/test", 202)
    assert queued["event"] == "webhook.test" and queued["status"] == "pending"
    _deliver(api_engine, settings)
    (got,) = receiver.wait_for("/t", 1)
    assert verify(made["secret"], got.headers, got.body)
    assert json.loads(got.body)["type"] == "webhook.test"
    (delivery,) = admin.ok("GET", path + "/deliveries")["items"]
    assert delivery["status"] == "sent" and delivery["webhook_message_id"] == got.headers["webhook-id"]
    (attempt,) = delivery["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["duration_ms"] >= 0 and attempt["error"] is None
    replayed = admin.ok("POST", f"{path}/deliveries/{delivery['id']}/replay", 202)
    assert replayed["status"] == "pending" and replayed["attempts"] == 0
    _deliver(api_engine, settings)
    first, second = receiver.wait_for("/t", 2)
    assert second.headers["webhook-id"] == first.headers["webhook-id"] and second.body == first.body
    assert admin.get(f"{path}/deliveries/999999/replay").status_code == 405
    assert admin.post(f"{path}/deliveries/999999/replay").status_code == 404


def test_a_rotation_keeps_the_old_secret_signing_alongside_the_new_one(admin, receiver, api_engine, settings):
    made = _create(admin, receiver.base + "/r")
    path = f"/api/v1/webhooks/{made['id']}"
    rotated = admin.ok("PATCH", path, json={"rotate": True})
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    admin.ok("POST", path + "/test", 202)
    _deliver(api_engine, settings)
    (got,) = receiver.wait_for("/r", 1)
    assert len(got.headers["webhook-signature"].split()) == 2
    assert verify(made["secret"], got.headers, got.body) and verify(rotated["secret"], got.headers, got.body)
    assert admin.patch(path, json={"rotate": True, "secret": rotated["secret"]}).status_code == 422


def test_a_disabled_webhook_gets_no_test_and_can_be_deleted(admin, receiver):
    made = _create(admin, receiver.base + "/d", enabled=False)
    path = f"/api/v1/webhooks/{made['id']}"
    assert admin.post(path + "/test").status_code == 409
    assert admin.ok("PATCH", path, json={"enabled": True, "events": ["inbound.failed", "outbox.failed"]})["events"] == [
        "inbound.failed", "outbox.failed"]
    assert admin.delete(path).status_code == 204
    assert admin.get(path).status_code == 404


def test_without_a_secret_key_webhooks_still_sign_and_with_one_the_secret_is_encrypted(api_engine, pg_url, receiver,
                                                                                       admin):
    from sqlalchemy import select

    from admin_api.app import create_app
    from models import Webhook
    from models.db import session_scope

    keyless = Settings(database_url=pg_url, admin_token=ADMIN_TOKEN, webhooks_allow_private=True,
                       webhooks_min_backoff_s=0)
    with TestClient(create_app(engine=api_engine, settings=keyless)) as client:
        made = Api(client, ADMIN_TOKEN).ok("POST", "/api/v1/webhooks", 201,
                                           json={"url": receiver.base + "/k", "events": ["ticket.created"]})
        Api(client, ADMIN_TOKEN).ok("POST", f"/api/v1/webhooks/{made['id']}/test", 202)
    _deliver(api_engine, keyless)
    (got,) = receiver.wait_for("/k", 1)
    assert verify(made["secret"], got.headers, got.body)
    encrypted = _create(admin, receiver.base + "/e")  # the app of the fixtures has a SECRET_KEY
    with session_scope(api_engine) as s:
        stored = dict(s.execute(select(Webhook.id, Webhook.secret_encrypted)).all())
    assert bytes(stored[made["id"]]) == b"plain:" + made["secret"].encode()
    assert encrypted["secret"].encode() not in bytes(stored[encrypted["id"]])
