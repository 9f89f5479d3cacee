"""``ticketpost up`` and the roles, run as real processes: they listen, route, and stop cleanly."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
import urllib.request
import uuid

import pytest

from models.db import make_engine
from tests.conftest import free_port, port_open
from tests.ingest.smtp_fixtures import (
    assert_each_routed_once,
    count_inbound,
    message,
    stop_process,
    ticketpost_process,
    wait_until,
)
from tests.ingest.test_smtp_faults import _delete_namespace, _worker_env


def run_ticketpost(args, env, cwd, timeout=60) -> subprocess.CompletedProcess:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "ticketpost.cli", *args], env=full, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_up_migrates_listens_routes_and_stops_on_sigterm_with_exit_code_0(tmp_path):
    smtp_port, api_port = free_port(), free_port()
    env = {
        "TICKETPOST_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db",
        "TICKETPOST_SMTP_PORT": str(smtp_port),
        "TICKETPOST_API_PORT": str(api_port),
        "TICKETPOST_SUPPORT_ADDRESSES": "help@msp.example",
    }
    log = tmp_path / "up.log"
    up = ticketpost_process(["up"], env, log)
    try:
        wait_until(lambda: "Stop with Ctrl-C" in log.read_text(), timeout=60, what="startup")
        out = log.read_text()
        assert f"SMTP       127.0.0.1:{smtp_port}" in out
        assert f"admin API  http://127.0.0.1:{api_port}/api/v1" in out
        assert "in-process" in out

        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/healthz", timeout=5) as r:
            assert r.status == 200
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            assert client.sendmail("alice@acme.example", ["help@msp.example"], message(1)) == {}
        engine = make_engine(env["TICKETPOST_DATABASE_URL"])  # the migration ran
        wait_until(lambda: count_inbound(engine, status="routed") == 1, what="routing")
        assert_each_routed_once(engine, 1)
        engine.dispose()
    finally:
        code = stop_process(up, signal.SIGTERM)
    assert code == 0
    assert "ticketpost: stopped" in log.read_text()
    assert not port_open("127.0.0.1", smtp_port) and not port_open("127.0.0.1", api_port)


def test_up_refuses_a_public_smtp_bind_without_support_addresses(tmp_path):
    result = run_ticketpost(["up"], {
        "TICKETPOST_DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
        "TICKETPOST_SMTP_HOST": "0.0.0.0",
        "TICKETPOST_SMTP_PORT": str(free_port()),
    }, tmp_path)
    assert result.returncode == 2
    assert "TICKETPOST_SUPPORT_ADDRESSES is empty" in result.stderr
    assert not (tmp_path / "t.db").exists(), "it refused before touching anything"


@pytest.mark.parametrize("role", ["smtp", "worker"])
def test_the_scaled_out_roles_need_redis(role, tmp_path):
    result = run_ticketpost([role], {"TICKETPOST_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"},
                            tmp_path)
    assert result.returncode == 2
    assert "needs TICKETPOST_REDIS_URL" in result.stderr and "ticketpost up" in result.stderr


@pytest.mark.slow
def test_smtp_and_worker_roles_route_mail_on_postgresql_and_redis_and_stop_cleanly(
    pg_url, redis_url, tmp_path
):
    namespace = f"tp-roles-{uuid.uuid4().hex[:8]}"
    smtp_port = free_port()
    env = _worker_env(pg_url, redis_url, namespace)
    env["TICKETPOST_SMTP_PORT"] = str(smtp_port)
    env["TICKETPOST_SUPPORT_ADDRESSES"] = "*@msp.example"
    smtp_role = ticketpost_process(["smtp"], env, tmp_path / "smtp.log")
    workers = ticketpost_process(["worker", "--processes", "2", "--threads", "2"], env,
                                 tmp_path / "worker.log")
    engine = make_engine(pg_url)
    try:
        wait_until(lambda: port_open("127.0.0.1", smtp_port), timeout=60, what="ticketpost smtp")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            for n in range(10):
                assert client.sendmail("alice@acme.example", ["help@msp.example"],
                                       message(n)) == {}
        wait_until(lambda: count_inbound(engine, status="routed") == 10, timeout=60,
                   what="the worker processes to route")
        assert_each_routed_once(engine, 10)
    finally:
        assert stop_process(smtp_role, signal.SIGINT) == 0, "Ctrl-C stops a role cleanly too"
        assert stop_process(workers) == 0
        engine.dispose()
        _delete_namespace(redis_url, namespace)
    assert "2 routing threads" in (tmp_path / "worker.log").read_text()


def test_status_of_the_redis_queue_is_visible_to_the_roles(pg_url, redis_url, monkeypatch):
    """enqueue → the Redis queue shows it ready (the depth the sweeper and `status` read)."""
    from routing.broker import enqueue, setup_broker
    from routing.queues import routing_queue_depth as queue_depth
    from tests.ingest.smtp_fixtures import configure

    namespace = f"tp-depth-{uuid.uuid4().hex[:8]}"
    setup_broker(configure(monkeypatch, redis_url=redis_url, redis_namespace=namespace))
    try:
        assert queue_depth().ready == 0
        assert enqueue(1) and enqueue(2)
        depth = queue_depth()
        assert (depth.ready, depth.delayed, depth.dead_letter) == (2, 0, 0)
        json.dumps(depth.__dict__)
    finally:
        _delete_namespace(redis_url, namespace)


def test_up_says_clearly_when_the_database_cannot_be_reached(tmp_path):
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    result = run_ticketpost(["up"], {
        "TICKETPOST_DATABASE_URL": dead, "TICKETPOST_SMTP_PORT": str(free_port()),
    }, tmp_path)
    assert result.returncode == 2
    assert "cannot migrate the database" in result.stderr
    assert "Traceback" not in result.stderr
