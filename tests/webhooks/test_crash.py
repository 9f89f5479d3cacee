"""A dispatcher killed (-9) in the middle of a delivery: the delivery is made again (at least once),
with the same webhook-id, by another worker process after the lease."""

from __future__ import annotations

import signal

from sqlalchemy import select

from models import OutboxItem
from models.db import make_engine, session_scope
from routing.webhooks.events import write_event
from routing.webhooks.signing import verify
from tests.ingest.smtp_fixtures import stop_process, ticketpost_process, wait_until
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
    first = ticketpost_process(["worker", "--threads", "1"], env, tmp_path / "worker1.log")
    try:
        receiver.wait_for("/crash", 1, timeout=60)
        with session_scope(engine) as s:
            claimed = s.get(OutboxItem, row_id)
            assert (claimed.status, claimed.attempts) == ("pending", 1)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            stop_process(first, signal.SIGKILL)
    receiver.hanging.discard("/crash")
    receiver.release()
    second = ticketpost_process(["worker", "--threads", "1"], env, tmp_path / "worker2.log")
    try:
        def sent() -> bool:
            with session_scope(engine) as s:
                return s.scalar(select(OutboxItem.status).where(OutboxItem.id == row_id)) == "sent"

        wait_until(sent, timeout=60, what="the delivery to be made again by the second worker")
    finally:
        stop_process(second)
    got = receiver.at("/crash")
    assert len(got) >= 2
    with session_scope(engine) as s:
        row = s.get(OutboxItem, row_id)
        assert row.attempts == 2 and row.last_status_code == 200
    assert {r.headers["webhook-id"] for r in got} == {row.message_id}
    assert all(verify(SECRET, r.headers, r.body) for r in got)
    assert len({r.body for r in got}) == 1
    engine.dispose()
