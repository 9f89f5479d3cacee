"""SMTP metric events (replies by code, open sessions), sent to ``core.telemetry`` off the loop."""

from __future__ import annotations

import logging
import queue
import threading

from core import telemetry

log = logging.getLogger(__name__)


class MetricsSender:
    """Hands SMTP metric events to ``core.telemetry`` from one background thread.

    The metric hooks may talk to Redis; doing that on the event loop would stall every session
    (and for seconds while Redis is down). The thread sums what queued up while it wrote, so a busy
    listener makes a few writes, not one per reply. Events beyond a bounded backlog are dropped.
    """

    def __init__(self, backlog: int = 10_000) -> None:
        self._queue: queue.Queue = queue.Queue(backlog)
        self._thread: threading.Thread | None = None
        self._metrics = telemetry

    def reply(self, status: str) -> None:
        self._put("smtp_reply", status)

    def session(self, delta: int) -> None:
        self._put("smtp_session_delta", delta)

    def _put(self, hook: str, arg) -> None:
        if self._metrics is None:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="smtp-metrics", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((hook, arg))
        except queue.Full:
            pass

    def _run(self) -> None:
        while True:
            events = [self._queue.get()]
            while len(events) < 1000:  # what else is waiting goes in the same writes
                try:
                    events.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._send(events)
            except Exception:  # noqa: BLE001 - metrics never break the mail flow
                log.debug("SMTP metric failed", exc_info=True)

    def _send(self, events: list[tuple[str, object]]) -> None:
        """One metric write per reply code and one for the session gauge, however many events."""
        replies: dict[str, int] = {}
        sessions = 0
        for hook, arg in events:
            if hook == "smtp_reply":
                code = str(arg)[:3]
                replies[code] = replies.get(code, 0) + 1
            else:
                sessions += int(arg)
        for code, count in replies.items():
            self._metrics.smtp_reply(code, count)
        if sessions:
            self._metrics.smtp_session_delta(sessions)
