"""The pipeline's one outcome-recording place feeds the metrics, once per committed outcome."""

from __future__ import annotations

from routing.pipeline import record_failure, route_inbound
from tests.ops.helpers import store
from core.telemetry import get_event_store


def counted() -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in get_event_store().collect()
        for s in family.samples
    }


def routed(outcome: str, source: str = "smtp") -> float | None:
    return counted().get(
        ("ticketpost_routed_messages_total", (("outcome", outcome), ("source", source)))
    )


def timed(outcome: str) -> float | None:
    return counted().get(("ticketpost_routing_duration_seconds_count", (("outcome", outcome),)))


def test_a_routed_message_is_counted_and_timed_once_even_when_routed_again(engine):
    inbound_id = store(engine, "someone@nowhere.example", "hello")
    result = route_inbound(inbound_id, engine=engine)
    assert (routed(result.outcome), timed(result.outcome)) == (1, 1)

    route_inbound(inbound_id, engine=engine)  # idempotent: nothing new is recorded
    assert (routed(result.outcome), timed(result.outcome)) == (1, 1)


def test_a_failure_recorded_after_the_last_retry_is_counted_without_a_duration(engine):
    inbound_id = store(engine, "someone@nowhere.example", "hello", source="imap:support")
    record_failure(
        inbound_id, error="OperationalError: server closed the connection", engine=engine
    )
    assert routed("failed", source="imap:support") == 1
    assert timed("failed") is None
