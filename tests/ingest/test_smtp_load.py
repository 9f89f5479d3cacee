"""Load over real sockets: Postfix's ``smtp-source`` sends 2,000 messages; each is routed once."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.ingest.smtp_fixtures import (
    assert_each_routed_once,
    count_inbound,
    stop_process,
    ticketpost_process,
    wait_until,
)
from tests.ingest.test_smtp_faults import _delete_namespace, _worker_env

pytestmark = pytest.mark.slow

MESSAGES = 2000
SESSIONS = 20


def test_two_thousand_messages_from_smtp_source_are_each_routed_exactly_once(
    start_stack, pg_url, redis_url, tmp_path
):
    if shutil.which("smtp-source") is None:
        from tests.conftest import service_missing

        service_missing("smtp-source", "Debian's postfix package is not installed")
    namespace = f"tp-load-{uuid.uuid4().hex[:8]}"
    env = _worker_env(pg_url, redis_url, namespace)
    # The production shape: this process is the SMTP role; two worker processes route.
    stack = start_stack(pg_url, worker=False, redis_url=redis_url, redis_namespace=namespace,
                        smtp_max_connections=SESSIONS + 5,
                        smtp_max_connections_per_ip=SESSIONS + 5)
    workers = [
        ticketpost_process(["worker", "--threads", "3"] + (["--no-sweeper"] if i else []),
                           env, tmp_path / f"worker{i}.log")
        for i in range(2)
    ]
    try:
        result = subprocess.run(
            ["smtp-source", "-m", str(MESSAGES), "-s", str(SESSIONS), "-d",
             "-f", "alice@acme.example", "-t", "help@msp.example",
             "-S", "load test", "-l", "600", f"127.0.0.1:{stack.port}"],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert count_inbound(stack.engine) == MESSAGES, "every message smtp-source sent was stored"
        wait_until(lambda: count_inbound(stack.engine, status="routed") == MESSAGES,
                   timeout=240, interval=0.5, what="routing of all messages")
        assert_each_routed_once(stack.engine, MESSAGES)
    finally:
        for proc in workers:
            stop_process(proc)
        _delete_namespace(redis_url, namespace)
