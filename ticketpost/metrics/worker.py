"""A dramatiq middleware that announces a routing worker to the metrics (``ticketpost_workers``)."""

from __future__ import annotations

import dramatiq

from ticketpost.metrics.events import worker_started, worker_stopped


class WorkerMetrics(dramatiq.Middleware):
    """Counts this process as a live worker from boot to shutdown.

    In the distributed mode the count is a per-process gauge in Redis kept alive by a heartbeat,
    so a worker that dies without shutting down stops counting after the heartbeat TTL.
    """

    def after_worker_boot(self, broker, worker) -> None:
        worker_started(getattr(worker, "worker_threads", 1))

    def before_worker_shutdown(self, broker, worker) -> None:
        worker_stopped()
