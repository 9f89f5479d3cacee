"""A dispatcher killed (-9) in the middle of a delivery: the delivery is made again (at least once),
with the same webhook-id, by another worker process after the lease."""

from __future__ import annotations

from models import OutboxItem
from models.db import make_engine, session_scope
from routing.webhooks.events import write_event
from routing.webhooks.signing import verify
from tests.outbox.crash import kill_9_in_flight, sent_by_next_worker
from tests.webhooks.conftest import SECRET, SECRET_KEY, add_webhook


def test_kill_9_mid_delivery_delivers_again_with_the_same_webhook_id(database_url, redis_url, redis_namespace,
                                                                      receiver, tmp_path):
    engine = make_engine(database_url)
    add_webhook(engine, receiver.base + "/crash")
    with engine.begin() as db:
        (row_id,) = write_event(db, "ticket.created", {"ticket": {"id": 7, "number": 7}})
    env = {
        "TICKETPOST_DATABASE_URL": database_url,
        "TICKETPOST_REDIS_URL": redis_url,
        "TICKETPOST_REDIS_NAMESPACE": redis_namespace,
        "TICKETPOST_SECRET_KEY": SECRET_KEY,
        "TICKETPOST_WEBHOOKS_ALLOW_PRIVATE": "true",
        "TICKETPOST_WEBHOOKS_READ_TIMEOUT_S": "60",
        "TICKETPOST_WEBHOOKS_POLL_INTERVAL_S": "0.2",
        "TICKETPOST_OUTBOX_LEASE_S": "3",
        "TICKETPOST_BROKER_HEARTBEAT_TIMEOUT_MS": "2000",
        "TICKETPOST_BROKER_MAINTENANCE_CHANCE": "1",
        "TICKETPOST_WORKER_POLL_MS": "50",
    }
    receiver.hanging.add("/crash")  # the first delivery arrives and gets no answer
    kill_9_in_flight(engine, row_id, env, tmp_path / "worker1.log", threads=1,
                     in_flight=lambda: receiver.wait_for("/crash", 1, timeout=60))
    receiver.hanging.discard("/crash")
    receiver.release()
    sent_by_next_worker(engine, row_id, env, tmp_path / "worker2.log", threads=1,
                        what="the delivery to be made again by the second worker")
    got = receiver.at("/crash")
    assert len(got) >= 2
    with session_scope(engine) as s:
        row = s.get(OutboxItem, row_id)
        assert row.attempts == 2 and row.last_status_code == 200
    assert {r.headers["webhook-id"] for r in got} == {row.message_id}
    assert all(verify(SECRET, r.headers, r.body) for r in got)
    assert len({r.body for r in got}) == 1
    engine.dispose()
