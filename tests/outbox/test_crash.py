"""A dispatcher killed (-9) in the middle of a send: the row is sent again with its Message-ID."""

from __future__ import annotations

from models import OutboxItem
from models.db import make_engine, session_scope
from tests.ingest.smtp_fixtures import wait_until
from tests.outbox.crash import kill_9_in_flight, sent_by_next_worker
from tests.outbox.test_dispatcher import _ticket_and_ack


def test_kill_9_mid_send_sends_again_with_the_same_message_id(database_url, redis_url, redis_namespace, sink,
                                                              tmp_path):
    engine = make_engine(database_url)
    row_id = _ticket_and_ack(engine)
    env = {
        "TICKETPOST_DATABASE_URL": database_url,
        "TICKETPOST_REDIS_URL": redis_url,
        "TICKETPOST_REDIS_NAMESPACE": redis_namespace,
        "TICKETPOST_OUTBOUND_URL": sink.url,
        "TICKETPOST_OUTBOUND_CA_FILE": str(sink.cert),
        "TICKETPOST_REPLY_FROM": "help@msp.example",
        "TICKETPOST_OUTBOX_POLL_INTERVAL_S": "0.2",
        "TICKETPOST_OUTBOX_LEASE_S": "3",
        "TICKETPOST_BROKER_HEARTBEAT_TIMEOUT_MS": "2000",
        "TICKETPOST_BROKER_MAINTENANCE_CHANCE": "1",
        "TICKETPOST_WORKER_POLL_MS": "50",
    }
    sink.hold.set()  # the first send reaches the end of DATA and waits there for its answer
    kill_9_in_flight(engine, row_id, env, tmp_path / "worker1.log", threads=2, in_flight=lambda: wait_until(
        sink.in_data.is_set, timeout=60, what="the dispatcher to be in the middle of a send"))
    sink.hold.clear()  # the server side of the dead session finishes; the client never heard 250
    sent_by_next_worker(engine, row_id, env, tmp_path / "worker2.log", threads=2,
                        what="the row to be sent again by the second dispatcher")
    with session_scope(engine) as s:
        row = s.get(OutboxItem, row_id)
        assert row.attempts == 2
    ids = {m.message["Message-ID"] for m in sink.messages}
    assert ids == {f"<{row.message_id}>"}  # at least once, and every copy carries the same Message-ID
    assert len(sink.messages) >= 1
    engine.dispose()
