"""837 -> claim lines -> scrub -> claim results -> 277CA -> read back by pyx12; and the commands."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from scrubber.claims import ClaimAssembler
from scrubber.contracts import Outcome, ScrubResult
from scrubber.offline import scrub_lines
from scrubber.refdata.build import build_bundle
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.x12.ack277 import ClaimAck, line_statuses, render_277ca
from scrubber.x12.envelope import split_interchanges
from scrubber.x12.files import convert, scrub_837
from scrubber.x12.validator import ACK_277CA, validate
from tests.unit.x12data import Claim, Line, Patient, Provider, Subscriber, render, transaction_set

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests/unit/data/x12/two-payers.837"
NOW = datetime(2024, 3, 20, 10, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeds() -> ReferenceSnapshot:
    return ReferenceSnapshot(build_bundle(REPO / "seeds"))


def sample() -> bytes:
    """Three claims: clean; one line with an unknown code and modifier; a clean one (patient).

    The codes are among the few the seed documents alone give (``build_bundle(seeds)``).
    """
    subscribers = [
        Subscriber(
            claims=[
                Claim(
                    claim_id="CLEAN01",
                    lines=[Line(procedure="11004"), Line(procedure="14020", date="20240210")],
                )
            ]
        ),
        Subscriber(
            member_id="MEMBER002",
            claims=[
                Claim(
                    claim_id="BAD01",
                    lines=[
                        Line(procedure="11004"),
                        Line(procedure="99999", modifiers=("ZZ",), charge="80.25", units="2"),
                    ],
                )
            ],
        ),
        Subscriber(
            member_id="MEMBER003",
            payer_id="PAYER02",
            patient=Patient(last="ROE", first="KIM"),
            claims=[
                Claim(
                    claim_id="CLEAN02",
                    lines=[Line(procedure="11004", date="20240305", end_date="20240306")],
                )
            ],
        ),
    ]
    return render([("101", [transaction_set("0001", [Provider(subscribers=subscribers)])])])


def scrub(data: bytes, snapshot: ReferenceSnapshot):
    lines, rejects = io.BytesIO(), io.BytesIO()
    _summary, echoes = convert(data, lines, rejects, None, NOW)
    results = io.BytesIO()
    scrub_lines(
        lines.getvalue().splitlines(), snapshot, results, io.BytesIO(), "in", clock=lambda: NOW
    )
    parsed = [ScrubResult.model_validate_json(r) for r in results.getvalue().splitlines()]
    return parsed, echoes, results.getvalue()


def test_round_trip_to_a_277ca_that_pyx12_validates(seeds: ReferenceSnapshot) -> None:
    results, echoes, _ = scrub(sample(), seeds)
    assembler = ClaimAssembler()
    for r in results:
        assembler.add(r, NOW)
    claims = assembler.current()
    assert [(c.claim_id, c.outcome) for c in claims] == [
        ("CLEAN01", Outcome.ACCEPTED),
        ("BAD01", Outcome.FLAGGED),
        ("CLEAN02", Outcome.ACCEPTED),
    ]
    by_id = {e.claim_id: e for e in echoes}
    data = render_277ca([ClaimAck(c, by_id[c.claim_id]) for c in claims], NOW, control_number=7)
    (framed,) = split_interchanges(data)
    report = validate(framed, ACK_277CA)
    assert report.failure is None and report.own_errors == 0
    (ts,) = report.sets
    assert ts.valid, ts.node.errors
    text = data.decode()
    assert (
        "ISA*00*          *00*          *ZZ*RECEIVER01     *ZZ*SUBMITTER01    "
        "*240320*1030*^*00501*000000007*0*T*:~" in text
    )
    assert "TRN*2*BATCH0001~" in text  # 2200B echoes the 837's BHT03
    assert "QTY*90*2~\nQTY*AA*1~\nAMT*YU*300~\nAMT*YY*180.25~" in text
    patients = [loop for loop in ts.root.walk("2000D")]
    assert len(patients) == 3
    statuses = {}
    for loop in patients:
        claim = loop.child("2200D")
        assert claim is not None
        stc = claim.segment("STC")
        statuses[claim.segment("TRN").value("TRN02")] = (
            stc.value("STC01"),
            stc.value("STC03"),
            stc.value("STC04"),
            [s.segment.get_value("SVC01") for sub in claim.loops("2220D") for s in sub.all("SVC")],
        )
    assert statuses == {
        "CLEAN01": ("A2:20", "WQ", "200", []),
        "BAD01": ("A3:21", "U", "180.25", ["HC:99999:ZZ"]),
        "CLEAN02": ("A2:20", "WQ", "100", []),
    }
    assert "STC*A7:454*20240320*U*******A7:453~" in text  # the flagged line: code, then modifier
    assert "NM1*QC*1*ROE*KIM****MI*MEMBER003~" in text and "DTP*472*RD8*20240305-20240306~" in text


@pytest.mark.parametrize(
    ("rule_ids", "expected"),
    [
        (["code.unknown"], [("A7", "454", None)]),
        (["modifier.unknown", "modifier.malformed"], [("A7", "453", None)]),
        (
            ["provider.npi_invalid", "provider.taxonomy_malformed"],
            [("A7", "562", "1P"), ("A7", "145", "1P")],
        ),
        (
            ["diagnosis.malformed", "date.future_service"],
            [("A7", "255", None), ("A7", "187", None)],
        ),
        (["duplicate.line"], [("A7", "54", None)]),
        (["code.carrier_priced"], [("A7", "21", None)]),  # info only: nothing specific to say
    ],
)
def test_line_status_codes_by_finding(rule_ids: list[str], expected: list) -> None:
    assert line_statuses(rule_ids) == expected


def test_scrub_of_an_837_equals_x12_lines_then_scrub(seeds: ReferenceSnapshot) -> None:
    data = sample()
    _, _, expected = scrub(data, seeds)
    results, rejects, claims, ack277 = io.BytesIO(), io.BytesIO(), io.BytesIO(), io.BytesIO()
    summary = scrub_837(
        data, seeds, results, rejects, "in.837", claims=claims, ack277=ack277, clock=lambda: NOW
    )
    assert results.getvalue() == expected
    assert rejects.getvalue() == b""
    assert (summary.x12.lines, summary.scrub.lines_in, len(summary.claims)) == (5, 5, 3)
    written = [orjson.loads(line) for line in claims.getvalue().splitlines()]
    assert [(c["claim_id"], c["revision"]) for c in written] == [
        ("CLEAN01", 1),
        ("BAD01", 1),
        ("CLEAN02", 1),
    ]
    assert ack277.getvalue().startswith(b"ISA*") and b"TRN*2*BAD01~" in ack277.getvalue()


def _scrubber(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrubber", *args], cwd=REPO, capture_output=True, text=True
    )


def test_commands_x12_lines_then_scrub_match_scrub_of_the_837(tmp_path: Path) -> None:
    bundle = tmp_path / "refdata.json"
    assert _scrubber("refdata", "build", "-o", str(bundle)).returncode == 0
    lines, rejects, ack = tmp_path / "lines.jsonl", tmp_path / "rejects.jsonl", tmp_path / "ack.999"
    done = _scrubber(
        "x12", "lines", str(SAMPLE), "-o", str(lines), "--rejects", str(rejects), "--ack", str(ack)
    )
    assert done.returncode == 0, done.stderr
    assert (
        "interchanges 1 (rejected 0), transaction sets 1 (accepted 1, rejected 0), "
        "claims 4, lines 5" in done.stdout
    )
    assert len(lines.read_bytes().splitlines()) == 5 and rejects.read_bytes() == b""
    assert "AK9*A*1*1*1~" in ack.read_text()
    via_lines = tmp_path / "a.jsonl"
    direct = tmp_path / "b.jsonl"
    common = ("--refdata", str(bundle), "--rejects", str(tmp_path / "r.jsonl"))
    assert _scrubber("scrub", str(lines), "-o", str(via_lines), *common).returncode == 0
    done = _scrubber(
        "scrub", str(SAMPLE), "-o", str(direct), *common, "--ack277", str(tmp_path / "out.277")
    )
    assert done.returncode == 0, done.stderr
    assert "claims 4" in done.stdout

    def without_time(path: Path) -> list[dict]:
        docs = [orjson.loads(x) for x in path.read_bytes().splitlines()]
        for doc in docs:
            doc.pop("scrubbed_at")
        return docs

    assert without_time(direct) == without_time(via_lines)
    assert (tmp_path / "out.277").read_text().count(
        "HL*"
    ) == 2 + 2 + 4  # source, receiver, 2 providers, 4 claims


def test_x12_lines_exits_1_when_anything_was_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.837"
    bad.write_bytes(SAMPLE.read_bytes()[:-50])
    out, rejects = tmp_path / "lines.jsonl", tmp_path / "rejects.jsonl"
    done = _scrubber("x12", "lines", str(bad), "-o", str(out), "--rejects", str(rejects))
    assert done.returncode == 1
    assert (
        "interchanges 1 (rejected 1), transaction sets 1 (accepted 0, rejected 1), "
        "claims 0, lines 0" in done.stdout
    )
    assert out.read_bytes() == b""
    assert orjson.loads(rejects.read_bytes())["errors"][0]["code"] == "023"


def test_every_category_has_a_277ca_status_code() -> None:
    """A finding of any category can reach a 277CA: none may be missing from the table."""
    from scrubber.contracts import Category
    from scrubber.x12.ack277 import STATUS_BY_CATEGORY

    assert set(STATUS_BY_CATEGORY) == set(Category)


def test_the_streams_claim_emissions_answer_each_claim_with_a_valid_277ca(
    seeds: ReferenceSnapshot,
) -> None:
    """Line by line, as the worker judges them: claim results, then 277CAs pyx12 validates."""
    from scrubber.accounting import key_of
    from scrubber.claims import ack277_control, claim_emissions
    from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
    from scrubber.rules.library import default_engine
    from tests.unit.test_claims import DictClaims

    lines = io.BytesIO()
    convert(sample(), lines, io.BytesIO(), None, NOW)
    processor = LineProcessor(default_engine())
    histories, claims = MemoryHistoryStore(), DictClaims()
    emitted = []
    for offset, raw in enumerate(lines.getvalue().splitlines()):
        source = SourcePosition("claims.lines.v1", 0, offset)
        processed = processor.process(raw, key_of(raw), source, seeds, histories, NOW)
        emitted.append(claim_emissions(processed, claims, source, NOW, 400, partitions=4))
    kinds = [[e.kind for e in out] for out in emitted]
    # Claims complete at their last line: CLEAN01 (lines 0-1), BAD01 (2-3), CLEAN02 (4).
    assert kinds == [[], ["claim", "ack277"], [], ["claim", "ack277"], ["claim", "ack277"]]
    acks = [e for out in emitted for e in out if e.kind == "ack277"]
    assert [a.key for a in acks] == [b"SUBMITTER01"] * 3
    for offset, ack in zip((1, 3, 4), acks, strict=True):
        (framed,) = split_interchanges(ack.value)
        report = validate(framed, ACK_277CA)
        assert report.failure is None and report.own_errors == 0
        assert all(ts.valid for ts in report.sets)
        control = ack277_control(SourcePosition("claims.lines.v1", 0, offset), 4)
        assert f"*{control:09d}*0*T*:~" in ack.value.decode()
    assert b"TRN*2*BAD01~" in acks[1].value and b"STC*A3:21" in acks[1].value
    assert b"NM1*QC*1*ROE*KIM****MI*MEMBER003~" in acks[2].value
    # The claim results name only the 837's control numbers, never what the 277CA echoes.
    claim = next(e.claim for out in emitted for e in out if e.claim is not None)
    assert claim.x12 is not None and claim.x12.claim is None
    # The line redelivered: the same claim result and a byte-identical 277CA, both repeats.
    raw = lines.getvalue().splitlines()[3]
    source = SourcePosition("claims.lines.v1", 0, 3)
    again = claim_emissions(
        processor.process(raw, key_of(raw), source, seeds, histories, NOW),
        claims,
        source,
        NOW,
        400,
        4,
    )
    assert [(e.kind, e.repeat) for e in again] == [("claim", True), ("ack277", True)]
    assert again[1].value == acks[1].value


def test_the_claims_echo_is_kept_once_per_claim_not_in_histories_or_line_verdicts(
    seeds: ReferenceSnapshot,
) -> None:
    from scrubber.history import line_json

    results, _echoes, _ = scrub(sample(), seeds)
    line = results[0].line
    assert line.x12 is not None and line.x12.claim is not None
    stored = orjson.loads(line_json(line))
    assert "claim" not in stored["x12"]
    assert stored["x12"]["interchange_control"] == "000000101"
    assert stored["x12"]["procedure_qualifier"] == "HC"

    assembler = ClaimAssembler()
    for r in results:
        assembler.add(r, NOW)
    data = assembler.to_bytes()
    assert data.count(b"SUBMITTER CLINIC") == 3  # three claims, one echo each
    again = ClaimAssembler.from_bytes(data)
    for claim in assembler.current():
        assert again.echo(claim.claim_id) == assembler.echo(claim.claim_id) is not None
    # A line verdict keeps neither findings nor the echo: well under its result's size.
    stored_lines = [
        line for claim in orjson.loads(data)["claims"].values() for line in claim["lines"]
    ]
    assert len(stored_lines) == len(results)
    for verdict, result in zip(stored_lines, results, strict=True):
        assert len(orjson.dumps(verdict)) < 0.5 * len(result.model_dump_json())
