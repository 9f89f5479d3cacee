"""Event metrics: what one process sees happen (routing times, SMTP replies, open sessions).

Two stores behind one interface, picked from the settings at each hook call:

* ``LocalEventStore`` (embedded mode, no ``TICKETPOST_REDIS_URL``): plain ``prometheus_client``
  Counter/Histogram/Gauge objects in a private registry. The SMTP listener, the workers and the
  API share one process, so the process's own numbers are the whole installation's numbers.
* ``RedisEventStore`` (distributed mode): the roles run as separate processes, often in separate
  containers or on separate hosts, so a process-local registry would show each scrape only the
  API process's (empty) view. We keep the numbers in Redis, which every role already talks to:
  counters and histogram buckets are ``HINCRBY``/``HINCRBYFLOAT`` fields of one hash per metric
  under ``<namespace>:tp:metrics:``; the ``/metrics`` handler of any API process reads them back.
  prometheus_client's multiprocess mode was rejected because it needs one shared directory on one
  host (``PROMETHEUS_MULTIPROC_DIR``), which split containers do not have.
  Per-process gauges (open SMTP sessions, worker processes/threads) are stored as one field per
  process and summed at scrape time over the processes whose heartbeat (a sorted set of process
  ids scored by last-seen time, refreshed by a daemon thread) is fresh, so a crashed process stops
  counting after ``HEARTBEAT_TTL_S`` instead of leaving its sessions open forever. Each process
  republishes its absolute gauge values (never increments) so a Redis outage heals itself.

Metrics are best effort: a failing store never breaks the mail flow (the hooks log and go on);
increments made while Redis is unreachable are lost. The authoritative counts of messages by
outcome come from the database at scrape time (``admin_api.metrics.collector``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

log = logging.getLogger(__name__)

ROUTING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HEARTBEAT_INTERVAL_S = 10.0
#: How often a process sends its buffered counter and histogram increments to Redis.
FLUSH_INTERVAL_S = 0.25
HEARTBEAT_TTL_S = 35.0


@dataclass(frozen=True)
class EventMetric:
    """The definition of one event metric (name without ``_total``, like prometheus_client)."""

    name: str
    kind: Literal["counter", "histogram", "process_gauge"]
    documentation: str
    labelnames: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


ROUTING_DURATION = EventMetric(
    "ticketpost_routing_duration_seconds",
    "histogram",
    "Time to route one inbound message (parse to commit), by outcome.",
    ("outcome",),
    ROUTING_BUCKETS,
)
ROUTED = EventMetric(
    "ticketpost_routed_messages",
    "counter",
    "Routing attempts that recorded an outcome, by message source and outcome.",
    ("source", "outcome"),
)
SMTP_REPLIES = EventMetric(
    "ticketpost_smtp_replies",
    "counter",
    "SMTP replies the listener decided (RCPT, DATA, connection refusals), by reply code.",
    ("code",),
)
RATE_LIMITED = EventMetric(
    "ticketpost_rate_limited_messages",
    "counter",
    "Messages turned into ignored_loop because their sender was over the per-sender rate limit.",
)
SMTP_SESSIONS = EventMetric(
    "ticketpost_smtp_sessions_active",
    "process_gauge",
    "SMTP sessions open right now, summed over live SMTP listener processes.",
)
WORKERS = EventMetric(
    "ticketpost_workers",
    "process_gauge",
    "Routing worker processes alive (heartbeat fresher than the TTL).",
)
WORKER_THREADS = EventMetric(
    "ticketpost_worker_threads",
    "process_gauge",
    "Routing worker threads in live worker processes.",
)

EVENT_METRICS: tuple[EventMetric, ...] = (
    ROUTING_DURATION,
    ROUTED,
    SMTP_REPLIES,
    RATE_LIMITED,
    SMTP_SESSIONS,
    WORKERS,
    WORKER_THREADS,
)


class EventStore(Protocol):
    """Where event metrics go, and where ``/metrics`` reads them back from."""

    def inc(self, metric: EventMetric, labels: tuple[str, ...] = (), amount: float = 1) -> None: ...

    def observe(self, metric: EventMetric, labels: tuple[str, ...], value: float) -> None: ...

    def gauge_add(self, metric: EventMetric, delta: float) -> None: ...

    def gauge_set(self, metric: EventMetric, value: float) -> None: ...

    def collect(self) -> Iterable[Metric]: ...


class LocalEventStore:
    """Event metrics held by prometheus_client in this process (the embedded, one-process mode)."""

    def __init__(self) -> None:
        disable_created_metrics()  # same series as the Redis store: no ``_created`` samples
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Counter | Histogram | Gauge] = {}
        self._children: dict[tuple[str, tuple[str, ...]], object] = {}
        for m in EVENT_METRICS:
            if m.kind == "counter":
                obj = Counter(m.name, m.documentation, m.labelnames, registry=self.registry)
            elif m.kind == "histogram":
                obj = Histogram(
                    m.name, m.documentation, m.labelnames, registry=self.registry, buckets=m.buckets
                )
            else:
                obj = Gauge(m.name, m.documentation, m.labelnames, registry=self.registry)
            self._metrics[m.name] = obj

    def _child(self, metric: EventMetric, labels: tuple[str, ...]):
        key = (metric.name, labels)
        child = self._children.get(key)  # labels() takes a lock and builds a key on every call
        if child is None:
            obj = self._metrics[metric.name]
            child = self._children[key] = obj.labels(*labels) if metric.labelnames else obj
        return child

    def inc(self, metric: EventMetric, labels: tuple[str, ...] = (), amount: float = 1) -> None:
        self._child(metric, labels).inc(amount)

    def observe(self, metric: EventMetric, labels: tuple[str, ...], value: float) -> None:
        self._child(metric, labels).observe(value)

    def gauge_add(self, metric: EventMetric, delta: float) -> None:
        self._child(metric, ()).inc(delta)

    def gauge_set(self, metric: EventMetric, value: float) -> None:
        self._child(metric, ()).set(value)

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


#: Score a process id with Redis's own clock, so heartbeats from hosts with skewed clocks compare.
_TOUCH = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) + tonumber(now[2]) / 1000000, ARGV[1])
"""


def _field(*parts: str) -> str:
    return json.dumps(list(parts), separators=(",", ":"))


def _unfield(field: bytes | str) -> list[str]:
    return json.loads(field)


def new_process_id() -> str:
    """A name for this process that stays unique across hosts and pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class RedisEventStore:
    """Event metrics kept in Redis hashes, shared by every process of a distributed installation.

    Keys (``P`` = ``<namespace>:tp:metrics``): ``P:<metric name>`` one hash per metric;
    counters use the JSON label list as field; histograms add ``"bucket", "<le>"``, ``"sum"`` and
    ``"count"`` to it; per-process gauges use ``[process id]``. ``P:processes`` is the sorted set
    of process ids scored by last heartbeat (Unix seconds by the Redis server's clock).

    Counter and histogram increments are summed in the process and sent every
    :data:`FLUSH_INTERVAL_S` in one pipeline by a background thread (and at close and exit):
    writing each routed message's three or four increments at once cost a worker two Redis round
    trips per message. Other processes see them that much later; a reading store flushes this
    process's stores first. Gauges are written at once.
    """

    def __init__(
        self,
        url: str,
        namespace: str = "dramatiq",
        *,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        heartbeat_ttl_s: float = HEARTBEAT_TTL_S,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        client=None,
    ) -> None:
        import redis

        self.prefix = f"{namespace}:tp:metrics"
        self.client = client or redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2
        )
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.flush_interval_s = flush_interval_s
        self.process_id = new_process_id()
        self.pid = os.getpid()
        self._gauges: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._touch = self.client.register_script(_TOUCH)
        self._pending: dict[tuple[str, str], list] = {}  # (key, field) -> [amount, is_float]
        self._flusher: threading.Thread | None = None
        _redis_stores.add(self)

    def key(self, metric: EventMetric | str) -> str:
        name = metric if isinstance(metric, str) else metric.name
        return f"{self.prefix}:{name}"

    @property
    def processes_key(self) -> str:
        return f"{self.prefix}:processes"

    # --- writing ----------------------------------------------------------------------------

    def inc(self, metric: EventMetric, labels: tuple[str, ...] = (), amount: float = 1) -> None:
        self._add(self.key(metric), _field(*labels), amount, not float(amount).is_integer())

    def observe(self, metric: EventMetric, labels: tuple[str, ...], value: float) -> None:
        le = next((b for b in metric.buckets if value <= b), float("inf"))
        key = self.key(metric)
        self._add(key, _field(*labels, "bucket", _le(le)), 1, False)
        self._add(key, _field(*labels, "count"), 1, False)
        self._add(key, _field(*labels, "sum"), value, True)

    def _add(self, key: str, field: str, amount: float, is_float: bool) -> None:
        with self._lock:
            entry = self._pending.get((key, field))
            if entry is None:
                self._pending[(key, field)] = [amount, is_float]
            else:
                entry[0] += amount
                entry[1] = entry[1] or is_float
        self._ensure_flusher()

    def flush(self) -> None:
        """Send the buffered increments to Redis now (one pipeline); they are dropped if it fails."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        pipe = self.client.pipeline(transaction=False)
        for (key, field), (amount, is_float) in pending.items():
            if is_float:
                pipe.hincrbyfloat(key, field, amount)
            else:
                pipe.hincrby(key, field, int(amount))
        pipe.execute()

    def _ensure_flusher(self) -> None:
        self._ensure_loop("_flusher", "ticketpost-metrics-flush", self.flush_interval_s, self.flush,
                          "sending metrics to Redis", at_exit=self.flush)

    def gauge_add(self, metric: EventMetric, delta: float) -> None:
        with self._lock:
            value = self._gauges.get(metric.name, 0.0) + delta
            self._gauges[metric.name] = value
        self._publish_gauge(metric.name, value)

    def gauge_set(self, metric: EventMetric, value: float) -> None:
        with self._lock:
            self._gauges[metric.name] = value
        self._publish_gauge(metric.name, value)

    def _publish_gauge(self, name: str, value: float) -> None:
        self._ensure_heartbeat()
        pipe = self.client.pipeline(transaction=False)
        self._touch(keys=[self.processes_key], args=[self.process_id], client=pipe)
        pipe.hset(self.key(name), _field(self.process_id), repr(value))
        pipe.execute()

    def heartbeat(self) -> None:
        """Say this process is alive and republish its gauges (absolute values)."""
        with self._lock:
            gauges = dict(self._gauges)
        pipe = self.client.pipeline(transaction=False)
        self._touch(keys=[self.processes_key], args=[self.process_id], client=pipe)
        for name, value in gauges.items():
            pipe.hset(self.key(name), _field(self.process_id), repr(value))
        pipe.execute()

    def _ensure_heartbeat(self) -> None:
        self._ensure_loop("_thread", "ticketpost-metrics-heartbeat", self.heartbeat_interval_s,
                          self.heartbeat, "metrics heartbeat to Redis", at_exit=self.close)

    def _ensure_loop(self, attr: str, name: str, interval_s: float, action, what: str, *, at_exit) -> None:
        """Run ``action`` every ``interval_s`` in a daemon thread kept as ``self.<attr>``, once."""
        thread = getattr(self, attr)
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            thread = getattr(self, attr)
            if thread is not None and thread.is_alive():
                return
            self._stop.clear()

            def loop() -> None:
                while not self._stop.wait(interval_s):
                    try:
                        action()
                    except Exception:  # noqa: BLE001 - metrics are best effort
                        log.debug("%s failed", what, exc_info=True)

            thread = threading.Thread(target=loop, name=name, daemon=True)
            setattr(self, attr, thread)
            thread.start()
            atexit.register(at_exit)

    def close(self) -> None:
        """Send what is buffered, stop the threads and withdraw this process's gauges (clean shutdown)."""
        self._stop.set()
        try:
            self.flush()
        except Exception:  # noqa: BLE001
            log.debug("could not send the last metrics of %s", self.process_id, exc_info=True)
        with self._lock:
            names = list(self._gauges)
            self._gauges.clear()
        if not names:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(self.processes_key, self.process_id)
            for name in names:
                pipe.hdel(self.key(name), _field(self.process_id))
            pipe.execute()
        except Exception:  # noqa: BLE001
            log.debug("could not withdraw metrics of %s", self.process_id, exc_info=True)

    # --- reading ----------------------------------------------------------------------------

    def live_processes(self) -> set[str]:
        """Process ids whose heartbeat is fresher than the TTL; stale ones are forgotten."""
        seconds, micros = self.client.time()  # Redis's clock: hosts' clocks may disagree
        cutoff = seconds + micros / 1e6 - self.heartbeat_ttl_s
        self.client.zremrangebyscore(self.processes_key, "-inf", f"({cutoff}")
        return {p.decode() for p in self.client.zrangebyscore(self.processes_key, cutoff, "+inf")}

    def collect(self) -> Iterator[Metric]:
        for store in list(_redis_stores):  # this process's increments, before reading everyone's
            store.flush()
        live = None
        for metric in EVENT_METRICS:
            data = self.client.hgetall(self.key(metric))
            if metric.kind == "counter":
                yield self._counter(metric, data)
            elif metric.kind == "histogram":
                yield self._histogram(metric, data)
            else:
                if live is None:
                    live = self.live_processes()
                yield self._process_gauge(metric, data, live)

    def _counter(self, metric: EventMetric, data: dict) -> Metric:
        family = CounterMetricFamily(metric.name, metric.documentation, labels=metric.labelnames)
        for field, value in sorted(data.items()):
            family.add_metric(_unfield(field), float(value))
        return family

    def _histogram(self, metric: EventMetric, data: dict) -> Metric:
        family = HistogramMetricFamily(metric.name, metric.documentation, labels=metric.labelnames)
        series: dict[tuple[str, ...], dict] = {}
        n = len(metric.labelnames)
        for field, value in data.items():
            parts = _unfield(field)
            labels, rest = tuple(parts[:n]), parts[n:]
            entry = series.setdefault(labels, {"buckets": {}, "sum": 0.0})
            if rest[0] == "bucket":
                entry["buckets"][rest[1]] = int(value)
            elif rest[0] == "sum":
                entry["sum"] = float(value)
        for labels, entry in sorted(series.items()):
            cumulative, buckets = 0, []
            for le in (*metric.buckets, float("inf")):
                cumulative += entry["buckets"].get(_le(le), 0)
                buckets.append((_le(le), cumulative))
            family.add_metric(list(labels), buckets, entry["sum"])
        return family

    def _process_gauge(self, metric: EventMetric, data: dict, live: set[str]) -> Metric:
        total, dead = 0.0, []
        for field, value in data.items():
            (process_id,) = _unfield(field)
            if process_id in live:
                total += float(value)
            else:
                dead.append(field)
        if dead:
            self.client.hdel(self.key(metric), *dead)
        family = GaugeMetricFamily(metric.name, metric.documentation)
        family.add_metric([], total)
        return family


#: Every RedisEventStore of this process, so a reading one sends the others' buffers first.
_redis_stores: "weakref.WeakSet[RedisEventStore]" = weakref.WeakSet()


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


# --- the process-wide store -------------------------------------------------------------------

_store_lock = threading.Lock()
_stores: dict[tuple, EventStore] = {}


def get_event_store(settings=None) -> EventStore:
    """The event store for ``settings`` (default: the process's): Redis when REDIS_URL is set.

    One store per (Redis URL, namespace, process id): a forked child gets its own, and a caller
    with other settings (a test's app) never replaces the store the hooks of this process use.
    """
    from core.settings import get_settings

    settings = settings or get_settings()
    key = (settings.redis_url, settings.redis_namespace, os.getpid())
    store = _stores.get(key)
    if store is not None:
        return store
    with _store_lock:
        store = _stores.get(key)
        if store is None:
            if settings.redis_url:
                store = RedisEventStore(settings.redis_url, settings.redis_namespace)
            else:
                store = LocalEventStore()
            _stores[key] = store
        return store


def reset_event_store() -> None:
    """Forget every store of this process (tests); Redis stores withdraw their gauges first."""
    global _paused_until
    _paused_until = 0.0
    with _store_lock:
        old = list(_stores.values())
        _stores.clear()
    for store in old:
        if isinstance(store, RedisEventStore) and store.pid == os.getpid():
            store.close()


# --- hooks the mail flow calls ---------------------------------------------------------------


#: After a failed write, events are dropped for this long instead of waiting on a dead Redis
#: again at every message (the socket timeouts would slow routing down).
PAUSE_AFTER_FAILURE_S = 5.0
_paused_until = 0.0


def _safely(action, *args) -> None:
    global _paused_until
    if time.monotonic() < _paused_until:
        return
    try:
        action(get_event_store(), *args)
    except Exception:  # noqa: BLE001 - metrics never break the mail flow
        _paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_S
        log.warning(
            "could not record a metric; dropping metric events for %.0f s",
            PAUSE_AFTER_FAILURE_S,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )


def observe_routing(outcome: str, source: str, seconds: float | None) -> None:
    """Record one routing that ended with ``outcome`` after ``seconds`` (None: not timed, e.g. a
    failure recorded after the last retry; then only the counter moves)."""

    def act(store: EventStore, outcome: str, source: str, seconds: float | None) -> None:
        if seconds is not None:
            store.observe(ROUTING_DURATION, (outcome,), max(0.0, seconds))
        store.inc(ROUTED, (source or "unknown", outcome))

    _safely(act, outcome, source, seconds)


def smtp_reply(code: int | str, count: int = 1) -> None:
    """Count ``count`` SMTP replies; ``code`` is ``451`` or a whole reply like ``"451 4.3.0 Try later"``."""
    text = str(code).strip()[:3]
    label = text if len(text) == 3 and text.isdigit() else "other"
    _safely(lambda store: store.inc(SMTP_REPLIES, (label,), count))


def smtp_session_delta(delta: int) -> None:
    """An SMTP session opened (``+1``) or closed (``-1``)."""
    _safely(lambda store: store.gauge_add(SMTP_SESSIONS, delta))


def rate_limited(count: int = 1) -> None:
    """A message was turned into ``ignored_loop`` by the per-sender rate limit."""
    _safely(lambda store: store.inc(RATE_LIMITED, (), count))


def worker_started(threads: int) -> None:
    """This process now runs a routing worker with ``threads`` threads."""

    def act(store: EventStore) -> None:
        store.gauge_set(WORKERS, 1)
        store.gauge_set(WORKER_THREADS, threads)

    _safely(act)


def worker_stopped() -> None:
    """This process's routing worker stopped."""

    def act(store: EventStore) -> None:
        store.gauge_set(WORKERS, 0)
        store.gauge_set(WORKER_THREADS, 0)

    _safely(act)
