"""A real Prometheus scrapes a real worker: the metrics arrive, the alert rules load and evaluate.

Prometheus is Debian's ``prometheus`` binary (``deploy/local/prometheus.sh install``), run on a
free loopback port with deploy/prometheus/prometheus.local.yml rendered for the test's worker
(scraped every second) and deploy/prometheus/alerts.yml loaded. The test publishes lines, then
reads the counters back through Prometheus's HTTP API and checks them against what was sent,
evaluates every Grafana dashboard query, and stops the worker to see ScrubberTargetDown go
pending on the real `up` series.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from scrubber.accounting import key_of, publish
from scrubber.examples import generate

from .conftest import REPO, WorkerProcess, free_port, load_bundle

pytestmark = pytest.mark.integration

PROM = REPO / "deploy/prometheus"
DASHBOARD = REPO / "deploy/grafana/dashboards/claim-scrubber.json"
JOB = "claim-scrubber"
LINES = 40


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    """Debian's prometheus, installed by the project's script when missing."""
    subprocess.run([str(REPO / "deploy/local/prometheus.sh"), "install"], check=True, timeout=600)
    path = shutil.which("prometheus")
    assert path, "prometheus not on PATH after `deploy/local/prometheus.sh install`"
    return path


class PrometheusServer:
    """A Prometheus process with its own config, data dir and port."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self.config = workdir / "prometheus.yml"
        text = (
            (PROM / "prometheus.local.yml")
            .read_text()
            .replace("@SCRAPE_INTERVAL@", "1s")
            .replace("@TARGET@", target)
            .replace("@ALERTS_FILE@", str(PROM / "alerts.yml"))
        )
        self.config.write_text(text)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited\n{self.log_tail()}"
            try:
                if httpx.get(self.base + "/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {seconds} s\n{self.log_tail()}")

    def api(self, path: str, **params: str) -> Any:
        r = httpx.get(self.base + "/api/v1/" + path, params=params, timeout=5)
        body = r.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of an expression; None when it has no series."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def prometheus(
    prometheus_binary: str, tmp_path: Path
) -> Iterator[Callable[[str], PrometheusServer]]:
    """Start Prometheus for a target; always stopped at the end of the test."""
    servers: list[PrometheusServer] = []

    def start(target: str) -> PrometheusServer:
        server = PrometheusServer(prometheus_binary, tmp_path, target)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        assert server.proc.poll() is not None


def eventually(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Call check until it returns something truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: still {last!r} after {seconds} s")


def alert_rules(server: PrometheusServer) -> dict[str, dict[str, Any]]:
    groups = server.api("rules", type="alert")["groups"]
    return {rule["name"]: rule for group in groups for rule in group["rules"]}


def grafana_exprs() -> list[tuple[str, str]]:
    """Every panel query, with Grafana's variables replaced as Grafana would."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$__range", "5m")
                .replace("$instance", ".*")
            )
            out.append((panel["title"], expr))
    return out


def test_prometheus_scrapes_the_worker_and_evaluates_the_alerts(
    settings, worker: WorkerProcess, bundle, prometheus
) -> None:
    started = time.monotonic()
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    target = f"{settings.web_host}:{settings.web_port}"
    server = prometheus(target)
    server.wait_ready()
    worker.wait_ready()

    lines = generate(bundle, LINES, seed=23)
    records: list[tuple[bytes | None, bytes]] = [(key_of(raw), raw) for raw in lines]
    records.append((None, lines[0]))  # no key: dead-lettered as missing_key
    asyncio.run(publish(settings, records))
    sent = len(records)

    # Counters through Prometheus: every line consumed and processed, each with one own output.
    eventually(
        lambda: server.value(f'scrubber_processing_seconds_count{{job="{JOB}"}}') == sent,
        30,
        "lines processed, as Prometheus sees them",
    )
    (consumed,) = server.query("scrubber_lines_consumed_total")
    assert float(consumed["value"][1]) == sent
    assert consumed["metric"]["job"] == JOB
    assert consumed["metric"]["instance"] == target
    assert server.value(f'up{{job="{JOB}", instance="{target}"}}') == 1

    def accounted() -> bool:
        results = server.value("sum(scrubber_results_total)") or 0
        revisions = server.value("scrubber_revisions_total") or 0
        dead = server.value("sum(scrubber_dead_letters_total)") or 0
        return results - revisions + dead == sent

    eventually(accounted, 10, "results - revisions + dead letters == lines sent")
    outcomes = {
        r["metric"]["outcome"]: float(r["value"][1]) for r in server.query("scrubber_results_total")
    }
    assert set(outcomes) <= {"accepted", "flagged"}
    assert outcomes.get("accepted", 0) > 0
    assert server.value('scrubber_dead_letters_total{error_code="missing_key"}') == 1
    # A flagged result carries at least one error or warning finding.
    assert (server.value("sum(scrubber_findings_total)") or 0) >= outcomes.get("flagged", 0)
    # Prometheus holds exactly what the worker exports.
    exported = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(
            httpx.get(worker.base_url + "/metrics", timeout=5).text
        )
        for sample in family.samples
        if sample.name == "scrubber_results_total"
    }
    assert exported == outcomes
    (info,) = server.query("scrubber_refdata_info")
    assert info["metric"]["version"] == bundle.version
    assert float(info["value"][1]) == 1
    assert server.value("scrubber_ready") == 1
    assert server.value("scrubber_redis_up") == 1

    # The alert rules are loaded, evaluate without error, and none fires on a healthy worker.
    expected_groups = [
        g["name"] for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
    ]
    groups = server.api("rules")["groups"]
    assert [g["name"] for g in groups] == expected_groups
    assert all(g["file"] == str(PROM / "alerts.yml") for g in groups)

    def evaluated() -> dict[str, dict[str, Any]]:
        rules = alert_rules(server)
        fresh = all(r["health"] == "ok" for r in rules.values())
        return rules if fresh else {}

    rules = eventually(evaluated, 10, "every alert rule evaluated with health ok")
    declared = {
        rule["alert"]
        for group in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert set(rules) == declared and len(declared) == 13, sorted(rules)
    quiet = set(rules) - {"ScrubberProcessingLatencyHigh"}  # a cold first send may be slow

    def active() -> dict[str, str]:
        rules = alert_rules(server)
        return {name: rules[name]["state"] for name in quiet if rules[name]["state"] != "inactive"}

    # An evaluation before the first scrape sees no target; the next one must clear it.
    eventually(lambda: not active(), 15, "no alert active on a healthy worker")
    assert not active(), active()

    # Lag per assigned partition (the worker measures it every 5 s): all of them, all caught up.
    eventually(
        lambda: (
            server.value("count(scrubber_consumer_lag)") == settings.partitions
            and server.value("sum(scrubber_consumer_lag)") == 0
        ),
        15,
        "a lag of 0 on every input partition",
    )

    # Every Grafana panel query runs, and returns data where the worker has some.
    for title, expr in grafana_exprs():
        result = server.query(expr)
        if "dead_letters" not in expr:
            assert result, f"panel {title!r}: no data for {expr}"

    # A stopped worker: `up` drops to 0 and ScrubberTargetDown goes pending (for: 2m).
    assert worker.stop() == 0
    eventually(
        lambda: server.value(f'up{{job="{JOB}"}}') == 0, 10, "up == 0 after the worker stopped"
    )
    eventually(
        lambda: alert_rules(server)["ScrubberTargetDown"]["state"] == "pending",
        10,
        "ScrubberTargetDown pending",
    )
    assert time.monotonic() - started < 90
