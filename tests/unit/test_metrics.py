"""The worker's and the X12 intake's metric sets: each exports its own, closed sets from zero."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scrubber.contracts import DeadLetterCode
from scrubber.metrics import IntakeMetrics, Metrics


def _families(registry) -> dict[str, list]:  # type: ignore[no-untyped-def]
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_every_dead_letter_code_is_exported_at_zero_before_the_first_one() -> None:
    for metrics in (Metrics(), IntakeMetrics()):
        samples = _families(metrics.registry)["scrubber_dead_letters"]
        totals = {s.labels["error_code"]: s.value for s in samples if s.name.endswith("_total")}
        assert totals == {code.value: 0.0 for code in DeadLetterCode}


def test_the_intake_exports_none_of_the_workers_gauges() -> None:
    intake = {f.name for f in IntakeMetrics().registry.collect()}
    worker = {f.name for f in Metrics().registry.collect()}
    # The worker's alerts (scrubber_ready == 0, scrubber_redis_up == 0, ...) would fire on an
    # intake exporting these at 0.
    assert not {"scrubber_ready", "scrubber_redis_up", "scrubber_consumer_lag"} & intake
    assert intake & worker == {"scrubber_dead_letters", "scrubber_build"}
    assert {"scrubber_x12_records", "scrubber_x12_transaction_sets"} <= intake - worker


def test_the_intake_exports_both_outcomes_from_the_start() -> None:
    samples = _families(IntakeMetrics().registry)["scrubber_x12_transaction_sets"]
    outcomes = {s.labels["outcome"] for s in samples if s.name.endswith("_total")}
    assert outcomes == {"accepted", "rejected"}


def test_the_worker_exports_both_outcomes_from_the_start() -> None:
    families = _families(Metrics().registry)
    for name in ("scrubber_results", "scrubber_claims"):
        outcomes = {s.labels["outcome"] for s in families[name] if s.name.endswith("_total")}
        assert outcomes == {"accepted", "flagged"}, name
