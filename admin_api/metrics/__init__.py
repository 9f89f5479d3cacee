"""Operators' view of the mail flow: the text of ``GET /metrics`` and the ``ticketpost status`` snapshot.

The mail flow's own counters (routing, SMTP replies, workers) are recorded through the hooks of
``core.telemetry``; this package adds the state read from the database and the broker at scrape time.
"""

from admin_api.metrics.collector import CONTENT_TYPE, STATE_METRICS, render_metrics
from admin_api.metrics.snapshot import Snapshot, take_snapshot

__all__ = ["CONTENT_TYPE", "STATE_METRICS", "Snapshot", "render_metrics", "take_snapshot"]
