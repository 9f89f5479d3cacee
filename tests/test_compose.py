"""docker-compose.yml describes the production shape: every service runs a real role, every
environment name is a real setting. (Docker does not run here; the file is checked as data.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ticketpost.cli import build_parser
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
INFRASTRUCTURE = {"postgres", "redis", "proxy"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def subcommands() -> set[str]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return set(action.choices)


def env_names(service: dict) -> set[str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {item.split("=", 1)[0] for item in env}
    return set(env)


def test_the_production_shape_has_every_role_and_its_infrastructure(compose):
    assert {"postgres", "redis", "smtp", "worker", "api", "imap"} <= set(compose["services"])


def test_every_ticketpost_service_runs_a_real_ticketpost_subcommand(compose):
    known = subcommands()
    for name, service in compose["services"].items():
        if name in INFRASTRUCTURE:
            continue
        command = service["command"]
        assert command[0] == "ticketpost", f"{name} runs {command}"
        assert command[1] in known, f"{name} runs `ticketpost {command[1]}`, which does not exist"
        build_parser().parse_args(command[1:])  # its options parse too


def test_every_ticketpost_environment_name_is_a_setting(compose):
    fields = set(Settings.model_fields)
    for name, service in compose["services"].items():
        for key in env_names(service):
            if key.startswith("TICKETPOST_"):
                assert key[len("TICKETPOST_"):].lower() in fields, f"{name}: {key} is no setting"


def test_the_roles_run_on_postgresql_and_redis(compose):
    for name in ("smtp", "worker", "api", "imap", "migrate"):
        env = compose["services"][name]["environment"]
        assert env["TICKETPOST_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["TICKETPOST_REDIS_URL"].startswith("redis://")


def test_every_long_running_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        if name == "migrate":
            continue
        assert "test" in service.get("healthcheck", {}), f"{name} has no health check"


def test_roles_wait_for_healthy_infrastructure_and_the_migration(compose):
    for name in ("smtp", "worker", "api", "imap"):
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_the_worker_can_be_scaled(compose):
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker, (
        "`docker compose up --scale worker=N` needs no fixed name or host port"
    )


def test_the_public_smtp_listener_is_never_an_open_relay(compose):
    smtp = compose["services"]["smtp"]["environment"]
    assert smtp["TICKETPOST_SMTP_HOST"] == "0.0.0.0"
    assert smtp["TICKETPOST_SUPPORT_ADDRESSES"].startswith("${TICKETPOST_SUPPORT_ADDRESSES:?"), (
        "compose refuses to start without support addresses"
    )


def published_container_ports(service: dict) -> set[int]:
    """The container ports a service publishes on the host (short syntax "HOST:CONTAINER")."""
    out = set()
    for entry in service.get("ports") or []:
        spec = entry["target"] if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1]
        out.add(int(str(spec).split("/")[0]))
    return out


def test_the_admin_api_is_not_published_in_plain_http(compose):
    api = compose["services"]["api"]
    assert "ports" not in api, "the api is reached through the TLS proxy only"
    for name, service in compose["services"].items():
        if name != "proxy":
            assert 8080 not in published_container_ports(service), f"{name} publishes the API port"


def test_a_tls_proxy_fronts_the_admin_api(compose):
    proxy = compose["services"]["proxy"]
    assert proxy["image"].startswith("caddy:")
    assert 443 in published_container_ports(proxy)
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    assert proxy["environment"]["API_DOMAIN"].startswith("${TICKETPOST_API_DOMAIN:?"), (
        "compose refuses to start without the name the certificate is for"
    )
    assert "test" in proxy["healthcheck"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in proxy["volumes"] if m.startswith("./")}
    caddyfile = ROOT / mounts["/etc/caddy/Caddyfile"]
    config = caddyfile.read_text()
    port = compose["services"]["api"]["environment"]["TICKETPOST_API_PORT"]
    assert f"reverse_proxy api:{port}" in config
    assert "{$API_DOMAIN}" in config, "the site is the configured name (Caddy's automatic HTTPS)"
    assert "\ttls " in config
    assert "http://" not in config.split("{$API_DOMAIN}", 1)[1], "no plain-HTTP site for the API"


def test_metrics_need_a_token_in_the_production_shape(compose):
    env = compose["services"]["api"]["environment"]
    assert env["TICKETPOST_METRICS_TOKEN"].startswith("${TICKETPOST_METRICS_TOKEN:?"), (
        "compose refuses to start without a metrics token"
    )
