"""Prometheus metrics of the scrubber, named by Prometheus conventions.

Base units (seconds), ``_total`` counters, and labels from closed sets only (outcome, rule id,
severity, dead-letter code): never a member id, claim id or line id, which would be PHI or an
unbounded series count. One ``Metrics`` object per registry so that tests can use a fresh one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from scrubber import __version__
from scrubber.contracts import DeadLetterCode, Outcome

#: Processing time buckets: the engine takes tens of microseconds, a result send a few
#: milliseconds; the tail up to 5 s shows a stalled producer or a slow snapshot swap.
PROCESSING_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


#: Line age buckets: a healthy worker handles a line within milliseconds of its publication; a
#: backlog shows up as seconds to hours.
AGE_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)


#: X12 record buckets: a one-claim interchange takes milliseconds, a 1 MiB one seconds.
X12_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def dead_letters(registry: CollectorRegistry) -> Counter:
    """Dead letters by error code, every code of the closed set exported from the start at 0.

    A labelled series that appears only when it first moves hides that first step from
    ``rate()`` and ``increase()``, and leaves the dashboard's dead-letter panel and the
    dead-letter alerts without data on a healthy worker.
    """
    counter = Counter(
        "scrubber_dead_letters",
        "Input messages routed to the dead-letter topic, by error code.",
        ["error_code"],
        registry=registry,
    )
    for code in DeadLetterCode:
        counter.labels(code.value)
    return counter


def build_info(registry: CollectorRegistry) -> Info:
    """``scrubber_build_info{version}``: which release a process runs."""
    info = Info("scrubber_build", "Version of the scrubber.", registry=registry)
    info.info({"version": __version__})
    return info


class IntakeMetrics:
    """What the X12 intake (``scrubber x12 serve``) exports, and nothing of the worker's.

    A process of its own with its own scrape job: were it to export the worker's gauges
    (``scrubber_ready``, ``scrubber_redis_up`` at 0), the worker's alerts would fire on it.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.x12_records = Counter(
            "scrubber_x12_records",
            "Records taken from the X12 topic (each holds one or more interchanges).",
            registry=r,
        )
        self.x12_interchanges = Counter(
            "scrubber_x12_interchanges",
            "Interchanges read from the X12 topic, by outcome (rejected: its envelope was refused "
            "as a whole).",
            ["outcome"],
            registry=r,
        )
        self.x12_transaction_sets = Counter(
            "scrubber_x12_transaction_sets",
            "837 transaction sets, by outcome (rejected: named in the 999, no line published).",
            ["outcome"],
            registry=r,
        )
        self.x12_lines = Counter(
            "scrubber_x12_lines_published",
            "Claim lines published to the input topic from accepted transaction sets.",
            registry=r,
        )
        self.x12_seconds = Histogram(
            "scrubber_x12_processing_seconds",
            "Time from taking an X12 record to handing its lines and acknowledgements to the "
            "producer.",
            buckets=X12_BUCKETS,
            registry=r,
        )
        for outcome in ("accepted", "rejected"):
            self.x12_interchanges.labels(outcome)
            self.x12_transaction_sets.labels(outcome)
        self.dead_letters = dead_letters(r)
        self.build = build_info(r)


class Metrics:
    """Every metric the worker exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.lines_consumed = Counter(
            "scrubber_lines_consumed", "Input messages taken from the input topic.", registry=r
        )
        self.results = Counter(
            "scrubber_results", "Results emitted, by outcome.", ["outcome"], registry=r
        )
        self.findings = Counter(
            "scrubber_findings",
            "Findings on emitted results, by rule, severity (as the payer profile has it) and "
            "payer profile (none: no profile matched).",
            ["rule_id", "severity", "profile"],
            registry=r,
        )
        self.dead_letters = dead_letters(r)
        self.revisions = Counter(
            "scrubber_revisions",
            "Results that revised an earlier line's verdict (revision > 1).",
            registry=r,
        )
        self.histories_set_aside = Counter(
            "scrubber_histories_set_aside",
            "Stored patient histories that did not decode and were set aside (the line was "
            "judged without them).",
            registry=r,
        )
        self.history_lines_capped = Counter(
            "scrubber_history_lines_capped",
            "A patient's oldest lines dropped to keep the patient's history within its size "
            "limit (revisions.HISTORY_MAX_BYTES): later lines are no longer compared with them.",
            registry=r,
        )
        self.claims_forgotten = Counter(
            "scrubber_claims_forgotten",
            "A patient's oldest claims forgotten to keep the patient's claims being assembled "
            "within the history table's value limit: they get no new ClaimResult.",
            registry=r,
        )
        self.claim_assemblies_set_aside = Counter(
            "scrubber_claim_assemblies_set_aside",
            "Stored claim assemblies that did not decode and were set aside (the patient's "
            "claims started afresh).",
            registry=r,
        )
        self.history_store_errors = Counter(
            "scrubber_history_store_errors",
            "Reads of the patient history store that failed; the line was held and tried again.",
            registry=r,
        )
        self.skipped_recovered = Counter(
            "scrubber_skipped_records_recovered",
            "Input records the consumer skipped that the worker read back and handled.",
            registry=r,
        )
        self.acks_refused = Counter(
            "scrubber_input_acks_refused",
            "Input records Faust let go of without handing them to the worker; never committed, "
            "fetched again or read back by the gap guard.",
            registry=r,
        )
        self.partitions_resumed = Counter(
            "scrubber_input_partitions_resumed",
            "Quiet input partitions fetched again: Faust had stopped fetching them for a full "
            "stream buffer and never resumed.",
            registry=r,
        )
        self.assignments = Counter(
            "scrubber_partition_assignments",
            "Partition assignments this worker received, one per rebalance it took part in: a "
            "steady rise without workers joining or leaving is a rebalance storm (session "
            "timeouts, a slow broker, a blocked event loop).",
            registry=r,
        )
        self.recovery_reseeks = Counter(
            "scrubber_table_recovery_reseeks",
            "Changelog partitions moved back: the table recovery lacked records already fetched.",
            registry=r,
        )
        self.claims = Counter(
            "scrubber_claims",
            "Claim results emitted (a claim complete, or changed by a line's new verdict), by "
            "outcome; a re-sent one is not counted.",
            ["outcome"],
            registry=r,
        )
        self.x12_277ca = Counter(
            "scrubber_x12_277ca",
            "277CA interchanges written for claims of 837s (one per submitter per line that "
            "completed or changed claims); a re-sent one is not counted.",
            registry=r,
        )
        for outcome in Outcome:  # both from the start, at 0: see dead_letters()
            self.results.labels(outcome.value)
            self.claims.labels(outcome.value)
        self.history_patients = Gauge(
            "scrubber_history_patients",
            "Entries of this worker's history table (its assigned partitions): a patient's "
            "history, and a patient's claim assembly when the patient has claims from 837s.",
            registry=r,
        )
        self.processing_seconds = Histogram(
            "scrubber_processing_seconds",
            "Time from taking a message to handing its outputs to the producer.",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.line_age_seconds = Histogram(
            "scrubber_line_age_seconds",
            "Age of a line when it is processed: now minus its Kafka record timestamp.",
            buckets=AGE_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "scrubber_consumer_lag",
            "Records of the input topic not yet processed by this worker, per partition.",
            ["partition"],
            registry=r,
        )
        self.refdata = Info(
            "scrubber_refdata", "The reference data version this worker uses.", registry=r
        )
        self.refdata_loaded_timestamp = Gauge(
            "scrubber_refdata_loaded_timestamp_seconds",
            "When this worker loaded its current reference data version (Unix time).",
            registry=r,
        )
        self.refdata_swaps = Counter(
            "scrubber_refdata_swaps", "Reference data versions this worker switched to.", registry=r
        )
        self.refdata_swap_seconds = Gauge(
            "scrubber_refdata_swap_seconds",
            "How long the last reference data version took to fetch, check and index (the "
            "worker keeps consuming with the old version meanwhile).",
            registry=r,
        )
        self.redis_up = Gauge(
            "scrubber_redis_up", "1 when the last reference data poll reached Redis.", registry=r
        )
        self.ready = Gauge("scrubber_ready", "1 when the worker reports ready.", registry=r)
        self.build = build_info(r)
