"""The dramatiq actor that routes one stored inbound message, given its id.

The actor takes only the id, opens its own session (inside the pipeline), and is idempotent:
routing an id that is already routed is a no-op, so a message delivered twice by the queue, the
sweeper or a replay never creates a second ticket. Its retry policy is declared here, where it is
defined, in dramatiq's own terms: infrastructure faults (database or broker hiccups) are retried
with exponential backoff (``max_retries``, ``min_backoff``, ``max_backoff``); an unknown id is not
retried (``throws``); when the retries run out, dramatiq sends the failed message to
``route_inbound_failed`` (``on_retry_exhausted``), which records the error on the inbound message
as ``failed``, so an operator can replay it later (``ticketpost replay``). The failed message
itself goes to dramatiq's dead-letter queue, as every message that failed for good does.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.brokers.stub import StubBroker

from routing import batch, pipeline
from routing.outbox.dispatcher import send_outbox
from routing.webhooks import delivery as _webhooks  # noqa: F401 - registers the webhook kind with the dispatcher

log = logging.getLogger(__name__)

#: Retry policy of routing, declared at the actor (``TICKETPOST_ROUTE_MAX_RETRIES`` and the
#: backoff settings override these defaults when the broker is set up).
MAX_RETRIES = 5
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 60_000

# Actors must be declared on some broker when defined; routing.broker.setup_broker rebinds them
# to the process's real broker (Redis or the in-process stub) via bind_actors.
_IMPORT_BROKER = StubBroker()


def _route(inbound_id: int) -> None:
    """Route inbound message ``inbound_id``; a fault raises, and the queue retries it."""
    try:
        pipeline.route_inbound(int(inbound_id))
    except pipeline.InboundNotFound:
        # Nothing stored under this id (deleted, or a stray message): retrying cannot help
        # (``throws``: dramatiq does not retry it).
        log.warning("no inbound message to route", extra={"inbound_id": inbound_id, "outcome": None})
        raise
    except Exception as exc:
        log.warning(
            "routing attempt failed; the queue retries it while retries are left",
            extra={
                "inbound_id": inbound_id,
                "outcome": "retrying",  # not final: when retries run out, _route_failed records it
                "error": f"{type(exc).__name__}: {exc}",
            },
        )
        raise


def _route_failed(message: dict, retries: dict) -> None:
    """Record ``failed`` on an inbound message whose routing retries ran out (``on_retry_exhausted``).

    ``message`` is the failed route_inbound message (its ``options`` hold the last traceback);
    if recording fails too (database down), this raises and is retried; meanwhile the row stays
    ``received`` and the sweeper hands it over again. Nothing is lost either way.
    """
    (inbound_id,) = message["args"]
    error = (message.get("options", {}).get("traceback") or "").strip().splitlines()
    attempts = int(retries.get("retries", 0)) + 1
    reason = f"routing failed after {attempts} attempts: {error[-1] if error else 'unknown error'}"
    log.error("routing failed for good", extra={"inbound_id": inbound_id, "outcome": "failed", "error": reason})
    pipeline.record_failure(int(inbound_id), error=reason)


#: Where routing's actors live and how they retry (declared once for all three).
_ROUTING_POLICY = dict(
    queue_name="inbound",
    broker=_IMPORT_BROKER,
    max_retries=MAX_RETRIES,
    min_backoff=MIN_BACKOFF_MS,
    max_backoff=MAX_BACKOFF_MS,
)

route_inbound = dramatiq.actor(
    _route,
    actor_name="route_inbound",
    **_ROUTING_POLICY,
    throws=(pipeline.InboundNotFound,),
    on_retry_exhausted="route_inbound_failed",
)

route_inbound_failed = dramatiq.actor(
    _route_failed,
    actor_name="route_inbound_failed",
    **_ROUTING_POLICY,
)


def _route_batch(inbound_ids: list[int]) -> None:
    """Route several ready ids in one transaction (routing.batch); any that failed go back alone.

    A message whose savepoint was rolled back is put back on the queue as a single-id
    ``route_inbound`` message, which has the retries and the final ``failed`` of one message. When
    the batch's transaction itself fails (nothing committed), every id goes back alone the same
    way. Only when the queue cannot take them either does this raise, so dramatiq retries the
    batch; the sweeper re-sends whatever is still unrouted after that.
    """
    ids = [int(i) for i in inbound_ids]
    try:
        again = list(batch.route_batch(ids).failed)
    except Exception as exc:  # noqa: BLE001 - nothing of the batch committed: each id alone
        log.warning(
            "routing a batch failed; its ids are retried alone",
            extra={"inbound_ids": ids, "outcome": "retrying", "error": f"{type(exc).__name__}: {exc}"},
        )
        again = ids
    for inbound_id in again:
        route_inbound.send(inbound_id)


route_inbound_batch = dramatiq.actor(
    _route_batch,
    actor_name="route_inbound_batch",
    **_ROUTING_POLICY,
)

#: Every actor of ticketpost, rebound together by bind_actors.
ACTORS = (route_inbound, route_inbound_failed, route_inbound_batch, send_outbox)


def bind_actors(broker: dramatiq.Broker, settings=None) -> None:
    """Declare our actors on ``broker`` (and take the retry policy from ``settings`` if given)."""
    for actor in ACTORS:
        actor.broker = broker
        broker.declare_actor(actor)
    if settings is not None:
        for actor in (route_inbound, route_inbound_batch):
            actor.options["max_retries"] = settings.route_max_retries
            actor.options["min_backoff"] = settings.route_min_backoff_ms
            actor.options["max_backoff"] = settings.route_max_backoff_ms
