"""The Prometheus alert rules and scrape configs: promtool checks them and runs their unit tests.

promtool comes from Debian's ``prometheus`` package (``deploy/local/prometheus.sh install``, which
``make test`` runs first). Without it these tests fail: a skipped test would let broken alerts
through unnoticed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy/prometheus"
ALERTS = PROM / "alerts.yml"
ALERT_TESTS = PROM / "alerts.test.yml"
JOB = "claim-scrubber"
SEVERITIES = {"critical", "warning"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install it with `deploy/local/prometheus.sh install` "
            "(Debian package `prometheus`); `make test` does this before the tests"
        )
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in rules()]


def test_promtool_accepts_the_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules())} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerts_the_runbook_promises_exist() -> None:
    expected = {
        "ScrubberNoProgress",
        "ScrubberConsumerLagHigh",
        "ScrubberDeadLettersHigh",
        "ScrubberProcessingErrors",
        "ScrubberProcessingLatencyHigh",
        "ScrubberRefdataStale",
        "ScrubberRefdataVersionMismatch",
        "ScrubberRedisDown",
        "ScrubberNotReady",
        "ScrubberTargetDown",
        "ScrubberNoTargets",
        "ScrubberTableRecoveryStalled",
        "ScrubberHistorySetAside",
        "ScrubberHistoryCapped",
        "ScrubberX12IntakeDown",
    }
    names = alert_names()
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) == expected


@pytest.mark.parametrize("name", alert_names())
def test_every_alert_is_written_for_the_engineer_on_call(name: str) -> None:
    rule = next(r for r in rules() if r["alert"] == name)
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name} has no `for:`"
    assert rule["labels"]["severity"] in SEVERITIES
    notes = rule["annotations"]
    assert set(notes) == {"summary", "description", "threshold", "runbook"}, notes.keys()
    assert len(notes["summary"]) <= 120, "a summary is one line for a pager"
    assert "Check first" in notes["description"], "the description says what to check first"
    assert notes["runbook"] == f"README.md, Operations > Alerts > {name}"
    # The documented threshold names the rule's `for:` duration.
    assert str(rule["for"]) in notes["threshold"], (rule["for"], notes["threshold"])


def test_alerts_on_targets_use_the_scrape_job_name() -> None:
    for rule in rules():
        if re.search(r"\bup\{", rule["expr"]):
            assert re.search(f'job="{JOB}(-x12)?"', rule["expr"]), rule["alert"]


def _cases() -> list[tuple[str, bool]]:
    doc = yaml.safe_load(ALERT_TESTS.read_text())
    return [
        (case["alertname"], bool(case.get("exp_alerts")))
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def test_unit_tests_cover_every_alert_firing_and_quiet() -> None:
    cases = _cases()
    names = set(alert_names())
    firing = {name for name, fires in cases if fires}
    quiet = {name for name, fires in cases if not fires}
    assert names - firing == set(), f"alerts never tested firing: {sorted(names - firing)}"
    assert names - quiet == set(), f"alerts never tested quiet: {sorted(names - quiet)}"
    assert {name for name, _ in cases} <= names, "tests of alerts that do not exist"
    doc = yaml.safe_load(ALERT_TESTS.read_text())
    assert doc["rule_files"] == [ALERTS.name]


def _render_local(tmp_path: Path, target: str) -> Path:
    text = (PROM / "prometheus.local.yml").read_text()
    placeholders = set(re.findall(r"@[A-Z0-9_]+@", text))
    assert placeholders == {
        "@SCRAPE_INTERVAL@",
        "@TARGET@",
        "@X12_TARGET@",
        "@ALERTS_FILE@",
    }, placeholders
    text = (
        text.replace("@SCRAPE_INTERVAL@", "5s")
        .replace("@TARGET@", target)
        .replace("@X12_TARGET@", "127.0.0.1:6067")
        .replace("@ALERTS_FILE@", str(ALERTS))
    )
    out = tmp_path / "prometheus.yml"
    out.write_text(text)
    return out


def test_promtool_accepts_the_compose_and_local_configs(tmp_path: Path) -> None:
    for config in (PROM / "prometheus.yml", _render_local(tmp_path, "127.0.0.1:6066")):
        result = run_promtool("check", "config", str(config))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 rule files found" in result.stdout, result.stdout


def _scrape_jobs(path: Path) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = yaml.safe_load(path.read_text())["scrape_configs"]
    return jobs


def test_compose_prometheus_scrapes_the_worker_with_the_alerts() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    # Same major version as the promtool that tests the rules.
    assert prometheus["image"].startswith("prom/prometheus:v2.")
    worker_port = services["worker"]["environment"]["SCRUBBER_WEB_PORT"]
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["rule_files"] == [ALERTS.name]
    job, x12 = _scrape_jobs(PROM / "prometheus.yml")
    assert job["job_name"] == JOB
    assert job["static_configs"] == [{"targets": [f"worker:{worker_port}"]}]
    # The X12 intake is a job of its own: the worker's alerts (up{job=...}) keep to the worker.
    x12_port = services["x12-intake"]["environment"]["SCRUBBER_X12_WEB_PORT"]
    assert x12["job_name"] == JOB + "-x12"
    assert x12["static_configs"] == [{"targets": [f"x12-intake:{x12_port}"]}]


def test_every_scrape_config_names_the_job_the_alerts_expect() -> None:
    # prometheus.k8s.yml uses kubernetes_sd_configs, which Debian's promtool is built without,
    # so it is checked here by structure and against deploy/k8s/service.yaml.
    for name in ("prometheus.yml", "prometheus.local.yml", "prometheus.k8s.yml"):
        jobs = _scrape_jobs(PROM / name)
        assert jobs[0]["job_name"] == JOB, name
        assert [j["job_name"] for j in jobs[1:]] == (
            [JOB + "-x12"] if name != "prometheus.k8s.yml" else []
        ), name
        assert all(j["metrics_path"] == "/metrics" for j in jobs), name
    (job,) = _scrape_jobs(PROM / "prometheus.k8s.yml")
    service = yaml.safe_load((REPO / "deploy/k8s/service.yaml").read_text())
    # Kubernetes SD exposes service label `a.b/c` as __meta_kubernetes_service_label_a_b_c.
    meta = {
        "__meta_kubernetes_service_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key): value
        for key, value in service["metadata"]["labels"].items()
    }
    keep = job["relabel_configs"][0]
    assert keep["action"] == "keep"
    values = [meta[source] for source in keep["source_labels"]]
    assert re.fullmatch(keep["regex"], ";".join(values)), (keep["regex"], values)
    port_keep = job["relabel_configs"][1]
    assert port_keep["source_labels"] == ["__meta_kubernetes_endpoint_port_name"]
    assert re.fullmatch(port_keep["regex"], service["spec"]["ports"][0]["name"])
