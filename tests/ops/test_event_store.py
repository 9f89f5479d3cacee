"""Event metrics add up across processes through Redis, exactly as prometheus_client would count
them in one process; dead processes stop counting; a dead Redis never breaks the mail flow."""

from __future__ import annotations

import time

import pytest
import redis

from tests.conftest import free_port
from core import telemetry as metrics
from core.telemetry import (
    ROUTED,
    ROUTING_DURATION,
    SMTP_SESSIONS,
    LocalEventStore,
    RedisEventStore,
)

DURATIONS = [0.001, 0.004, 0.02, 0.02, 0.3, 0.7, 4.0, 75.0]


def samples(store) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in store.collect()
        for s in family.samples
    }


@pytest.fixture
def stores(redis_url, redis_ns):
    """A factory of Redis event stores, each standing for one process; closed at the end."""
    made: list[RedisEventStore] = []

    def make(**kwargs) -> RedisEventStore:
        store = RedisEventStore(redis_url, redis_ns, **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_two_processes_counts_add_up_to_what_one_process_would_count(stores):
    smtp_worker, other_worker, api = stores(), stores(), stores()
    local = LocalEventStore()
    for i, seconds in enumerate(DURATIONS):
        process = smtp_worker if i % 2 else other_worker
        for store in (process, local):
            store.observe(ROUTING_DURATION, ("ticket_created",), seconds)
            store.inc(ROUTED, ("smtp", "ticket_created"))
    got, expected = samples(api), samples(local)
    histogram = {k: v for k, v in expected.items() if k[0].startswith(ROUTING_DURATION.name)}
    assert histogram  # buckets, count and sum
    for key, value in histogram.items():
        assert got[key] == pytest.approx(value), key
    assert (
        got[
            (
                "ticketpost_routed_messages_total",
                (("outcome", "ticket_created"), ("source", "smtp")),
            )
        ]
        == 8
    )


def test_open_smtp_sessions_are_summed_over_live_processes_only(stores, redis_url):
    first, second, api = stores(), stores(), stores()
    first.gauge_add(SMTP_SESSIONS, +1)
    first.gauge_add(SMTP_SESSIONS, +1)
    second.gauge_add(SMTP_SESSIONS, +1)
    assert samples(api)[("ticketpost_smtp_sessions_active", ())] == 3

    # The first process dies without a goodbye: its heartbeat goes stale past the TTL.
    first._stop.set()
    stale = time.time() - first.heartbeat_ttl_s - 1
    redis.Redis.from_url(redis_url).zadd(first.processes_key, {first.process_id: stale})
    assert samples(api)[("ticketpost_smtp_sessions_active", ())] == 1

    second.gauge_add(SMTP_SESSIONS, -1)
    assert samples(api)[("ticketpost_smtp_sessions_active", ())] == 0


def test_a_process_that_shuts_down_withdraws_its_gauges(stores):
    worker, api = stores(), stores()
    worker.gauge_set(SMTP_SESSIONS, 4)
    assert samples(api)[("ticketpost_smtp_sessions_active", ())] == 4
    worker.close()
    assert samples(api)[("ticketpost_smtp_sessions_active", ())] == 0


def test_the_hooks_use_redis_when_it_is_configured(redis_url, redis_ns, monkeypatch, stores):
    monkeypatch.setenv("TICKETPOST_REDIS_URL", redis_url)
    monkeypatch.setenv("TICKETPOST_REDIS_NAMESPACE", redis_ns)
    from core.settings import reset_settings

    reset_settings()
    metrics.observe_routing("triaged", "imap:support", 0.2)
    metrics.smtp_reply("451 4.3.0 Please try again later")
    metrics.smtp_reply(250)
    metrics.rate_limited()
    got = samples(stores())  # another process reading the same namespace
    assert (
        got[
            (
                "ticketpost_routed_messages_total",
                (("outcome", "triaged"), ("source", "imap:support")),
            )
        ]
        == 1
    )
    assert got[("ticketpost_smtp_replies_total", (("code", "451"),))] == 1
    assert got[("ticketpost_smtp_replies_total", (("code", "250"),))] == 1
    assert got[("ticketpost_rate_limited_messages_total", ())] == 1


def test_a_dead_redis_never_breaks_the_mail_flow(monkeypatch):
    monkeypatch.setenv("TICKETPOST_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    from core.settings import reset_settings

    reset_settings()
    metrics.observe_routing("ticket_created", "smtp", 0.1)  # logged, not raised
    metrics.smtp_reply(250)
    metrics.smtp_session_delta(+1)
    metrics.worker_started(2)


def test_without_redis_the_hooks_count_in_this_process():
    metrics.observe_routing("ignored_bounce", "smtp", 0.01)
    metrics.smtp_session_delta(+1)
    got = samples(metrics.get_event_store())
    assert (
        got[
            (
                "ticketpost_routed_messages_total",
                (("outcome", "ignored_bounce"), ("source", "smtp")),
            )
        ]
        == 1
    )
    assert got[("ticketpost_routing_duration_seconds_count", (("outcome", "ignored_bounce"),))] == 1
    assert got[("ticketpost_smtp_sessions_active", ())] == 1


def test_a_failure_recorded_without_timing_counts_but_adds_no_duration():
    metrics.observe_routing("failed", "smtp", None)
    got = samples(metrics.get_event_store())
    assert (
        got[("ticketpost_routed_messages_total", (("outcome", "failed"), ("source", "smtp")))] == 1
    )
    assert ("ticketpost_routing_duration_seconds_count", (("outcome", "failed"),)) not in got


def test_after_a_failed_write_events_are_dropped_instead_of_waiting_on_redis_again(monkeypatch):
    from core import telemetry as events

    calls = []

    class DeadStore:
        def inc(self, *args):
            calls.append(args)
            raise ConnectionError("Redis is down")

    monkeypatch.setattr(events, "get_event_store", lambda settings=None: DeadStore())
    events.smtp_reply(250)
    events.smtp_reply(250)
    events.rate_limited()
    assert len(calls) == 1


def test_a_process_sends_its_counts_to_redis_summed_not_one_write_per_event(stores, redis_url):
    worker = stores(flush_interval_s=3600)  # only an explicit flush (or a reader) sends them
    for _ in range(100):
        worker.inc(ROUTED, ("smtp", "ticket_created"))
        worker.observe(ROUTING_DURATION, ("ticket_created",), 0.25)
    raw = redis.Redis.from_url(redis_url)
    field = '["smtp","ticket_created"]'
    assert raw.hget(worker.key(ROUTED), field) is None, "nothing written per event"
    worker.flush()
    assert int(raw.hget(worker.key(ROUTED), field)) == 100
    assert float(raw.hget(worker.key(ROUTING_DURATION), '["ticket_created","sum"]')) == pytest.approx(25.0)
    raw.close()
