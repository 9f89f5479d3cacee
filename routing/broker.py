"""The hand-over queue between ingestion and routing: only inbound ids travel on it.

Two shapes, one code path:

* ``TICKETPOST_REDIS_URL`` set: a dramatiq ``RedisBroker`` in the key namespace
  ``TICKETPOST_REDIS_NAMESPACE``; ``ticketpost worker`` processes consume it and scale out.
* unset (the embedded default): a dramatiq ``StubBroker`` (in-memory queues) consumed by an
  in-process ``dramatiq.Worker`` started with :func:`start_worker`. Its queue lives in memory, so a
  crash forgets it; that loses nothing, because the database row of the inbound message is the
  source of truth and the sweeper (``ingest.sweeper``) re-sends stored but unrouted ids.

:func:`enqueue` never raises: when the broker is unreachable it logs and returns ``False``; the
message is already committed and the sweeper hands it over once the broker is back.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage

from core import telemetry
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: The one queue routing work travels on.
QUEUE_NAME = "inbound"
#: The queue of the outbox dispatcher (routing.outbox.dispatcher.QUEUE_NAME), consumed by the same workers.
OUTBOX_QUEUE = "outbox"

_lock = threading.Lock()
_broker: dramatiq.Broker | None = None


class WorkerMetrics(dramatiq.Middleware):
    """Counts this process as a live routing worker from boot to shutdown (``ticketpost_workers``).

    In the distributed mode the count is a per-process gauge in Redis kept alive by a heartbeat,
    so a worker that dies without shutting down stops counting after the heartbeat TTL.
    """

    def after_worker_boot(self, broker, worker) -> None:
        telemetry.worker_started(getattr(worker, "worker_threads", 1))

    def before_worker_shutdown(self, broker, worker) -> None:
        telemetry.worker_stopped()


def setup_broker(settings: Settings | None = None) -> dramatiq.Broker:
    """Create the process's broker from ``settings``, make it dramatiq's global and bind our actors.

    Calling it again replaces the previous broker (tests do this between cases).
    """
    global _broker
    settings = settings or get_settings()
    if settings.redis_url:
        broker = _redis_broker(settings)
    else:
        broker = StubBroker()
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(WorkerMetrics())
    with _lock:
        old, _broker = _broker, broker
        dramatiq.set_broker(broker)
        from routing.actors import bind_actors

        bind_actors(broker, settings)
    if old is not None and old is not broker:
        _close_quietly(old)
    log.info(
        "queue broker ready",
        extra={"broker": type(broker).__name__, "namespace": getattr(broker, "namespace", None)},
    )
    return broker


def _redis_broker(settings: Settings) -> dramatiq.Broker:
    import redis
    from dramatiq.brokers.redis import RedisBroker

    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry_on_timeout=False,
        health_check_interval=30,
    )
    return RedisBroker(
        client=client,
        namespace=settings.redis_namespace,
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_chance=settings.broker_maintenance_chance,
    )


def reset_broker() -> None:
    """Forget the process's broker (closing it); the next use sets one up from the settings."""
    global _broker
    with _lock:
        old, _broker = _broker, None
    if old is not None:
        _close_quietly(old)


def get_broker() -> dramatiq.Broker:
    """The process's broker, set up from the environment on first use."""
    broker = _broker
    if broker is None:
        broker = setup_broker()
    return broker


def is_in_process(broker: dramatiq.Broker | None = None) -> bool:
    """True when the queue lives in this process (no Redis): a worker must run here too."""
    return isinstance(broker or get_broker(), StubBroker)


def enqueue(inbound_id: int) -> bool:
    """Hand ``inbound_id`` to the routing workers; ``False`` (and a log line) if the broker is down.

    The message is already committed when this is called, so a failed hand-over loses nothing:
    the sweeper re-sends stored but unrouted messages after its grace period.
    """
    from routing.actors import route_inbound

    get_broker()
    try:
        route_inbound.send(int(inbound_id))
        return True
    except Exception as exc:  # noqa: BLE001 - any broker fault means "not handed over yet"
        log.warning(
            "queue broker unavailable; the sweeper will hand the message over later",
            extra={"inbound_id": inbound_id, "error": f"{type(exc).__name__}: {exc}"},
        )
        return False


def enqueue_many(inbound_ids, *, batch_size: int | None = None) -> list[int]:
    """Hand several stored ids to the routing workers, up to ``batch_size`` per queue message.

    A group of ids travels as one ``route_inbound_batch`` message, routed in one transaction
    (routing.batch); a group of one as a plain ``route_inbound``. Never raises: returns the ids
    that could not be handed over — after the first group the broker refuses, the rest are not
    tried (it is down; the sweeper re-sends them later).
    """
    from routing.actors import route_inbound, route_inbound_batch

    ids = [int(i) for i in inbound_ids]
    size = batch_size or get_settings().route_batch_size
    get_broker()
    for start in range(0, len(ids), size):
        group = ids[start:start + size]
        try:
            if len(group) == 1:
                route_inbound.send(group[0])
            else:
                route_inbound_batch.send(group)
        except Exception as exc:  # noqa: BLE001 - any broker fault means "not handed over yet"
            log.warning(
                "queue broker unavailable; the sweeper will hand the messages over later",
                extra={"inbound_ids": group, "error": f"{type(exc).__name__}: {exc}"},
            )
            return ids[start:]
    return []


def start_worker(threads: int | None = None, settings: Settings | None = None) -> dramatiq.Worker:
    """Start a dramatiq worker consuming the routing queue in background threads; return it.

    Only one ``dramatiq.Worker`` may run per process. Stop it with :func:`stop_worker`.
    """
    settings = settings or get_settings()
    broker = get_broker()
    worker = dramatiq.Worker(
        broker,
        queues={QUEUE_NAME, f"{QUEUE_NAME}.DQ", OUTBOX_QUEUE},
        worker_threads=threads or settings.worker_threads,
        # An idle consumer polls Redis with a backoff capped here: the worst-case delay before a
        # new message is picked up (dramatiq's default is 1 s).
        worker_timeout=settings.worker_poll_ms,
    )
    worker.start()
    log.info("routing worker started", extra={"threads": worker.worker_threads})
    return worker


def stop_worker(worker: dramatiq.Worker, timeout_s: float = 30.0) -> None:
    """Stop taking messages, let the routing in flight finish (up to ``timeout_s``), stop."""
    worker.stop(timeout=int(timeout_s * 1000))


def _close_quietly(broker: dramatiq.Broker) -> None:
    try:
        broker.close()
    except Exception:  # noqa: BLE001
        log.debug("closing the previous broker failed", exc_info=True)
