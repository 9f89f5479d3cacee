"""Queue depth by state, read from the broker itself at the moment someone asks.

Distributed mode (dramatiq's Redis broker), per queue ``q`` under namespace ``ns``:
``LLEN ns:q`` is ready; ``HLEN ns:q.msgs`` holds every message not yet acknowledged, so minus
ready it is in flight (fetched by a worker, not acked); ``HLEN ns:q.DQ.msgs`` is delayed (retries
waiting for their backoff); ``ZCARD ns:q.XQ`` is dead letters. Queues are the union of the names
the caller passes, the ones seen before in this process, and those found by ``SCAN ns:*.msgs``
(so an API process that never imported the actors still sees them).

Embedded mode (an in-process dramatiq ``StubBroker``): ready is the queue's size, in flight is
``unfinished_tasks - qsize`` (taken but not yet acked), delayed is the ``.DQ`` queue, dead letters
are ``dead_letters_by_queue``.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

from core.settings import Settings, get_settings
from routing.broker import QUEUE_NAME, get_broker

QUEUE_STATES = ("ready", "in_flight", "delayed", "dead_letter")


@dataclass(frozen=True)
class QueueDepth:
    """How many messages one queue holds in each state."""

    queue: str
    ready: int = 0
    in_flight: int = 0
    delayed: int = 0
    dead_letter: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class BrokerUnavailable(Exception):
    """Raised when the broker cannot be asked for its queue depths (e.g. Redis is down)."""


_seen_lock = threading.Lock()
_seen_queues: dict[str, set[str]] = {}


def _canonical(name: str) -> str:
    for suffix in (".DQ", ".XQ"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def redis_queue_depths(
    client, namespace: str, queue_names: tuple[str, ...] | list[str] = ()
) -> list[QueueDepth]:
    """Depth of every queue in ``namespace`` of a dramatiq Redis broker.

    Raised ``BrokerUnavailable`` when Redis does not answer.
    """
    import redis

    try:
        names = set(map(_canonical, queue_names))
        prefix = f"{namespace}:"
        for pattern in (f"{namespace}:*.msgs", f"{namespace}:*.XQ"):
            for key in client.scan_iter(match=pattern, count=1000):
                key = key.decode() if isinstance(key, bytes) else key
                name = key[len(prefix) :]
                if name.endswith(".msgs"):
                    name = name[: -len(".msgs")]
                if name.endswith(".XQ"):
                    name = name[: -len(".XQ")]
                name = _canonical(name)
                if name and not name.startswith("__"):
                    names.add(name)
        with _seen_lock:
            seen = _seen_queues.setdefault(namespace, set())
            seen |= names
            names = set(seen)
        ordered = sorted(names)
        pipe = client.pipeline(transaction=False)
        for q in ordered:
            base = f"{namespace}:{q}"
            pipe.llen(base)
            pipe.hlen(f"{base}.msgs")
            pipe.hlen(f"{base}.DQ.msgs")
            pipe.zcard(f"{base}.XQ")
        values = pipe.execute()
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis did not answer: {exc}") from exc
    depths = []
    for i, q in enumerate(ordered):
        ready, pending, delayed, dead = values[4 * i : 4 * i + 4]
        depths.append(
            QueueDepth(
                queue=q,
                ready=ready,
                in_flight=max(0, pending - ready),
                delayed=delayed,
                dead_letter=dead,
            )
        )
    return depths


def stub_queue_depths(broker) -> list[QueueDepth]:
    """Depth of every queue of an in-process dramatiq ``StubBroker``."""
    depths = []
    for name in sorted(n for n in broker.queues if not n.endswith(".DQ")):
        queue = broker.queues[name]
        delayed_queue = broker.queues.get(f"{name}.DQ")
        ready = queue.qsize()
        depths.append(
            QueueDepth(
                queue=name,
                ready=ready,
                in_flight=max(0, queue.unfinished_tasks - ready),
                delayed=delayed_queue.unfinished_tasks if delayed_queue is not None else 0,
                dead_letter=len(broker.dead_letters_by_queue.get(name, ())),
            )
        )
    return depths


def current_broker():
    """The process's dramatiq broker if one was set up, else None (never creates one)."""
    import dramatiq.broker

    return dramatiq.broker.global_broker


def queue_depths(*, settings=None, broker=None) -> list[QueueDepth]:
    """Queue depth by state for the configured broker.

    With REDIS_URL set, Redis is read directly (correct whichever process asks); else the
    in-process broker (``broker`` or the global dramatiq broker) is inspected; with no broker at
    all the answer is an empty list. Raised ``BrokerUnavailable`` when Redis does not answer.
    """
    settings = settings or get_settings()
    broker = broker if broker is not None else current_broker()
    if settings.redis_url:
        declared = tuple(broker.get_declared_queues()) if broker is not None else ()
        declared += _routing_queue_names()
        client = _redis_client(settings.redis_url)
        return redis_queue_depths(client, settings.redis_namespace, declared)
    if broker is not None and hasattr(broker, "dead_letters_by_queue"):
        return stub_queue_depths(broker)
    return []


def _routing_queue_names() -> tuple[str, ...]:
    """The routing queue's name, so it is shown (as zeros) before its first message."""
    return (QUEUE_NAME,)


def routing_queue_depth(settings: Settings | None = None) -> QueueDepth:
    """Depth of the routing queue of this process's broker (set up from the settings if need be).

    Raised ``BrokerUnavailable`` when Redis does not answer.
    """
    settings = settings or get_settings()
    broker = get_broker()
    for depth in queue_depths(settings=settings, broker=broker):
        if depth.queue == QUEUE_NAME:
            return depth
    return QueueDepth(queue=QUEUE_NAME)


_clients: dict[str, object] = {}


def _redis_client(url: str):
    import redis

    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2
        )
    return client


def ping_broker(*, settings=None, broker=None) -> None:
    """Check the queue broker answers. Raised ``BrokerUnavailable`` when it does not."""
    import redis

    settings = settings or get_settings()
    if not settings.redis_url:
        return  # the in-process queue lives as long as this process does
    try:
        _redis_client(settings.redis_url).ping()
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis did not answer: {exc}") from exc
