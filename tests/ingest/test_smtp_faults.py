"""Faults between ``250`` and the ticket: nothing accepted is lost, nothing is ticketed twice.

Each test breaks a real part (a private redis-server, a worker process, the whole ``ticketpost
up`` process) while mail flows, brings it back, and then checks every accepted message was
routed exactly once.
"""

from __future__ import annotations

import re
import signal
import smtplib
import threading
import uuid

import pytest

from models.db import make_engine
from tests.conftest import free_port, port_open
from tests.ingest.smtp_fixtures import (
    assert_each_routed_once,
    count_inbound,
    inbound_rows,
    message,
    stop_process,
    ticketpost_process,
    wait_until,
)

pytestmark = pytest.mark.slow

STORED = re.compile(rb"stored as inbound message (\d+)")


def send(port: int, numbers, *, sessions: int = 1) -> list[int]:
    """Send message(n) for each n over ``sessions`` parallel sessions; return the acked ids."""
    numbers = list(numbers)
    acked: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(part):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo("client.example")
                for n in part:
                    client.mail("alice@acme.example")
                    client.rcpt("help@msp.example")
                    code, text = client.data(message(n))
                    assert code == 250, (code, text)
                    with lock:
                        acked.append(int(STORED.search(text).group(1)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(numbers[i::sessions],)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sorted(acked)


def test_mail_keeps_arriving_while_redis_is_down_and_is_routed_once_it_is_back(
    private_redis, start_stack, pg_url
):
    # private_redis first: fixtures stop in reverse order, so the stack (worker, sweeper, outbox
    # poller) stops while its Redis still answers.
    stack = start_stack(
        pg_url, sweeper=True, redis_url=private_redis.url,
        redis_namespace=f"tp-fault-{uuid.uuid4().hex[:8]}", sweeper_grace_s=0.5,
        sweeper_interval_s=0.2, worker_threads=2,
    )
    assert send(stack.port, range(5)) == [1, 2, 3, 4, 5]
    wait_until(lambda: count_inbound(stack.engine, status="routed") == 5, what="routing")

    private_redis.stop()
    acked_while_down = send(stack.port, range(5, 15))
    assert len(acked_while_down) == 10, "the broker being down does not refuse mail"
    assert count_inbound(stack.engine, status="received") == 10

    private_redis.start()  # same port, empty: whatever was queued is gone
    wait_until(lambda: count_inbound(stack.engine, status="routed") == 15, timeout=60,
               what="the sweeper to hand the stored messages over")
    assert_each_routed_once(stack.engine, 15)


def _worker_env(pg_url: str, redis_url: str, namespace: str) -> dict[str, str]:
    return {
        "TICKETPOST_DATABASE_URL": pg_url,
        "TICKETPOST_REDIS_URL": redis_url,
        "TICKETPOST_REDIS_NAMESPACE": namespace,
        "TICKETPOST_RATE_LIMIT_PER_HOUR": "0",
        # A dead worker's messages come back after the heartbeat timeout, on maintenance runs.
        "TICKETPOST_BROKER_HEARTBEAT_TIMEOUT_MS": "1500",
        "TICKETPOST_BROKER_MAINTENANCE_CHANCE": "1000000",
        "TICKETPOST_ROUTE_MIN_BACKOFF_MS": "100",
        "TICKETPOST_LOG_LEVEL": "WARNING",
    }


def _delete_namespace(redis_url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)


def test_a_worker_killed_mid_routing_loses_nothing_and_duplicates_nothing(
    pg_url, redis_url, monkeypatch, tmp_path
):
    from ingest.store import store_inbound
    from routing.broker import enqueue, setup_broker
    from tests.ingest.smtp_fixtures import configure

    namespace = f"tp-kill-{uuid.uuid4().hex[:8]}"
    env = _worker_env(pg_url, redis_url, namespace)
    settings = configure(monkeypatch, **{k[len("TICKETPOST_"):].lower(): v for k, v in env.items()})
    setup_broker(settings)
    engine = make_engine(pg_url)
    total = 150
    try:
        for n in range(total):
            inbound_id = store_inbound(raw=message(n), source="smtp",
                                       envelope_from="alice@acme.example",
                                       envelope_to=["help@msp.example"], engine=engine)
            assert enqueue(inbound_id)

        first = ticketpost_process(["worker", "--threads", "4", "--no-sweeper"], env,
                                   tmp_path / "worker1.log")
        wait_until(lambda: count_inbound(engine, status="routed") >= 10, timeout=60,
                   what="the first worker to start routing")
        stop_process(first, signal.SIGKILL)
        routed_at_kill = count_inbound(engine, status="routed")
        assert routed_at_kill < total, "the worker was killed with work left (test precondition)"

        second = ticketpost_process(["worker", "--threads", "4", "--no-sweeper"], env,
                                    tmp_path / "worker2.log")
        try:
            wait_until(lambda: count_inbound(engine, status="routed") == total, timeout=90,
                       what="the second worker to finish, including the dead worker's messages")
        finally:
            assert stop_process(second) == 0, "SIGTERM stops a worker cleanly"
        assert_each_routed_once(engine, total)
    finally:
        engine.dispose()
        _delete_namespace(redis_url, namespace)


def _up_env(tmp_path, smtp_port: int, api_port: int) -> dict[str, str]:
    return {
        "TICKETPOST_DATABASE_URL": f"sqlite:///{tmp_path}/ticketpost.db",
        "TICKETPOST_SMTP_PORT": str(smtp_port),
        "TICKETPOST_API_PORT": str(api_port),
        "TICKETPOST_WORKER_THREADS": "1",
        "TICKETPOST_SWEEPER_GRACE_S": "1",
        "TICKETPOST_SWEEPER_INTERVAL_S": "0.3",
        "TICKETPOST_RATE_LIMIT_PER_HOUR": "0",
        "TICKETPOST_LOG_LEVEL": "WARNING",
    }


def test_ticketpost_up_killed_right_after_250s_routes_every_accepted_message_once_on_restart(
    tmp_path,
):
    smtp_port, api_port = free_port(), free_port()
    env = _up_env(tmp_path, smtp_port, api_port)
    up = ticketpost_process(["up"], env, tmp_path / "up1.log")
    wait_until(lambda: port_open("127.0.0.1", smtp_port), timeout=60, what="ticketpost up")

    acked = send(smtp_port, range(150), sessions=5)
    stop_process(up, signal.SIGKILL)  # right after the last 250: no shutdown at all
    engine = make_engine(env["TICKETPOST_DATABASE_URL"])
    try:
        assert [r.id for r in inbound_rows(engine)] == acked, "every 250 was durable"
        unrouted_at_kill = count_inbound(engine, status="received")

        print(f"{unrouted_at_kill} of {len(acked)} accepted messages were not routed at the kill")
        log2 = tmp_path / "up2.log"
        again = ticketpost_process(["up"], env, log2)
        try:
            wait_until(lambda: log2.exists() and "Stop with Ctrl-C" in log2.read_text(),
                       timeout=60, what="the restart")
            wait_until(lambda: count_inbound(engine, status="routed") == len(acked), timeout=60,
                       what=f"the restarted process to route the {unrouted_at_kill} left over")
        finally:
            assert stop_process(again) == 0, "SIGTERM stops ticketpost up with exit code 0"
        assert_each_routed_once(engine, len(acked))
    finally:
        engine.dispose()
