"""Bad 837 input: rejected with a 999 (or a TA1), nothing written for it, counts that add up."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime

import orjson
import pytest

from scrubber.x12.envelope import split_interchanges
from scrubber.x12.files import convert
from scrubber.x12.validator import ACK_999, validate
from tests.unit.x12data import Claim, Separators, render, simple

NOW = datetime(2024, 3, 20, 10, 30, tzinfo=UTC)
CANARIES = ("MEMBERCANARY", "CLAIMCANARY", "DOE", "19800101", "SMITH")


def canary_set(control: str = "0001") -> list:
    segs = simple([Claim(claim_id="CLAIMCANARY")], member_id="MEMBERCANARY")
    segs[0][2] = control
    segs[-1][2] = control
    return segs


def with_se_count(segs: list, count: str) -> list:
    copy = [list(s) for s in segs]
    copy[-1][1] = count
    return copy


def without(segs: list, seg_id: str) -> list:
    kept = [list(s) for s in segs if s[0] != seg_id]
    kept[-1][1] = str(len(kept))
    return kept


def run(data: bytes):
    lines, rejects, acks = io.BytesIO(), io.BytesIO(), io.BytesIO()
    summary, _ = convert(data, lines, rejects, acks, NOW)
    records = [orjson.loads(r) for r in rejects.getvalue().splitlines()]
    return summary, lines.getvalue(), records, acks.getvalue().decode()


GOOD = canary_set()
CASES = [
    # name, data, expected ack fragments, interchange rejected, sets rejected
    pytest.param(
        render([("101", [with_se_count(GOOD, "7")])]),
        ["AK2*837*0001*005010X222A1~", "IK5*R*4~", "AK9*R*1*1*0~"],
        0,
        1,
        id="SE01-wrong",
    ),
    pytest.param(
        render([("101", [GOOD])], ge_count=3),
        ["AK9*R*3*1*0*5~"],
        0,
        1,
        id="GE01-wrong",
    ),
    pytest.param(
        render([("101", [GOOD])], iea_count=2),
        ["TA1*000000101*240315*1200*R*021~", "IEA*0*000000101~"],
        1,
        1,
        id="IEA01-wrong",
    ),
    pytest.param(
        render([("101", [GOOD])])[:-60],
        ["TA1*000000101*240315*1200*R*023~"],
        1,
        1,
        id="truncated-without-IEA",
    ),
    pytest.param(
        render([("101", [GOOD])]).replace(b"*", b"|", 400).replace(b"|", b"*", 16),
        ["TA1*000000101*240315*1200*R*026~"],
        1,
        0,
        id="body-uses-other-separators-than-ISA",
    ),
    pytest.param(
        render([("101", [GOOD])], functional=("HS", "005010X279A1")),
        # 1: functional group not supported; 2: its version is not one the control map knows.
        ["AK1*HS*101*005010X279A1~", "IK5*R*1~", "AK9*R*1*1*0*1*2~"],
        0,
        1,
        id="a-270-group",
    ),
    pytest.param(
        render([("101", [without(GOOD, "CLM")])]),
        ["IK3*HI*", "IK5*R*5~", "AK9*R*1*1*0~"],
        0,
        1,
        id="missing-CLM",
    ),
    pytest.param(
        render([("101", [GOOD])]).replace(b"00501", b"00401", 1),
        ["TA1*000000101*240315*1200*R*017~"],
        1,
        1,
        id="4010-interchange",
    ),
]


@pytest.mark.parametrize(("data", "fragments", "interchanges_rejected", "sets_rejected"), CASES)
def test_bad_input_is_acknowledged_and_writes_no_line(
    data: bytes, fragments: list[str], interchanges_rejected: int, sets_rejected: int
) -> None:
    summary, lines, records, ack = run(data)
    assert lines == b""
    assert (summary.lines, summary.claims, summary.accepted) == (0, 0, 0)
    assert summary.interchanges == 1
    assert summary.interchanges_rejected == interchanges_rejected
    assert summary.rejected == sets_rejected == summary.transaction_sets
    assert summary.anything_rejected
    for fragment in fragments:
        assert fragment in ack
    assert records, "every rejection has a record"
    assert all(r["interchange"] == 1 and r["interchange_control"] == "000000101" for r in records)
    text = orjson.dumps(records).decode()
    assert not any(canary in text for canary in CANARIES)


def test_only_the_bad_set_is_rejected_and_the_999_says_partially_accepted() -> None:
    good = canary_set("0001")
    bad = with_se_count(canary_set("0002"), "3")
    summary, lines, records, ack = run(render([("101", [good, bad])]))
    assert summary.text() == (
        "interchanges 1 (rejected 0), transaction sets 2 (accepted 1, rejected 1), "
        "claims 1, lines 1"
    )
    assert len(lines.splitlines()) == 1
    assert "AK2*837*0001*005010X222A1~\nIK5*A~" in ack
    assert "AK2*837*0002*005010X222A1~\nIK5*R*4~" in ack
    assert "AK9*P*2*2*1~" in ack
    assert [(r["level"], r["transaction_set_control"]) for r in records] == [
        ("transaction_set", "0002")
    ]
    assert records[0]["errors"][0]["code"] == "4"


def test_a_rejected_interchange_does_not_stop_the_next_one() -> None:
    bad = render([("101", [GOOD])], control="000000101")[:-30]
    good = render([("102", [canary_set()])], control="000000102")
    summary, lines, records, ack = run(bad + b"\n" + good)
    assert (summary.interchanges, summary.interchanges_rejected) == (2, 1)
    assert (summary.transaction_sets, summary.accepted, summary.rejected) == (2, 1, 1)
    assert len(lines.splitlines()) == summary.lines == 1
    assert [r["interchange"] for r in records] == [1]
    assert ack.count("ISA*") == 2 and "TA1*000000101" in ack and "AK9*A*1*1*1~" in ack


def test_junk_before_an_interchange_is_counted_and_rejected() -> None:
    summary, _lines, records, ack = run(
        b"hello, this is not X12\n" + render([("101", [canary_set()])])
    )
    assert (summary.interchanges, summary.interchanges_rejected, summary.lines) == (2, 1, 1)
    assert records[0]["errors"][0]["code"] == "022" and records[0]["interchange_control"] is None
    assert "TA1" not in ack  # junk has no ISA to answer to


def test_the_999_is_valid_by_pyx12s_005010x231a1_map() -> None:
    good = canary_set("0001")
    bad = with_se_count(canary_set("0002"), "3")
    _summary, _lines, _records, ack = run(render([("101", [good, bad])]))
    (framed,) = split_interchanges(ack.encode())
    report = validate(framed, ACK_999)
    assert report.failure is None and report.own_errors == 0
    assert [ts.valid for ts in report.sets] == [True]
    ak2 = [
        ref.segment.get_value("AK202")
        for loop in report.sets[0].root.walk("2000")
        for ref in loop.all("AK2")
    ]
    assert ak2 == ["0001", "0002"]


def test_the_999_is_the_same_for_the_same_input_and_time() -> None:
    data = render(
        [("101", [canary_set()])], sep=Separators(element="|", component="^", repetition="{")
    )
    assert run(data)[3] == run(data)[3]
    assert (
        "ISA*00*          *00*          *ZZ*RECEIVER01     *ZZ*SUBMITTER01    "
        "*240320*1030*^*00501*000000101*0*T*:~" in run(data)[3]
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_nothing_of_the_claim_reaches_the_log_handlers() -> None:
    """pyx12 logs every error with its value; its loggers stop before the root's handlers."""
    root = logging.getLogger()
    collect, level = _Collect(), root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    try:
        bad = [list(s) for s in GOOD]
        bad[15][2] = "DOE" * 30  # NM103 too long: pyx12's error text quotes the value
        _summary, _lines, records, _ack = run(render([("101", [bad])]))
    finally:
        root.removeHandler(collect)
        root.setLevel(level)
    assert records  # the set was rejected, so pyx12 did report (and log) errors
    assert not any(r.name.startswith("pyx12") for r in collect.records)
    assert not any(c in r.getMessage() for r in collect.records for c in CANARIES)
