"""Operators' view of the mail flow: Prometheus metrics, readiness, and the status snapshot.

The mail flow calls the hooks (``observe_routing``, ``smtp_reply``, ``smtp_session_delta``,
``rate_limited``, ``worker_started``/``worker_stopped``); ``render_metrics`` produces the text of
``GET /metrics``; ``take_snapshot`` feeds ``ticketpost status``; ``check_readiness`` feeds
``GET /readyz``.
"""

from ticketpost.metrics.collector import CONTENT_TYPE, STATE_METRICS, render_metrics
from ticketpost.metrics.events import (
    EVENT_METRICS,
    get_event_store,
    observe_routing,
    rate_limited,
    reset_event_store,
    smtp_reply,
    smtp_session_delta,
    worker_started,
    worker_stopped,
)
from ticketpost.metrics.readiness import Readiness, check_readiness
from ticketpost.metrics.snapshot import Snapshot, take_snapshot

__all__ = [
    "CONTENT_TYPE",
    "EVENT_METRICS",
    "STATE_METRICS",
    "Readiness",
    "Snapshot",
    "check_readiness",
    "get_event_store",
    "observe_routing",
    "rate_limited",
    "render_metrics",
    "reset_event_store",
    "smtp_reply",
    "smtp_session_delta",
    "take_snapshot",
    "worker_started",
    "worker_stopped",
]
