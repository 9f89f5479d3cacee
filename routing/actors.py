"""The dramatiq actor that routes one stored inbound message, given its id.

The actor takes only the id, opens its own session (inside the pipeline), and is idempotent:
routing an id that is already routed is a no-op, so a message delivered twice by the queue, the
sweeper or a replay never creates a second ticket. Its retry policy is declared here, where it is
defined: infrastructure faults (database or broker hiccups) are retried with exponential backoff;
on the last allowed attempt the error is recorded on the inbound message as ``failed`` with the
error as its reason, so an operator can replay it later (``ticketpost replay``).
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage

from routing.outbox.dispatcher import send_outbox

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
    """Route inbound message ``inbound_id``; on the last retry record the fault, do not raise."""
    from routing import pipeline

    try:
        pipeline.route_inbound(int(inbound_id))
    except pipeline.InboundNotFound:
        # Nothing stored under this id (deleted, or a stray message): retrying cannot help.
        log.warning(
            "no inbound message to route", extra={"inbound_id": inbound_id, "outcome": None}
        )
    except Exception as exc:
        if not _last_attempt():
            log.warning(
                "routing failed; will retry",
                extra={
                    "inbound_id": inbound_id,
                    "outcome": "retrying",  # not final: the queue tries again after a backoff
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            raise
        reason = f"routing failed after {_attempts()} attempts: {type(exc).__name__}: {exc}"
        log.error(
            "routing failed for good",
            extra={"inbound_id": inbound_id, "outcome": "failed", "error": reason},
        )
        # If recording fails too (database down), this raises: the row stays ``received`` and
        # the sweeper hands it over again later. Nothing is lost either way.
        pipeline.record_failure(int(inbound_id), error=reason)


def _attempts() -> int:
    message = CurrentMessage.get_current_message()
    return 1 + int(message.options.get("retries", 0)) if message is not None else 1


def _last_attempt() -> bool:
    """True when the Retries middleware will not retry the current message again."""
    message = CurrentMessage.get_current_message()
    if message is None:  # called directly, not through a worker: no retries will follow
        return True
    retries = int(message.options.get("retries", 0))
    max_retries = message.options.get("max_retries", route_inbound.options.get("max_retries"))
    return max_retries is not None and retries >= int(max_retries)


route_inbound = dramatiq.actor(
    _route,
    actor_name="route_inbound",
    queue_name="inbound",
    broker=_IMPORT_BROKER,
    max_retries=MAX_RETRIES,
    min_backoff=MIN_BACKOFF_MS,
    max_backoff=MAX_BACKOFF_MS,
)

#: Every actor of ticketpost, rebound together by bind_actors.
ACTORS = (route_inbound, send_outbox)


def bind_actors(broker: dramatiq.Broker, settings=None) -> None:
    """Declare our actors on ``broker`` (and take the retry policy from ``settings`` if given)."""
    for actor in ACTORS:
        actor.broker = broker
        broker.declare_actor(actor)
    if settings is not None:
        route_inbound.options["max_retries"] = settings.route_max_retries
        route_inbound.options["min_backoff"] = settings.route_min_backoff_ms
        route_inbound.options["max_backoff"] = settings.route_max_backoff_ms
