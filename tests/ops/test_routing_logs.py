"""Every routing log line, as JSON, carries the inbound id and the outcome: decisions, retries
and final failures alike."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy.exc import OperationalError

from routing import pipeline
from routing.broker import enqueue, setup_broker, start_worker, stop_worker
from tests.ingest.smtp_fixtures import configure, count_inbound, inbound_rows, wait_until
from tests.ops.helpers import store
from ticketpost.logs import JsonFormatter


class JsonLines(logging.Handler):
    """Formats every record as the JSON log format would and keeps the lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines():
    handler = JsonLines()
    loggers = [logging.getLogger(name) for name in ("ticketpost.routing", "routing")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def routing_records(handler: JsonLines) -> list[dict]:
    records = [json.loads(line) for line in handler.lines]  # one JSON object per line
    return [r for r in records if "inbound_id" in r]


def test_a_routing_decision_logs_one_json_line_with_id_and_outcome(sqlite_engine, json_lines):
    inbound_id = store(sqlite_engine, "someone@nowhere.example", "hello")
    result = pipeline.route_inbound(inbound_id, engine=sqlite_engine)
    (record,) = routing_records(json_lines)
    assert (record["inbound_id"], record["outcome"]) == (inbound_id, result.outcome)


def test_retries_and_final_failures_log_id_and_outcome(
    sqlite_url, sqlite_engine, json_lines, monkeypatch
):
    settings = configure(monkeypatch, database_url=sqlite_url, route_max_retries=1,
                         route_min_backoff_ms=10, route_max_backoff_ms=20)
    setup_broker(settings)
    inbound_id = store(sqlite_engine, "someone@nowhere.example", "hello")

    def database_gone(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(pipeline, "route_inbound", database_gone)
    worker = start_worker(1, settings)
    try:
        assert enqueue(inbound_id)
        # two attempts (the first and one retry), then dramatiq's on_retry_exhausted records it
        wait_until(lambda: count_inbound(sqlite_engine, status="failed") == 1, what="failure")
    finally:
        stop_worker(worker, 10)

    records = routing_records(json_lines)
    assert [r["outcome"] for r in records] == ["retrying", "retrying", "failed", "failed"]
    assert {r["inbound_id"] for r in records} == {inbound_id}
    assert "after 2 attempts" in inbound_rows(sqlite_engine)[0].reason
