"""The ledger's account of inputs without output, of repeats, and of conflicting repeats."""

from __future__ import annotations

import orjson

from scrubber.accounting import Fault, Ledger, Output


def _own(partition: int, offset: int) -> Output:
    return Output(
        kind="dlq",
        key=None,
        value=b"{}",
        headers={"scrubber-source-partition": str(partition).encode()},
    )


def test_missing_inputs_are_described_as_runs_per_partition() -> None:
    expected = {(0, o) for o in range(10)} | {(1, o) for o in range(5, 8)}
    ledger = Ledger(expected=expected)
    for offset in (0, 1, 2, 5, 9):
        ledger.outputs[(0, offset)] = [_own(0, offset)]
    ledger.outputs[(1, 5)] = [_own(1, 5)]
    text = ledger.describe_missing()
    assert not ledger.complete()
    assert "partition 0: 5 of 10 without output at offsets 3-4, 6-8; published 0-9" in text
    assert "partition 1: 2 of 3 without output at offsets 6-7; published 5-7" in text


def test_a_complete_ledger_says_so() -> None:
    ledger = Ledger(expected={(2, 4)}, outputs={(2, 4): [_own(2, 4)]})
    assert ledger.complete()
    assert ledger.describe_missing() == "none missing"


def test_many_runs_are_cut_short() -> None:
    ledger = Ledger(expected={(0, o) for o in range(0, 40, 2)})
    assert "(+17 more runs)" in ledger.describe_missing(limit=3)


def _result(
    partition: int,
    line_id: str,
    revision: int,
    *,
    trigger: str = "input",
    outcome: str = "flagged",
    rules: tuple[str, ...] = ("units.mue_exceeded",),
) -> Output:
    doc = {
        "line_id": line_id,
        "revision": revision,
        "outcome": outcome,
        "findings": [{"rule_id": r} for r in rules],
    }
    return Output(
        kind=outcome,
        key=None,
        value=orjson.dumps(doc),
        headers={
            "scrubber-source-partition": str(partition).encode(),
            "scrubber-trigger": trigger.encode(),
        },
    )


def test_an_input_answered_twice_is_redone_and_its_repeat_counted() -> None:
    ledger = Ledger(
        expected={(0, 1), (0, 2)},
        outputs={
            (0, 1): [_result(0, "C1:1", 1)],
            (0, 2): [_result(0, "C1:2", 1), _result(0, "C1:2", 1)],
        },
    )
    assert ledger.redone() == {(0, 2)}
    assert ledger.duplicates() == 1
    assert ledger.repeat_sources() == {(0, 2)}
    assert not ledger.conflicts()


def test_a_revision_re_sent_by_another_input_names_both_sources_but_redoes_neither() -> None:
    """A line's own input and the line that revised it both re-send the revision."""
    ledger = Ledger(
        expected={(1, 47), (1, 48)},
        outputs={
            (1, 47): [_result(1, "X:1", 2)],
            (1, 48): [_result(1, "Y:1", 1), _result(1, "X:1", 2, trigger="revision")],
        },
    )
    assert ledger.redone() == set()
    assert ledger.duplicates() == 1
    assert ledger.repeat_sources() == {(1, 47), (1, 48)}


def _disagreeing() -> Ledger:
    """One input answered twice with one (line id, revision) and two verdicts."""
    return Ledger(
        expected={(0, 3)},
        outputs={
            (0, 3): [
                _result(0, "C3:1", 2, outcome="flagged"),
                _result(0, "C3:1", 2, outcome="accepted", rules=()),
            ]
        },
    )


def test_repeats_with_different_verdicts_are_conflicts() -> None:
    assert list(_disagreeing().conflicts()) == [("C3:1", 2)]
    dead = Ledger(
        expected={(0, 4)},
        outputs={
            (0, 4): [
                Output("dlq", None, b"x", {"scrubber-error-code": b"not_json"}),
                Output("dlq", None, b"x", {"scrubber-error-code": b"contract_violation"}),
            ]
        },
    )
    assert list(dead.conflicts()) == [("dlq", (0, 4))]
    assert dead.redone() == {(0, 4)}


def _fault(committed: dict[int, int], answered: set[tuple[int, int]]) -> Fault:
    return Fault(committed=committed, answered=frozenset(answered), in_flight=len(answered))


def test_a_fault_knows_what_lay_past_the_commit() -> None:
    fault = _fault({0: 10, 1: 3}, set())
    assert fault.past((0, 10)) and fault.past((1, 7))
    assert not fault.past((0, 9)) and not fault.past((1, 2))


def test_repeats_of_inputs_past_the_commit_are_explained() -> None:
    ledger = Ledger(
        expected={(1, 47), (1, 48)},
        outputs={
            (1, 47): [_result(1, "X:1", 1), _result(1, "X:1", 2)],
            (1, 48): [
                _result(1, "Y:1", 1),
                _result(1, "X:1", 2, trigger="revision"),
                _result(1, "Y:1", 1),
            ],
        },
    )
    assert ledger.beyond([_fault({1: 40}, {(1, 47), (1, 48)})]) == []


def test_a_committed_input_handled_again_is_not_explained() -> None:
    ledger = Ledger(
        expected={(1, 5)},
        outputs={(1, 5): [_result(1, "X:1", 1), _result(1, "X:1", 1)]},
    )
    problems = ledger.beyond([_fault({1: 6}, set())])
    assert problems == [
        "input (1, 5) answered 2 times, 1 allowed",
        "input (1, 5) repeated an output but was committed at every fault",
    ]


def test_an_input_may_be_answered_once_more_for_each_fault_it_was_in_flight_at() -> None:
    ledger = Ledger(
        expected={(0, 8)},
        outputs={(0, 8): [_result(0, "X:1", 1)] * 3},
    )
    once = _fault({0: 5}, {(0, 8)})
    assert ledger.beyond([once, _fault({0: 9}, set())]) == [
        "input (0, 8) answered 3 times, 2 allowed"
    ]
    assert ledger.beyond([once, once]) == []


def test_repeats_that_disagree_are_not_explained() -> None:
    (problem,) = _disagreeing().beyond([_fault({0: 0}, {(0, 3)})])
    assert problem.startswith("('C3:1', 2) repeated with different verdicts")
