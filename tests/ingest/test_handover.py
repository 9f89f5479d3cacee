"""The hand-over from storage to routing: enqueue, the actor's retries, replay and the sweeper."""

from __future__ import annotations

import logging

import pytest

from ingest.store import store_inbound
from ingest.sweeper import Sweeper, stale_inbound_ids
from routing.broker import enqueue, setup_broker, start_worker, stop_worker
from routing.queues import routing_queue_depth as queue_depth
from routing.replay import InvalidReplayFilter, replay_inbound, replay_report
from tests.conftest import free_port
from tests.ingest.smtp_fixtures import (
    assert_each_routed_once,
    configure,
    count_inbound,
    inbound_rows,
    message,
    wait_until,
)


@pytest.fixture
def embedded(monkeypatch, sqlite_url, sqlite_engine):
    """Settings on a fresh SQLite database with the in-process queue and fast retries."""
    settings = configure(
        monkeypatch, database_url=sqlite_url, rate_limit_per_hour=0, route_max_retries=2,
        route_min_backoff_ms=10, route_max_backoff_ms=20,
    )
    setup_broker(settings)
    return settings


def store(engine, n: int) -> int:
    return store_inbound(raw=message(n), source="smtp", envelope_from="alice@acme.example",
                         envelope_to=["help@msp.example"], engine=engine)


def test_enqueue_reports_a_broker_that_is_down_instead_of_raising(monkeypatch, caplog):
    settings = configure(monkeypatch, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    setup_broker(settings)
    with caplog.at_level(logging.WARNING, logger="routing.broker"):
        assert enqueue(42) is False
    assert "sweeper will hand the message over later" in caplog.text
    configure(monkeypatch, redis_url="")


def test_a_routing_fault_is_retried_then_recorded_as_failed_and_replay_routes_it(
    embedded, sqlite_engine, monkeypatch
):
    from routing import pipeline

    real_route = pipeline.route_inbound
    calls = []

    def flaky(inbound_id, **kwargs):
        calls.append(inbound_id)
        raise ConnectionError("database connection reset")

    monkeypatch.setattr(pipeline, "route_inbound", flaky)
    inbound_id = store(sqlite_engine, 1)
    worker = start_worker(1, embedded)
    try:
        assert enqueue(inbound_id)
        wait_until(lambda: count_inbound(sqlite_engine, status="failed") == 1, what="failure")
        assert len(calls) == 1 + embedded.route_max_retries, "the first try plus every retry"
        row = inbound_rows(sqlite_engine)[0]
        assert row.outcome == "failed"
        assert "ConnectionError: database connection reset" in row.reason
        assert f"after {len(calls)} attempts" in row.reason
        assert b"printer number 1 is jammed" in row.raw, "the raw message is kept"

        monkeypatch.setattr(pipeline, "route_inbound", real_route)
        assert replay_inbound(status="failed") == [inbound_id]
        wait_until(lambda: count_inbound(sqlite_engine, status="routed") == 1, what="replay")
    finally:
        stop_worker(worker, 10)
    assert_each_routed_once(sqlite_engine, 1)


def test_replay_hands_over_failed_and_unrouted_messages_and_leaves_routed_ones_alone(
    embedded, sqlite_engine
):
    from routing.pipeline import record_failure, route_inbound

    routed, failed, unrouted = (store(sqlite_engine, n) for n in (1, 2, 3))
    route_inbound(routed, engine=sqlite_engine, settings=embedded)
    record_failure(failed, error="boom", engine=sqlite_engine)

    report = replay_report(inbound_ids=[routed, failed, unrouted, 999], engine=sqlite_engine)
    assert report.replayed == [failed, unrouted]
    assert report.skipped_routed == [routed]
    assert report.missing == [999]
    reset = {r.id: r for r in inbound_rows(sqlite_engine)}[failed]
    assert (reset.status, reset.outcome, reset.reason) == ("received", None, None)
    assert queue_depth().ready == 2, "only the replayed ids were enqueued"


def test_replay_without_arguments_means_every_failed_message(embedded, sqlite_engine):
    from routing.pipeline import record_failure

    failed, unrouted = store(sqlite_engine, 1), store(sqlite_engine, 2)
    record_failure(failed, error="boom", engine=sqlite_engine)
    assert replay_inbound(engine=sqlite_engine) == [failed]
    assert unrouted not in replay_inbound(status="failed", engine=sqlite_engine)


def test_replay_refuses_an_unknown_status(embedded, sqlite_engine):
    with pytest.raises(InvalidReplayFilter, match="unknown status"):
        replay_inbound(status="stuck", engine=sqlite_engine)


def test_the_sweeper_hands_over_messages_stored_but_never_enqueued(embedded, sqlite_engine):
    ids = [store(sqlite_engine, n) for n in range(5)]  # stored, hand-over "lost"
    sweeper = Sweeper(engine=sqlite_engine, grace_s=0, interval_s=60)
    assert stale_inbound_ids(grace_s=3600, engine=sqlite_engine) == [], "too young to sweep"
    worker = start_worker(2, embedded)
    try:
        assert sweeper.sweep_once() == ids
        wait_until(lambda: count_inbound(sqlite_engine, status="routed") == 5, what="routing")
    finally:
        stop_worker(worker, 10)
    assert sweeper.sweep_once() == [], "routed messages are not swept"
    assert_each_routed_once(sqlite_engine, 5)


def test_the_sweeper_re_sends_an_id_at_most_once_per_grace_period(embedded, sqlite_engine):
    import time

    from routing.broker import get_broker

    inbound_id = store(sqlite_engine, 1)
    sweeper = Sweeper(engine=sqlite_engine, grace_s=0.3, interval_s=60)
    time.sleep(0.35)
    assert sweeper.sweep_once() == [inbound_id]
    assert sweeper.sweep_once() == [], "not again within the grace period"
    get_broker().flush_all()  # the queue forgets it (as an in-process queue does in a crash)
    assert sweeper.sweep_once() == [], "not again within the grace period"
    time.sleep(0.35)
    assert sweeper.sweep_once() == [inbound_id], "again once the grace period has passed"
    time.sleep(0.35)
    assert sweeper.sweep_once() == [], "the next time only after twice the grace period"
    time.sleep(0.3)
    assert sweeper.sweep_once() == [inbound_id]


def test_the_sweeper_hands_over_lost_messages_while_the_queue_is_busy(embedded, sqlite_engine):
    import time

    lost = [store(sqlite_engine, n) for n in range(3)]  # committed, hand-over lost
    for n in range(3, 8):  # meanwhile the queue is busy with other messages (no worker runs)
        assert enqueue(store(sqlite_engine, n))
    assert queue_depth().ready == 5
    sweeper = Sweeper(engine=sqlite_engine, grace_s=0.2, interval_s=60)
    sweeper.busy_batch = 2
    time.sleep(0.25)
    # every stale message is due (the queued ones too: the sweeper cannot tell them apart), but
    # a busy queue gets at most busy_batch re-sends per round, oldest first
    assert sweeper.sweep_once() == lost[:2]
    assert sweeper.sweep_once() == [lost[2], lost[2] + 1]
    assert not sweeper.more_waiting, "a busy queue is not swept again within the second"
    # each round's re-sends travel together, as one batch message (routing.batch)
    assert queue_depth().ready == 7
    assert sorted(queued_ids()) == sorted(lost + list(range(lost[2] + 1, lost[2] + 6)) + [lost[2] + 1])


def queued_ids() -> list[int]:
    """Every inbound id waiting in the in-process routing queue (single-id and batch messages)."""
    from dramatiq import Message

    from routing.broker import QUEUE_NAME, get_broker

    ids: list[int] = []
    for raw in list(get_broker().queues[QUEUE_NAME].queue):
        message = Message.decode(raw)
        ids += message.args[0] if message.actor_name == "route_inbound_batch" else [message.args[0]]
    return ids


def test_the_hand_over_gives_a_group_commits_ids_to_the_queue_as_one_batch(embedded):
    from dramatiq import Message

    from ingest.handover import HandOver
    from routing.broker import QUEUE_NAME, get_broker

    hand_over = HandOver()
    hand_over.put([11, 12, 13])
    hand_over.close(10)
    messages = [Message.decode(raw) for raw in list(get_broker().queues[QUEUE_NAME].queue)]
    assert [(m.actor_name, m.args) for m in messages] == [("route_inbound_batch", ([11, 12, 13],))]


def test_enqueue_many_splits_ids_into_batches_and_sends_a_lone_id_as_itself(embedded):
    from routing.broker import enqueue_many

    assert enqueue_many(list(range(1, 6)), batch_size=2) == []
    from dramatiq import Message

    from routing.broker import QUEUE_NAME, get_broker

    messages = [Message.decode(raw) for raw in list(get_broker().queues[QUEUE_NAME].queue)]
    assert [(m.actor_name, m.args) for m in messages] == [
        ("route_inbound_batch", ([1, 2],)), ("route_inbound_batch", ([3, 4],)), ("route_inbound", (5,))]
