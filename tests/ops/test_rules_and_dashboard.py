"""The alert rules and the Grafana dashboard in ops/ are valid and use only metrics we expose."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import service_missing
from tests.ops.helpers import Scrape, metric_names
from admin_api.metrics import render_metrics

OPS = Path(__file__).resolve().parents[2] / "ops"
RULES = OPS / "prometheus" / "alerts.yml"
RULE_TESTS = OPS / "prometheus" / "alerts_test.yml"
DASHBOARD = OPS / "grafana" / "ticketpost-dashboard.json"


@pytest.fixture
def exposed(sqlite_engine) -> Scrape:
    """A real scrape of a fresh installation (in-process queue set up), every family declared."""
    from routing.broker import setup_broker

    setup_broker()
    return Scrape(render_metrics(engine=sqlite_engine).decode())


def rule_expressions() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    return {
        rule.get("alert") or rule["record"]: rule["expr"]
        for group in doc["groups"]
        for rule in group["rules"]
    }


def dashboard_expressions() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in doc["panels"]
        for target in panel.get("targets", [])
    ]


def test_the_alert_rules_cover_the_four_situations_an_operator_must_hear_about():
    names = set(rule_expressions())
    assert {
        "TicketpostMailStuck",
        "TicketpostDeadLettersGrowing",
        "TicketpostMailboxFailing",
        "TicketpostSmtp4xxRate",
    } <= names


def test_a_mailbox_whose_oauth2_credentials_are_refused_is_alerted_on():
    assert "ticketpost_mailbox_auth_failed" in rule_expressions()["TicketpostMailboxAuthFailed"]


def test_every_metric_an_alert_rule_uses_is_exposed_by_metrics(exposed):
    known = exposed.exposed_names()
    for alert, expr in rule_expressions().items():
        used = metric_names(expr)
        assert used, f"{alert}: no metric found in {expr!r}"
        assert used <= known, f"{alert} uses metrics /metrics does not expose: {used - known}"


def test_every_metric_the_dashboard_uses_is_exposed_by_metrics(exposed):
    known = exposed.exposed_names()
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    for title, expr in expressions:
        used = metric_names(expr)
        assert used, f"panel {title!r}: no metric found in {expr!r}"
        assert used <= known, f"panel {title!r} uses metrics not exposed: {used - known}"


def test_the_dashboard_is_importable_grafana_json():
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["title"] and doc["schemaVersion"] >= 30
    ids = [panel["id"] for panel in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in doc["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert panel["targets"], panel["title"]


def test_the_name_finder_sees_through_functions_labels_and_grouping():
    expr = (
        'histogram_quantile(0.95, sum by (le, outcome) (rate(a_bucket{code=~"4.."}[5m])))'
        " / on (mailbox) group_left b_total and time() - c offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        service_missing("promtool", "install it as .ci/run does (from Debian's prometheus package)")
    return path


def test_promtool_accepts_the_alert_rules():
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_fire_when_and_only_when_their_unit_tests_say():
    result = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        cwd=RULE_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_finds_no_problem_in_a_real_scrape(exposed):
    result = subprocess.run(
        [_promtool(), "check", "metrics"], input=exposed.text, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_example_prometheus_configuration():
    result = subprocess.run(
        [_promtool(), "check", "config", str(OPS / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metrics_exposes_exactly_the_declared_families(exposed):
    from admin_api.metrics import STATE_METRICS
    from core.telemetry import EVENT_METRICS

    declared = set(STATE_METRICS) | {
        f"{m.name}_total" if m.kind == "counter" else m.name for m in EVENT_METRICS
    }
    assert set(exposed.types) == declared
