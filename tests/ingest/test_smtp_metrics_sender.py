"""The SMTP listener's metric thread sums what queued up into a few writes."""

from __future__ import annotations

from ingest.smtp import REPLY_DATABASE_DOWN, REPLY_STORED, MetricsSender


class _Recorder:
    """Stands in for core.telemetry: records the calls the sender makes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def smtp_reply(self, code, count=1):
        self.calls.append(("reply", code, count))

    def smtp_session_delta(self, delta):
        self.calls.append(("sessions", delta))


def test_queued_replies_and_sessions_become_one_write_per_reply_code():
    sender = MetricsSender()
    sender._metrics = recorder = _Recorder()
    events = ([("smtp_session_delta", 1)] * 3 + [("smtp_reply", REPLY_STORED.format(inbound_id=7))] * 5
              + [("smtp_reply", REPLY_DATABASE_DOWN)] * 2 + [("smtp_session_delta", -1)])
    sender._send(events)
    assert sorted(recorder.calls, key=str) == sorted(
        [("reply", "250", 5), ("reply", "451", 2), ("sessions", 2)], key=str)
