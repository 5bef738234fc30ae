"""A real Prometheus scrapes a real worker: the metrics arrive, the alert rules load and evaluate.

Prometheus is Debian's ``prometheus`` binary (``deploy/local/prometheus.sh install``), run on a
free loopback port with deploy/prometheus/prometheus.local.yml rendered for the test's worker
and X12 intake (scraped every second) and deploy/prometheus/alerts.yml loaded. The test
publishes lines, then reads the counters back through Prometheus's HTTP API and checks them
against what was sent. Then, with lines and 837 interchanges flowing, every Grafana panel query
and every alert expression (its comparisons made ``bool``, so that it answers below its
threshold too) must return data: a query that returns nothing is a defect. Last, it stops the
worker and the intake to see ScrubberTargetDown and ScrubberX12IntakeDown go pending on the real
`up` series.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from scrubber.accounting import key_of, publish
from scrubber.examples import generate
from scrubber.kafka import client_kwargs
from tests.unit.x12data import Claim, Line, render, simple

from .background import Background
from .conftest import REPO, WorkerProcess, free_port, load_bundle

pytestmark = pytest.mark.integration

PROM = REPO / "deploy/prometheus"
DASHBOARD = REPO / "deploy/grafana/dashboards/claim-scrubber.json"
JOB = "claim-scrubber"
X12_JOB = JOB + "-x12"
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

    def __init__(self, binary: str, workdir: Path, target: str, x12_target: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self.config = workdir / "prometheus.yml"
        text = (
            (PROM / "prometheus.local.yml")
            .read_text()
            .replace("@SCRAPE_INTERVAL@", "1s")
            .replace("@TARGET@", target)
            .replace("@X12_TARGET@", x12_target)
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
) -> Iterator[Callable[[str, str], PrometheusServer]]:
    """Start Prometheus for a worker and an X12 intake; always stopped at the end of the test."""
    servers: list[PrometheusServer] = []

    def start(target: str, x12_target: str) -> PrometheusServer:
        server = PrometheusServer(prometheus_binary, tmp_path, target, x12_target)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        assert server.proc.poll() is not None


COMPARISON = re.compile(r"(>=|<=|==|!=|>|<)(\s*bool\b)?")


def answering(expr: str) -> str:
    """An alert expression that returns its series below the threshold too.

    Every comparison outside label matchers becomes a ``bool`` comparison (0 or 1 instead of
    dropping the series), and ``absent(x)`` becomes ``x``: what is left returns data exactly
    when the series the alert watches exist and its functions and matchings hold.
    """
    out: list[str] = []
    depth, quote, i = 0, "", 0
    while i < len(expr):
        c = expr[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif depth == 0 and (m := COMPARISON.match(expr, i)):
            out.append(m.group(0) if m.group(2) else m.group(1) + " bool")
            i = m.end()
            continue
        out.append(c)
        i += 1
    text = "".join(out).strip()
    while (at := text.find("absent(")) >= 0:
        depth, end = 0, at + len("absent")
        for end in range(at + len("absent"), len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        text = text[:at] + "(" + text[at + len("absent(") : end] + ")" + text[end + 1 :]
    return text


def test_answering_keeps_matchers_and_makes_comparisons_bool() -> None:
    assert answering('up{job="a"} == 0') == 'up{job="a"} == bool 0'
    assert answering('absent(up{job="a"})') == '(up{job="a"})'
    assert (
        answering('x{a=~"b", c!="d"} > 2 * 86400 and y != 0')
        == 'x{a=~"b", c!="d"} > bool 2 * 86400 and y != bool 0'
    )
    assert answering("a >= bool 1") == "a >= bool 1"
    assert answering("absent(a) or absent(rate(b[5m]))") == "(a) or (rate(b[5m]))"


class Load(Background):
    """Lines to the input topic and 837 interchanges to the X12 topic until stopped.

    About 200 lines a second in batches, and one three-claim interchange a second: a tenth of
    what one worker handles, enough for every rate and quantile to have samples.
    """

    def __init__(self, settings: Any, lines: list[bytes]) -> None:
        self.settings = settings
        self.lines = lines
        self.sent_lines = 0
        self.sent_x12 = 0
        super().__init__("load")

    def run(self) -> None:
        asyncio.run(self._send())

    async def _send(self) -> None:
        producer = AIOKafkaProducer(**client_kwargs(self.settings), acks="all", linger_ms=5)
        await producer.start()
        try:
            n = 0
            while not self.stop.is_set() and self.sent_lines < len(self.lines):
                batch = self.lines[self.sent_lines : self.sent_lines + 50]
                for raw in batch:
                    await producer.send(self.settings.input_topic, value=raw, key=key_of(raw))
                self.sent_lines += len(batch)
                if n % 4 == 0:
                    control = 700 + self.sent_x12
                    claims = [
                        Claim(claim_id=f"P{control}-{c}", lines=[Line(), Line(procedure="11042")])
                        for c in range(3)
                    ]
                    interchange = render(
                        [(str(control), [simple(claims)])], control=f"{control:09d}"
                    )
                    await producer.send(self.settings.x12_topic, value=interchange, key=b"SUB1")
                    self.sent_x12 += 1
                await producer.flush()
                n += 1
                await asyncio.sleep(0.25)
        finally:
            await producer.stop()


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


def alert_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


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
    settings, worker: WorkerProcess, bundle, prometheus, tmp_path: Path, request
) -> None:
    started = time.monotonic()
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    target = f"{settings.web_host}:{settings.web_port}"
    x12_target = f"{settings.web_host}:{settings.x12_web_port}"
    intake = WorkerProcess(settings, tmp_path / "x12.log", command=("x12", "serve"))
    intake.start()
    request.addfinalizer(
        lambda: intake.proc is None or intake.proc.poll() is not None or intake.stop()
    )
    server = prometheus(target, x12_target)
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
    assert (
        server.value(f'scrubber_dead_letters_total{{job="{JOB}", error_code="missing_key"}}') == 1
    )
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
    assert set(rules) == declared and len(declared) == 15, sorted(rules)
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

    # Under load, lines and 837s: every Grafana panel query and every alert
    # expression returns data.
    with Load(settings, generate(bundle, 6000, seed=29)) as load:
        eventually(
            lambda: server.value(f'up{{job="{X12_JOB}"}}') == 1, 30, "the X12 intake scraped"
        )
        eventually(
            lambda: (
                (server.value(f'scrubber_x12_lines_published_total{{job="{X12_JOB}"}}') or 0) > 0
                and (server.value("sum(scrubber_claims_total)") or 0) > 0
            ),
            60,
            "837 lines published by the intake and their claims judged by the worker",
        )
        for title, expr in grafana_exprs():
            eventually(lambda expr=expr: server.query(expr), 15, f"panel {title!r}: {expr}")
        for name, expr in alert_exprs():
            signal = answering(expr)
            assert signal != expr.strip() or "bool" in expr, name
            eventually(lambda s=signal: server.query(s), 15, f"alert {name}: {signal}")
        assert load.sent_lines > 0 and load.sent_x12 > 0
    assert server.value('scrubber_x12_transaction_sets_total{outcome="rejected"}') == 0
    # The intake exports none of the worker's gauges: no worker alert can fire on it.
    assert server.query(f'scrubber_ready{{job="{X12_JOB}"}}') == []

    # A stopped worker: `up` drops to 0 and ScrubberTargetDown goes pending (for: 2m); the same
    # for the intake and ScrubberX12IntakeDown.
    assert worker.stop() == 0
    assert intake.stop() == 0, intake.log_tail()
    for job, alert in ((JOB, "ScrubberTargetDown"), (X12_JOB, "ScrubberX12IntakeDown")):
        eventually(
            lambda job=job: server.value(f'up{{job="{job}"}}') == 0,
            10,
            f"up == 0 for {job} after it stopped",
        )
        eventually(
            lambda alert=alert: alert_rules(server)[alert]["state"] == "pending",
            10,
            f"{alert} pending",
        )
    assert time.monotonic() - started < 240
