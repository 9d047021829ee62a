"""The Grafana dashboard and the Prometheus alert rules in deploy/ load, and every metric they
query is one the code exports."""

from __future__ import annotations

import json
import re

import yaml

from services.config.settings import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "loyalty-dashboard.json"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yaml"
METRIC = re.compile(r"\b(loyalty_[a-z_]+)")
DEFINITION = re.compile(r"""(Counter|Gauge|Histogram|Metric)\(\s*"(loyalty_[a-z_]+)\"""")


def exported() -> set[str]:
    """The series names the code's metrics export (a histogram's _bucket, _sum, _count; a
    counter's name with _total)."""
    names: set[str] = set()
    for path in (REPO_ROOT / "services").rglob("*.py"):
        for kind, name in DEFINITION.findall(path.read_text()):
            if kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind in ("Counter", "Metric"):
                base = name.removesuffix("_total")
                names |= {f"{base}_total", f"{base}_created"}
            else:
                names.add(name)
    return names


def test_the_code_exports_the_signals_of_issue_13() -> None:
    assert {
        "loyalty_outbox_unpublished",
        "loyalty_outbox_oldest_unpublished_seconds",
        "loyalty_parked_events",
        "loyalty_timers_due",
        "loyalty_consumer_lag",
        "loyalty_events_total",
        "loyalty_batch_seconds_bucket",
        "loyalty_api_request_seconds_bucket",
    } <= exported()


def test_dashboard_loads_and_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 7 and dashboard["uid"]
    used = {m for expr in exprs for m in METRIC.findall(expr)}
    assert used and used <= exported(), used - exported()
    for wanted in (
        "loyalty_outbox_oldest_unpublished_seconds",
        "loyalty_consumer_lag",
        "loyalty_parked_events",
    ):
        assert wanted in used


def test_alert_rules_parse_and_query_exported_metrics() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert {
        "LoyaltyOutboxStalled",
        "LoyaltyConsumerLagGrowing",
        "LoyaltyParkedEventsGrowing",
        "LoyaltyNotReady",
        "LoyaltyDeadLetters",
    } <= names
    for rule in rules:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        used = set(METRIC.findall(rule["expr"]))
        assert used and used <= exported(), (rule["alert"], used - exported())
