"""Claim assembly: a ClaimResult when a claim completes, a new revision only when it changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from scrubber.claims import ClaimAssembler, build_claim_result, claim_emissions, line_status
from scrubber.contracts import (
    BillingProvider,
    Category,
    ClaimLine,
    ClaimResult,
    Finding,
    Outcome,
    Patient,
    RenderingProvider,
    ScrubResult,
    Severity,
    X12Trace,
)
from scrubber.processor import Emission, Processed, SourcePosition

NOW = datetime(2024, 3, 20, 10, 30, tzinfo=UTC)
TRACE = X12Trace(
    interchange_control="000000101", group_control="101", transaction_set_control="0001"
)


def result(
    number: int,
    revision: int = 1,
    rules: tuple[str, ...] = (),
    count: int | None = 3,
    claim_id: str = "CLAIM001",
    version: str = "v1",
    at: datetime = NOW,
) -> ScrubResult:
    line = ClaimLine(
        claim_id=claim_id,
        line_number=number,
        payer_id="PAYER01",
        patient=Patient(member_id="M1"),
        rendering_provider=RenderingProvider(npi="1234567893"),
        billing_provider=BillingProvider(npi="1234567893"),
        service_date=date(2024, 3, 1),
        procedure_code="99213",
        units=1.0,
        charge=Decimal("100"),
        diagnosis_codes=["J209"],
        claim_line_count=count,
        x12=TRACE,
    )
    findings = [
        Finding(rule_id=r, category=Category.CODE, severity=Severity.ERROR, message="m")
        for r in rules
    ]
    return ScrubResult(
        line_id=line.line_id,
        revision=revision,
        outcome=Outcome.FLAGGED if rules else Outcome.ACCEPTED,
        findings=findings,
        line=line,
        reference=None,
        refdata_version=version,
        scrubbed_at=at,
    )


def test_nothing_until_every_line_has_a_verdict_then_one_result() -> None:
    assembler = ClaimAssembler()
    assert assembler.add(result(3), NOW) is None
    assert assembler.add(result(1), NOW) is None
    claim = assembler.add(result(2, rules=("code.unknown", "code.unknown")), NOW)
    assert claim is not None
    assert (claim.claim_id, claim.payer_id, claim.revision, claim.outcome) == (
        "CLAIM001",
        "PAYER01",
        1,
        Outcome.FLAGGED,
    )
    assert [(s.line_id, s.outcome, s.rule_ids) for s in claim.lines] == [
        ("CLAIM001:1", Outcome.ACCEPTED, []),
        ("CLAIM001:2", Outcome.FLAGGED, ["code.unknown"]),
        ("CLAIM001:3", Outcome.ACCEPTED, []),
    ]
    assert claim.x12 == TRACE and claim.scrubbed_at == NOW
    assert assembler.current() == [claim]


@pytest.mark.parametrize(
    ("later", "emits"),
    [
        pytest.param(result(2), False, id="redelivered"),
        pytest.param(result(2, revision=2), False, id="new-revision-same-verdict"),
        pytest.param(result(2, revision=2, rules=("duplicate.line",)), True, id="new-rule-ids"),
        pytest.param(result(1, revision=1, rules=("code.unknown",)), False, id="older-revision"),
    ],
)
def test_a_complete_claim_is_revised_only_when_a_line_verdict_changes(
    later: ScrubResult, emits: bool
) -> None:
    assembler = ClaimAssembler()
    for r in (result(1, revision=2), result(2), result(3)):
        first = assembler.add(r, NOW)
    assert first is not None and first.outcome is Outcome.ACCEPTED
    again = assembler.add(later, NOW)
    assert (again is not None) == emits
    if again is not None:
        assert again.revision == 2 and again.outcome is Outcome.FLAGGED
        assert assembler.current() == [again]


def test_any_arrival_order_ends_with_the_same_claim_verdict() -> None:
    feed = [
        result(1),
        result(2, rules=("units.mue_line",)),
        result(3),
        result(2, revision=2),
        result(1, revision=2, rules=("duplicate.line",)),
    ]
    finals = set()
    for order in itertools.permutations(feed):
        assembler = ClaimAssembler()
        for r in order:
            assembler.add(r, NOW)
        (claim,) = assembler.current()
        finals.add(
            tuple((s.line_id, s.revision, s.outcome, tuple(s.rule_ids)) for s in claim.lines)
        )
    assert finals == {
        (
            ("CLAIM001:1", 2, Outcome.FLAGGED, ("duplicate.line",)),
            ("CLAIM001:2", 2, Outcome.ACCEPTED, ()),
            ("CLAIM001:3", 1, Outcome.ACCEPTED, ()),
        )
    }


def test_lines_without_a_count_are_never_assembled() -> None:
    assembler = ClaimAssembler()
    assert assembler.add(result(1, count=None), NOW) is None
    assert assembler.current() == []


def test_build_names_the_newest_reference_version_and_refuses_an_incomplete_claim() -> None:
    early = datetime(2024, 3, 20, 9, tzinfo=UTC)
    lines = [result(1, count=2, version="old", at=early), result(2, count=2, version="new")]
    claim = build_claim_result(lines, 2, revision=4, now=NOW)
    assert (claim.refdata_version, claim.revision) == ("new", 4)
    with pytest.raises(ValueError, match="every line"):
        build_claim_result(lines[:1], 2, revision=1, now=NOW)
    assert line_status(result(1, rules=("b", "a", "b"))).rule_ids == ["a", "b"]


def test_the_stored_form_reads_back_to_the_same_assembly() -> None:
    assembler = ClaimAssembler()
    for r in (result(1), result(2, rules=("code.unknown",)), result(3), result(1, claim_id="C2")):
        assembler.add(r, NOW)
    again = ClaimAssembler.from_bytes(assembler.to_bytes())
    assert again.current() == assembler.current()
    # It goes on exactly as the original would.
    later = result(2, revision=2)
    assert again.add(later, NOW) == assembler.add(later, NOW)
    assert again.to_bytes() == assembler.to_bytes()
    with pytest.raises(ValueError, match="not a stored claim assembly"):
        ClaimAssembler.from_bytes(b'{"f": 9}')


def test_a_resent_line_verdict_resends_the_claim_result_it_made_and_no_other() -> None:
    assembler = ClaimAssembler()
    assembler.add(result(1), NOW)
    assembler.add(result(2), NOW)
    assert assembler.resend(result(2)) is None  # the claim is not complete yet
    claim = assembler.add(result(3), NOW)
    assert claim is not None
    assert assembler.resend(result(3)) == claim  # the line that completed it
    assert assembler.resend(result(1)) is None  # completed by another line
    revised = assembler.add(result(1, revision=2, rules=("duplicate.line",)), NOW)
    assert revised is not None and revised.revision == 2
    assert assembler.resend(result(3)) is None  # its claim result is no longer the current one
    assert assembler.resend(result(1, revision=2, rules=("duplicate.line",))) == revised


def test_claims_far_behind_the_patients_newest_date_of_service_are_forgotten() -> None:
    def dated(claim_id: str, day: date) -> ScrubResult:
        r = result(1, count=1, claim_id=claim_id)
        return r.model_copy(update={"line": r.line.model_copy(update={"service_date": day})})

    assembler = ClaimAssembler()
    assembler.add(dated("OLD", date(2023, 1, 1)), NOW)
    assembler.add(dated("EDGE", date(2023, 12, 1)), NOW)
    assembler.add(dated("NEW", date(2024, 3, 1)), NOW)
    assert assembler.prune(keep_days=91) == 1
    assert [c.claim_id for c in assembler.current()] == ["EDGE", "NEW"]


class DictClaims:
    """Assemblies stored as bytes, as the table keeps them: a get decodes, a put encodes."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.puts = 0

    def get(self, member_id: str) -> ClaimAssembler | None:
        raw = self.data.get(member_id)
        return ClaimAssembler.from_bytes(raw) if raw else None

    def put(self, member_id: str, assembler: ClaimAssembler) -> None:
        self.puts += 1
        self.data[member_id] = assembler.to_bytes()


def _processed(*emissions_of: tuple[ScrubResult, bool]) -> Processed:
    return Processed(
        tuple(
            Emission(kind="accepted", key=b"M1", value=b"", headers=(), result=r, repeat=repeat)
            for r, repeat in emissions_of
        ),
        member_id="M1",
    )


def test_claim_emissions_across_inputs_through_the_store() -> None:
    store = DictClaims()
    source = SourcePosition("claims.lines.v1", 1, 9)
    assert claim_emissions(_processed((result(1, count=2), False)), store, source, NOW, 400) == ()
    (out,) = claim_emissions(_processed((result(2, count=2), False)), store, source, NOW, 400)
    assert (out.kind, out.key, out.repeat) == ("claim", b"M1", False)
    assert out.claim is not None and out.claim.revision == 1
    assert ClaimResult.model_validate_json(out.value) == out.claim
    assert dict(out.headers)["scrubber-source-offset"] == b"9"
    # The same input again (a redelivery): the claim result it made, unchanged, and no write.
    puts = store.puts
    (again,) = claim_emissions(_processed((result(2, count=2), True)), store, source, NOW, 400)
    assert again.repeat and again.claim == out.claim and store.puts == puts
    # A line of a claim without a count, or no result at all: nothing, and nothing read.
    empty = DictClaims()
    assert claim_emissions(_processed((result(1, count=None), False)), empty, source, NOW, 9) == ()
    assert empty.data == {}


@pytest.mark.parametrize(
    "data",
    [
        b"\x00garbage",
        b'{"f": 1, "claims": []}',
        b'{"f": 1, "claims": {"C": {"lines": [], "emitted": null, "cause": ["x"]}}}',
        b'{"f": 1, "claims": {"C": {"lines": [{"line": {}}], "emitted": null, "cause": null}}}',
        b'{"f": 2, "claims": {}}',
    ],
)
def test_anything_that_is_not_a_stored_assembly_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a stored claim assembly"):
        ClaimAssembler.from_bytes(data)


def _crash_and_redeliver(keep: str) -> tuple[Emission, ...]:
    """Line 2 completes the claim; a crash keeps only ``keep`` of what its handling wrote."""
    source = SourcePosition("claims.lines.v1", 0, 2)
    before = DictClaims()
    claim_emissions(_processed((result(1, count=2), False)), before, source, NOW, 400)
    saved = dict(before.data)
    after = DictClaims()
    after.data = dict(saved)
    claim_emissions(_processed((result(2, count=2), False)), after, source, NOW, 400)
    store = DictClaims()
    store.data = after.data if keep == "claims" else saved
    # The redelivered line is a repeat when its history survived, else a new line again.
    return claim_emissions(
        _processed((result(2, count=2), keep == "history")), store, source, NOW, 400
    )


@pytest.mark.parametrize("keep", ["claims", "history"])
def test_a_redelivered_line_ends_with_its_claim_result_whatever_the_crash_kept(keep: str) -> None:
    (out,) = _crash_and_redeliver(keep)
    assert out.kind == "claim" and out.claim is not None and out.claim.revision == 1
    assert [s.line_id for s in out.claim.lines] == ["CLAIM001:1", "CLAIM001:2"]


def _in(r: ScrubResult, control: str, count: int | None = None) -> ScrubResult:
    """The result of the same line as it came in another 837 (and with another line count)."""
    trace = X12Trace(interchange_control=control, group_control="1", transaction_set_control="0001")
    update: dict[str, object] = {"x12": trace}
    if count is not None:
        update["claim_line_count"] = count
    return r.model_copy(update={"line": r.line.model_copy(update=update)})


def test_a_claim_sent_again_in_another_837_is_answered_again_with_its_lines_only() -> None:
    assembler = ClaimAssembler()
    for n in (1, 2, 3):
        first = assembler.add(result(n), NOW)
    assert first is not None and first.revision == 1
    # Corrected to two lines and sent again: line 3 of the first 837 is no longer the claim's.
    assert assembler.add(_in(result(1), "000000202", count=2), NOW) is None
    again = assembler.add(_in(result(2), "000000202", count=2), NOW)
    assert again is not None and again.revision == 2  # same verdicts, but a new 837 to answer
    assert [s.line_id for s in again.lines] == ["CLAIM001:1", "CLAIM001:2"]
    assert again.x12 is not None and again.x12.interchange_control == "000000202"
    # A revision of a line of the first 837 is not part of the claim any more.
    old = result(3, revision=2, rules=("duplicate.line",))
    assert assembler.add(old, NOW, own=False) is None
    assert assembler.current() == [again]


def test_an_empty_claim_is_pruned_not_a_crash() -> None:
    assembler = ClaimAssembler()
    assembler.add(result(1, count=2), NOW)
    data = orjson.loads(assembler.to_bytes())
    data["claims"]["EMPTY"] = {"lines": [], "emitted": None, "cause": None, "echo": None}
    restored = ClaimAssembler.from_bytes(orjson.dumps(data))
    assert restored.prune(keep_days=400) == 1


def _dated(claim_id: str, day: date) -> ScrubResult:
    r = result(1, count=1, claim_id=claim_id)
    return r.model_copy(update={"line": r.line.model_copy(update={"service_date": day})})


def test_a_patients_claims_are_kept_within_the_tables_value_limit_oldest_forgotten_first() -> None:
    assembler = ClaimAssembler()
    days = [date(2024, 1, 1 + (n * 7) % 28) for n in range(40)]  # dates out of arrival order
    for n, day in enumerate(days):
        assembler.add(_dated(f"C{n:03d}", day), NOW)
    whole = assembler.to_bytes()
    data, forgotten = assembler.to_bytes_within(len(whole))
    assert (data, forgotten) == (whole, 0)

    limit = len(whole) // 2
    data, forgotten = assembler.to_bytes_within(limit)
    assert len(data) <= limit and data == assembler.to_bytes()
    kept = {c.claim_id for c in ClaimAssembler.from_bytes(data).current()}
    assert len(kept) == 40 - forgotten and forgotten > 0
    # The oldest by date of service went first (ties: first seen first).
    order = sorted(range(40), key=lambda n: days[n])
    assert kept == {f"C{n:03d}" for n in order[forgotten:]}
    # As few as it takes: the one forgotten last would not have fitted with the others.
    back = ClaimAssembler.from_bytes(data)
    back.add(_dated(f"C{order[forgotten - 1]:03d}", days[order[forgotten - 1]]), NOW)
    assert len(back.to_bytes()) > limit


def test_a_limit_no_claim_fits_in_forgets_them_all() -> None:
    assembler = ClaimAssembler()
    assembler.add(_dated("ONLY", date(2024, 1, 1)), NOW)
    data, forgotten = assembler.to_bytes_within(10)
    assert forgotten == 1 and ClaimAssembler.from_bytes(data).current() == []


def test_the_worker_store_writes_a_patients_claims_within_the_limit_and_counts_the_forgotten(
    caplog,
) -> None:
    from scrubber.history import STORED_VALUE_MAX_BYTES
    from scrubber.stream.table_store import TableClaimStore

    counted: list[int] = []
    store = TableClaimStore({}, on_forgotten=counted.append)
    assembler, n = ClaimAssembler(), 0
    while len(assembler.to_bytes()) <= STORED_VALUE_MAX_BYTES:
        for _ in range(100):
            assembler.add(_dated(f"C{n:05d}", date(2024, 1, 1 + n % 28)), NOW)
            n += 1
    data = store._encode(assembler, None)
    assert len(data) <= STORED_VALUE_MAX_BYTES
    assert len(counted) == 1 and counted[0] == n - len(ClaimAssembler.from_bytes(data).current())
    assert "M1" not in caplog.text  # the member id stays out of the log


def _limited(assembler: ClaimAssembler, limit: int) -> ClaimAssembler:
    """What the worker's store does at the end of a batch: write within the limit, read back."""
    data, _ = assembler.to_bytes_within(limit)
    return ClaimAssembler.from_bytes(data)


def test_a_forgotten_claim_is_not_restarted_by_a_revision_and_continues_its_revisions() -> None:
    assembler = ClaimAssembler()
    first = assembler.add(_dated("OLD", date(2024, 1, 1)), NOW)
    assert first is not None and first.revision == 1
    for n in range(30):
        assembler.add(_dated(f"NEW{n:02d}", date(2024, 2, 1)), NOW)
    limit = len(assembler.to_bytes()) - 10
    assembler = _limited(assembler, limit)  # OLD is the oldest: it goes, its revision stays
    assert "OLD" not in {c.claim_id for c in assembler.current()}
    # A later line's arrival revises OLD's line: no claim is started from a revision.
    revised = _dated("OLD", date(2024, 1, 1)).model_copy(update={"revision": 2})
    assert assembler.add(revised, NOW, own=False) is None
    # OLD sent again in another 837 is answered with the next revision, not with 1 again.
    again = _dated("OLD", date(2024, 1, 1))
    line = again.line.model_copy(
        update={"x12": again.line.x12.model_copy(update={"transaction_set_control": "0002"})}
    )  # type: ignore[union-attr]
    answer = assembler.add(again.model_copy(update={"line": line}), NOW)
    assert answer is not None and answer.revision == 2


def test_claims_waiting_for_lines_are_forgotten_last() -> None:
    assembler = ClaimAssembler()
    waiting = result(1, count=3, claim_id="WAITING")  # two lines still to come
    waiting = waiting.model_copy(
        update={"line": waiting.line.model_copy(update={"service_date": date(2023, 1, 1)})}
    )
    assert assembler.add(waiting, NOW) is None
    for n in range(30):
        assembler.add(_dated(f"DONE{n:02d}", date(2024, 2, 1)), NOW)
    assembler = _limited(assembler, len(assembler.to_bytes()) // 2)
    assert assembler.add(result(2, count=3, claim_id="WAITING"), NOW) is None
    done = assembler.add(result(3, count=3, claim_id="WAITING"), NOW)
    assert done is not None and [s.line_id for s in done.lines] == [
        "WAITING:1",
        "WAITING:2",
        "WAITING:3",
    ]


def test_revisions_left_behind_are_pruned_with_the_claims_and_read_back() -> None:
    assembler = ClaimAssembler()
    assembler.add(_dated("OLD", date(2023, 1, 1)), NOW)
    for n in range(10):
        assembler.add(_dated(f"NEW{n}", date(2024, 3, 1)), NOW)
    assembler = _limited(assembler, len(assembler.to_bytes()) - 10)
    assert b'"forgotten":{"OLD":[1,"2023-01-01"]}' in assembler.to_bytes()
    assert assembler.prune(keep_days=91) == 0  # no claim that old is held any more...
    assert b"forgotten" not in assembler.to_bytes()  # ...and its revision went with the date


def test_claim_revisions_only_go_up_for_a_member_id_at_the_limit() -> None:
    """Every claim id's ClaimResults: revisions rise, and one revision is one verdict."""
    import random

    rng = random.Random(5)
    assembler, seen = ClaimAssembler(), {}
    versions: dict[str, int] = {}
    for step in range(1500):
        if versions and rng.random() < 0.3:  # a revision of an earlier line, or the same again
            cid = rng.choice(sorted(versions))
            versions[cid] += 1
            r = _dated(cid, date(2024, 1, 1) + timedelta(days=int(cid[1:]) % 300))
            rules = ("r.x",) if versions[cid] % 2 else ()
            r = r.model_copy(
                update={
                    "revision": versions[cid],
                    "outcome": Outcome.FLAGGED if rules else Outcome.ACCEPTED,
                    "findings": [
                        Finding(
                            rule_id=x, category=Category.CODE, severity=Severity.ERROR, message="m"
                        )
                        for x in rules
                    ],
                }
            )
            made = assembler.add(r, NOW, own=False)
        else:
            cid = f"C{step:05d}"
            versions[cid] = 1
            made = assembler.add(_dated(cid, date(2024, 1, 1) + timedelta(days=step % 300)), NOW)
        if made is not None:
            key = (made.claim_id, made.revision)
            verdict = [(s.line_id, s.outcome, s.rule_ids) for s in made.lines]
            assert seen.setdefault(key, verdict) == verdict, key
            assert made.revision == max(r for c, r in seen if c == made.claim_id), key
        if step % 50 == 49:
            assembler = _limited(assembler, 40_000)
    assert any(c not in {x.claim_id for x in assembler.current()} for c in versions)


def _forget_all_answered(assembler: ClaimAssembler) -> ClaimAssembler:
    """Forget every answered claim, as a write at a tiny limit would, leaving their revisions."""
    for cid in [c.claim_id for c in assembler.current()]:
        claim = assembler._claims.pop(cid)
        assert claim.emitted is not None
        assembler._forgotten[cid] = (claim.emitted.revision, claim.newest_service_date())
    return assembler


def test_revisions_left_behind_never_crowd_out_a_claim_waiting_for_lines() -> None:
    assembler = ClaimAssembler()
    for n in range(3000):
        assembler.add(_dated(f"GONE{n:05d}", date(2024, 1, 1) + timedelta(days=n % 90)), NOW)
    _forget_all_answered(assembler)
    waiting = result(1, count=2, claim_id="WAITING")
    assert assembler.add(waiting, NOW) is None
    limit = 40_000
    before = dict(assembler._forgotten)
    data, forgotten = assembler.to_bytes_within(limit)
    assert len(data) <= limit and forgotten == 0
    back = ClaimAssembler.from_bytes(data)
    assert len(orjson.dumps(back._stored_forgotten())) <= limit // 4
    kept = {cid: day for cid, (_, day) in back._forgotten.items()}
    dropped = [day for cid, (_, day) in before.items() if cid not in kept]
    assert kept and dropped and min(kept.values()) >= max(dropped)  # the newest stay
    done = back.add(result(2, count=2, claim_id="WAITING"), NOW)
    assert done is not None and done.revision == 1


def test_a_claim_sent_again_and_waiting_for_its_new_lines_is_forgotten_last() -> None:
    assembler = ClaimAssembler()
    old = _dated("RESUB", date(2023, 6, 1))
    assert assembler.add(old, NOW) is not None  # answered once, in the first 837
    for n in range(30):
        assembler.add(_dated(f"NEW{n:02d}", date(2024, 2, 1)), NOW)
    # The same claim in a new 837, with two lines: the first arrives, the second is to come.
    trace = TRACE.model_copy(update={"transaction_set_control": "0002"})
    first = result(1, count=2, claim_id="RESUB")
    first = first.model_copy(
        update={
            "line": first.line.model_copy(update={"x12": trace, "service_date": date(2023, 6, 1)})
        }
    )
    assert assembler.add(first, NOW) is None
    assembler = _limited(assembler, len(assembler.to_bytes()) // 2)
    second = result(2, count=2, claim_id="RESUB")
    second = second.model_copy(
        update={
            "line": second.line.model_copy(update={"x12": trace, "service_date": date(2023, 6, 1)})
        }
    )
    answer = assembler.add(second, NOW)
    assert answer is not None and answer.revision == 2
    assert [s.line_id for s in answer.lines] == ["RESUB:1", "RESUB:2"]


def test_a_forgotten_claims_revision_survives_a_write_before_the_claim_completes() -> None:
    assembler = ClaimAssembler()
    assert assembler.add(_dated("OLD", date(2023, 1, 1)), NOW) is not None
    _forget_all_answered(assembler)
    trace = TRACE.model_copy(update={"transaction_set_control": "0002"})
    first = result(1, count=2, claim_id="OLD")
    first = first.model_copy(update={"line": first.line.model_copy(update={"x12": trace})})
    assert assembler.add(first, NOW) is None
    back = ClaimAssembler.from_bytes(assembler.to_bytes())  # a batch ends here
    second = result(2, count=2, claim_id="OLD")
    second = second.model_copy(update={"line": second.line.model_copy(update={"x12": trace})})
    answer = back.add(second, NOW)
    assert answer is not None and answer.revision == 2
