"""Deployment artefacts agree with the code: Kubernetes manifests, Grafana, metric names in PromQL.

- deploy/k8s: probes, ports and settings match scrubber.config.Settings; replicas never exceed
  the partitions; the Secret holds exactly the secret settings.
- deploy/grafana and deploy/prometheus/alerts.yml: every PromQL expression names only metrics
  that scrubber.metrics.Metrics really exports (or that Prometheus makes, like ``up``), and only
  labels they carry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from scrubber.config import Settings
from scrubber.metrics import IntakeMetrics, Metrics

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy/k8s"
GRAFANA = REPO / "deploy/grafana"
DASHBOARD = GRAFANA / "dashboards/claim-scrubber.json"
ALERTS = REPO / "deploy/prometheus/alerts.yml"

SETTINGS = {f"SCRUBBER_{name.upper()}" for name in Settings.model_fields}
SECRET_SETTINGS = {
    f"SCRUBBER_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if "SecretStr" in str(field.annotation)
}
DEFAULTS = Settings.model_construct()


# ------------------------------------------------------------------------ Kubernetes manifests
def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def objects() -> list[dict[str, Any]]:
    return [d for d in manifests() if d["kind"] != "Kustomization"]


def one(kind: str, component: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in objects()
        if d["kind"] == kind
        and (
            component is None or d["metadata"]["labels"]["app.kubernetes.io/component"] == component
        )
    ]
    assert len(found) == 1, f"{len(found)} {kind} {component or ''}"
    return found[0]


def configmap() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap")["data"]
    return data


def secret() -> dict[str, str]:
    data: dict[str, str] = one("Secret")["stringData"]
    return data


def pod_specs() -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in objects() if d["kind"] in ("Deployment", "Job")]


def worker() -> dict[str, Any]:
    (container,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_every_file_parses_and_is_namespace_agnostic() -> None:
    kinds = sorted(d["kind"] for d in objects())
    assert kinds == sorted(
        ["ConfigMap", "Secret", "Deployment", "PodDisruptionBudget", "Service", "Job", "Job"]
    )
    for doc in objects():
        assert doc["apiVersion"] and doc["metadata"]["name"], doc
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "claim-scrubber"


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = [d for d in manifests() if d["kind"] == "Kustomization"]
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert "namespace" not in kustomization


def test_every_scrubber_name_is_a_real_setting() -> None:
    text = "\n".join(p.read_text() for p in sorted(K8S.iterdir()) if p.is_file())
    used = set(re.findall(r"SCRUBBER_[A-Z0-9_]+", text))
    assert used, "no SCRUBBER_ setting in deploy/k8s"
    assert used <= SETTINGS, sorted(used - SETTINGS)
    env = {e["name"] for e in worker().get("env", [])}
    assert set(configmap()) | set(secret()) | env <= SETTINGS


def test_the_secret_holds_exactly_the_secret_settings() -> None:
    assert SECRET_SETTINGS, "Settings has no secret field?"
    assert set(secret()) == SECRET_SETTINGS
    assert not SECRET_SETTINGS & set(configmap()), "a secret in the ConfigMap"
    assert not SECRET_SETTINGS & {e["name"] for e in worker().get("env", [])}
    # Placeholders only, never something that looks like a real credential.
    for name, value in secret().items():
        assert "CHANGE-ME" in value, name


def test_configmap_and_secret_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    values = {**configmap(), **secret(), **{e["name"]: e["value"] for e in worker()["env"]}}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # validates every value: literals, numbers, ranges
    # The pod must answer the kubelet and Prometheus on its pod address.
    assert settings.web_host == "0.0.0.0"  # noqa: S104
    assert settings.web_port == DEFAULTS.web_port
    assert settings.kafka_sasl_password is not None


def test_replicas_never_exceed_the_partitions() -> None:
    replicas = one("Deployment")["spec"]["replicas"]
    partitions = int(configmap()["SCRUBBER_PARTITIONS"])
    assert 1 <= replicas <= partitions, (replicas, partitions)
    # A surge pod would be one consumer too many: never ready, stuck rollout.
    rolling = one("Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxSurge"] == 0
    assert rolling["maxUnavailable"] >= 1


def test_probes_and_ports_match_the_worker_settings() -> None:
    port = int(configmap().get("SCRUBBER_WEB_PORT", DEFAULTS.web_port))
    assert port == DEFAULTS.web_port
    container = worker()
    assert container["args"] == ["worker"]
    (cport,) = container["ports"]
    assert cport["containerPort"] == port
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["startupProbe"]["path"] == "/healthz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["port"] in (cport["name"], port)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SCRUBBER_WEB_HOST"] == "0.0.0.0"  # noqa: S104
    service = one("Service")
    (sport,) = service["spec"]["ports"]
    assert sport["port"] == port
    assert sport["targetPort"] in (cport["name"], port)


def test_selectors_match_the_worker_pods() -> None:
    deployment = one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one("Service")["spec"]["selector"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items(), selector
    assert "maxUnavailable" in one("PodDisruptionBudget")["spec"]


def test_graceful_stop_and_resources() -> None:
    spec = one("Deployment")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 30
    text = (K8S / "deployment.yaml").read_text()
    assert re.search(r"#.*SIGTERM", text), "the grace period is explained in a comment"
    for pod in pod_specs():
        for container in pod["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), container["name"]
            assert "memory" in resources["limits"], container["name"]


def test_pods_run_non_root_on_a_read_only_root_filesystem() -> None:
    dockerfile = (REPO / "deploy/docker/Dockerfile").read_text()
    uid = int(re.search(r"useradd .*--uid (\d+)", dockerfile).group(1))  # type: ignore[union-attr]
    for pod in pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, container["name"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            for mount in container.get("volumeMounts", []):
                assert "emptyDir" in volumes[mount["name"]], mount
    # The worker's data dir is a writable emptyDir mount.
    mounts = {m["mountPath"]: m["name"] for m in worker()["volumeMounts"]}
    data_dir = configmap()["SCRUBBER_DATA_DIR"]
    assert data_dir in mounts, (data_dir, mounts)


def test_every_pod_takes_its_settings_from_the_configmap_and_secret() -> None:
    names = {one("ConfigMap")["metadata"]["name"], one("Secret")["metadata"]["name"]}
    images = set()
    for pod in pod_specs():
        (container,) = pod["containers"]
        images.add(container["image"])
        refs = {
            next(iter(ref.values()))["name"]
            for ref in container["envFrom"]
            if {"configMapRef", "secretRef"} & ref.keys()
        }
        assert refs == names, container["name"]
    assert len(images) == 1, f"the Jobs and the workers run different images: {images}"


def test_the_jobs_create_topics_and_load_reference_data() -> None:
    topics = one("Job", "topics")["spec"]["template"]["spec"]
    (container,) = topics["containers"]
    assert container["args"] == ["topics", "create"]  # the image's ENTRYPOINT is `scrubber`
    refdata = one("Job", "refdata")["spec"]["template"]["spec"]
    (container,) = refdata["containers"]
    script = " ".join(container["command"] + container["args"])
    build = re.search(r"scrubber refdata build .*-o (\S+)", script)
    assert build, script
    assert re.search(rf"&& scrubber refdata load --bundle {re.escape(build.group(1))}\b", script)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(build.group(1)).parent) in mounts, "the bundle is written to a writable mount"
    for pod in (topics, refdata):
        assert pod["restartPolicy"] in ("OnFailure", "Never")


def test_the_readme_explains_replicas_and_how_to_apply() -> None:
    text = (K8S / "README.md").read_text()
    assert "never ready" in text
    assert "partition" in text and "history" in text
    assert "kubectl apply -k deploy/k8s" in text


# ------------------------------------------------------------------------ metric names in PromQL
def exported() -> tuple[set[str], set[str]]:
    """Series names and label names the worker's and the X12 intake's registries export."""
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "info": ("_info",),
    }
    names = set()
    labels = {"job", "instance", "le"}
    for metrics in (Metrics(), IntakeMetrics()):
        for family in metrics.registry.collect():
            names |= {family.name + s for s in suffixes[family.type]}
            for sample in family.samples:
                labels |= sample.labels.keys()
        for collector in vars(metrics).values():
            labels |= set(getattr(collector, "_labelnames", ()))
    return names, labels


PROMETHEUS_MADE = {"up"}  # series Prometheus itself writes for each target
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
KEYWORDS |= {"and", "or", "unless", "offset", "inf", "nan"}
GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression uses; Grafana variables are ignored."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels = set(
        re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", "".join(re.findall(r"\{[^}]*\}", text)))
    )
    for group in re.findall(GROUPING, text):
        labels |= {g.strip() for g in group.split(",") if g.strip()}
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(GROUPING, " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        if m.group(2) is None and m.group(1).lower() not in KEYWORDS:
            names.add(m.group(1))
    return names, labels


def test_the_promql_parser_of_these_tests_finds_names() -> None:
    names, labels = promql_names(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$x"}[$__rate_interval])))'
        ' / on (job) b_total offset 10m > 2 * 86400 and absent(up{job="j"})'
    )
    assert names == {"a_bucket", "b_total", "up"}
    assert labels == {"le", "instance", "job"}


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in dashboard()["panels"]:
        found += [panel, *panel.get("panels", [])]  # rows may hold panels
    return [p for p in found if p["type"] != "row"]


def dashboard_exprs() -> list[tuple[str, str]]:
    exprs = [(p["title"], t["expr"]) for p in panels() for t in p["targets"]]
    for var in dashboard()["templating"]["list"]:
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((\w+)(?:\{([^}]*)\})?,\s*(\w+)\)", query)
        assert m, query
        matchers = ", ".join(x for x in (m.group(2), f"{m.group(3)}!=''") if x)
        exprs.append((f"${var['name']}", f"{m.group(1)}{{{matchers}}}"))
    return exprs


def alert_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


@pytest.mark.parametrize(("where", "expr"), dashboard_exprs() + alert_exprs())
def test_promql_uses_only_exported_metrics_and_labels(where: str, expr: str) -> None:
    metric_names, label_names = exported()
    names, labels = promql_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    assert names <= metric_names | PROMETHEUS_MADE, (where, sorted(names - metric_names))
    assert labels <= label_names, (where, sorted(labels - label_names))


# ------------------------------------------------------------------------ Grafana
def datasource() -> dict[str, Any]:
    doc = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (ds,) = doc["datasources"]
    return ds  # type: ignore[no-any-return]


def test_the_dashboard_uses_the_provisioned_datasource_by_uid() -> None:
    ds = datasource()
    assert ds["type"] == "prometheus" and ds["uid"]
    refs = [p["datasource"] for p in panels()]
    refs += [t["datasource"] for p in panels() for t in p["targets"]]
    refs += [v["datasource"] for v in dashboard()["templating"]["list"]]
    for ref in refs:
        assert ref == {"type": "prometheus", "uid": ds["uid"]}, ref


QUANTILE = r"histogram_quantile\({q}, sum by \(le\) \(rate\({metric}_bucket"


def test_the_dashboard_has_the_panels_on_call_needs() -> None:
    exprs = " ".join(expr for _, expr in dashboard_exprs())
    wanted = {
        "throughput": r"rate\(scrubber_lines_consumed_total",
        "outcome mix": r"sum by \(outcome\) \(rate\(scrubber_results_total",
        "top rules": r"topk\(\d+, sum by \(rule_id\) \(\w+\(scrubber_findings_total",
        "dead letters": r"sum by \(error_code\) \(rate\(scrubber_dead_letters_total",
        "latency p50": QUANTILE.format(q=r"0\.5", metric="scrubber_processing_seconds"),
        "latency p99": QUANTILE.format(q=r"0\.99", metric="scrubber_processing_seconds"),
        "line age p99": QUANTILE.format(q=r"0\.99", metric="scrubber_line_age_seconds"),
        "lag per partition": r"by \(partition\) \(scrubber_consumer_lag",
        "refdata version": r"scrubber_refdata_info",
        "redis up": r"scrubber_redis_up",
        "ready workers": r"sum\(scrubber_ready",
        "revisions/s": r"rate\(scrubber_revisions_total",
        "recovery repairs": r"increase\(scrubber_table_recovery_reseeks_total",
        "findings by payer profile": r"sum by \(profile\) \(rate\(scrubber_findings_total",
        "claims by outcome": r"sum by \(outcome\) \(rate\(scrubber_claims_total",
        "x12 sets": r"sum by \(outcome\) \(rate\(scrubber_x12_transaction_sets_total",
        "x12 intakes up": r'up\{job="claim-scrubber-x12"\}',
        "rebalances": r"increase\(scrubber_partition_assignments_total",
    }
    missing = [name for name, pattern in wanted.items() if not re.search(pattern, exprs)]
    assert not missing, missing


def test_the_dashboard_layout_is_sound() -> None:
    doc = dashboard()
    assert doc["uid"] and doc["title"]
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    taken: set[tuple[int, int]] = set()
    for p in panels():
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] >= 1 and g["x"] + g["w"] <= 24, p["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells
        assert p["targets"], p["title"]
        refids = [t["refId"] for t in p["targets"]]
        assert len(refids) == len(set(refids)), p["title"]


def test_compose_provisions_grafana_from_this_directory() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/claim-scrubber.yml").read_text())
    (prov,) = provider["providers"]
    assert mounts["./deploy/grafana/dashboards"] == prov["options"]["path"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    # The datasource points at the compose Prometheus service.
    assert datasource()["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
