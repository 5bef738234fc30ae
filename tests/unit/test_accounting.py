"""The ledger's account of inputs without output."""

from __future__ import annotations

from scrubber.accounting import Ledger, Output


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
