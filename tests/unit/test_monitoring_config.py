"""The operator's monitoring configuration holds together: promtool accepts the alerting rules and
the scrape configuration, the rules' own unit tests pass, the dashboard is well formed, and every
FundWatch metric the rules and the dashboard query is one the code exposes. A renamed metric
would otherwise leave an alert that can never fire and a panel that stays empty."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.gateway import metrics as gateway_metrics
from services.storage import metrics as storage_metrics
from services.webhooks import metrics as webhook_metrics
from streams import metrics as worker_metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "fundwatch.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
COMPOSE = DEPLOY / "docker-compose.yml"

# Importing them registers every FundWatch collector in the default registry.
METRIC_MODULES = (gateway_metrics, worker_metrics, webhook_metrics, storage_metrics)
METRIC_NAME = re.compile(r"\bfundwatch_[a-z_]+")
# The series a family exposes besides its samples: a labelled family with no child yet has none.
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
}
DATASOURCE_UID = "prometheus"
GRAFANA_VARIABLE = re.compile(r"\$__[a-z_]+")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None and os.access("/usr/bin/promtool", os.X_OK):
        found = "/usr/bin/promtool"
    if found is None:
        pytest.fail(
            "promtool is not installed: `make test-deps` installs the Debian package prometheus, "
            "which provides it"
        )
    return found


def run_promtool(promtool: str, *args: str) -> str:
    done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def exposed_metric_names() -> set[str]:
    assert METRIC_MODULES
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("fundwatch_"):
            continue
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES.get(family.type, ("",)))
    return names


def rule_file_entries(config_text: str) -> list[str]:
    block = re.search(r"^rule_files:[ \t]*\n((?:[ \t]+-[ \t]+\S.*\n)+)", config_text, re.MULTILINE)
    assert block, "prometheus.yml has no rule_files list"
    return [line.split("-", 1)[1].strip().strip("\"'") for line in block.group(1).splitlines()]


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside it


def datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [
        target["expr"]
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and isinstance(query, str):
            exprs.append(query)
    return exprs


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


# --- Prometheus ----------------------------------------------------------------------------


def test_promtool_accepts_the_rules(promtool):
    out = run_promtool(promtool, "check", "rules", str(RULES))
    assert "SUCCESS" in out


def test_promtool_accepts_the_config_with_its_rules(promtool, tmp_path):
    # The config names the rule files by their path in the Prometheus container.
    text = PROMETHEUS_CONFIG.read_text()
    for entry in rule_file_entries(text):
        copy = tmp_path / Path(entry).name
        shutil.copy(PROMETHEUS_CONFIG.parent / Path(entry).name, copy)
        text = text.replace(entry, str(copy))
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    out = run_promtool(promtool, "check", "config", str(config))
    assert "SUCCESS" in out


def test_compose_mounts_every_rule_file_where_the_config_looks():
    compose = COMPOSE.read_text()
    for entry in rule_file_entries(PROMETHEUS_CONFIG.read_text()):
        mount = f"./prometheus/{Path(entry).name}:{entry}:ro"
        assert mount in compose, f"docker-compose.yml does not mount {mount}"


def test_rule_unit_tests_pass(promtool):
    out = run_promtool(promtool, "test", "rules", str(RULES_TEST))
    assert "SUCCESS" in out


def test_every_alert_has_for_severity_summary_description_and_a_unit_test():
    text = RULES.read_text()
    blocks = re.split(r"^\s*- alert:\s*", text, flags=re.MULTILINE)[1:]
    assert blocks, "rules.yml defines no alerts"
    tested = set(re.findall(r"alertname:\s*([A-Za-z0-9_]+)", RULES_TEST.read_text()))
    for block in blocks:
        name = block.split()[0]
        for key in ("expr:", "for:", "severity:", "summary:", "description:"):
            assert key in block, f"alert {name} has no {key[:-1]}"
        severity = re.search(r"severity:\s*(\S+)", block).group(1)
        assert severity in {"critical", "warning", "info"}, f"alert {name}: severity {severity}"
        assert name in tested, f"alert {name} has no case in rules_test.yml"


# --- metric names ---------------------------------------------------------------------------


def test_the_code_exposes_the_documented_families():
    names = exposed_metric_names()
    for name in (
        "fundwatch_records_accepted_total",
        "fundwatch_records_processed_total",
        "fundwatch_message_processing_seconds_bucket",
        "fundwatch_consumer_lag_messages",
        "fundwatch_webhook_dead_letters_total",
        "fundwatch_clickhouse_insert_errors_total",
    ):
        assert name in names


@pytest.mark.parametrize("source", ["rules.yml", "fundwatch.json"])
def test_every_referenced_metric_is_defined_by_the_code(source, dashboard):
    if source == "rules.yml":
        referenced = set(METRIC_NAME.findall(RULES.read_text()))
    else:
        referenced = {name for expr in dashboard_exprs(dashboard) for name in METRIC_NAME.findall(expr)}
    assert referenced, f"{source} references no FundWatch metric"
    unknown = sorted(referenced - exposed_metric_names())
    assert not unknown, f"{source} uses metric names the code does not define: {', '.join(unknown)}"


# --- Grafana --------------------------------------------------------------------------------


def test_dashboard_panels_have_titles_queries_and_unique_ids(dashboard):
    panels = list(all_panels(dashboard))
    assert panels
    ids = [panel.get("id") for panel in panels]
    assert None not in ids, "a panel has no id"
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"panel ids used twice: {duplicates}"
    for panel in panels:
        assert panel.get("title"), f"panel {panel['id']} has no title"
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        assert targets, f"panel {panel['title']!r} has no target"
        for target in targets:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r}: a target has no expr"


def test_dashboard_uses_the_provisioned_datasource(dashboard):
    refs = list(datasource_refs(dashboard))
    assert refs, "the dashboard names no datasource"
    for ref in refs:
        assert isinstance(ref, dict) and ref.get("uid") == DATASOURCE_UID, f"datasource {ref!r}"
    assert re.search(rf"^\s*uid:\s*{DATASOURCE_UID}\s*$", DATASOURCES.read_text(), re.MULTILINE)


def test_dashboard_queries_parse_as_promql(promtool, dashboard, tmp_path):
    # promtool parses every expression of a rule file; Grafana's interval variables become a
    # fixed window for that.
    rules = [
        {"record": f"dashboard:query_{index}", "expr": GRAFANA_VARIABLE.sub("5m", expr)}
        for index, expr in enumerate(dashboard_exprs(dashboard))
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", str(path))
