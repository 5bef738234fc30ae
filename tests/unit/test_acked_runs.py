"""Faust commits past repeated acknowledged offsets at once (``acked_runs``), never past a hole."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import faust.transport.consumer as faust_consumer
import pytest
from faust.types import TP
from faust.utils.functional import consecutive_numbers
from hypothesis import given
from hypothesis import strategies as st
from intervaltree import Interval, IntervalTree

from scrubber.stream.faust_internals import acked_runs, install

TOPIC = TP("claims.lines.v1", 0)


def test_a_repeated_offset_continues_the_run() -> None:
    assert list(acked_runs([5, 6, 6, 7, 7, 8])) == [[5, 6, 6, 7, 7, 8]]
    assert next(iter(consecutive_numbers([5, 6, 6, 7, 7, 8]))) == [5, 6]  # what Faust's own gives


def test_a_hole_ends_the_run() -> None:
    assert list(acked_runs([1, 2, 4, 5, 5, 9])) == [[1, 2], [4, 5, 5], [9]]
    assert list(acked_runs([])) == []


@given(st.lists(st.integers(0, 60), max_size=40))
def test_runs_split_a_sorted_list_exactly_at_its_holes(offsets: list[int]) -> None:
    offsets.sort()
    runs = list(acked_runs(offsets))
    assert [o for run in runs for o in run] == offsets
    for run in runs:
        assert all(b - a in (0, 1) for a, b in pairwise(run))
    for before, after in pairwise(runs):
        assert after[0] - before[-1] > 1
    if len(set(offsets)) == len(offsets):  # no repeats: exactly Faust's runs
        assert runs == [list(r) for r in consecutive_numbers(offsets)]


def _consumer(acked: list[int], committed: int, gap: IntervalTree) -> Any:
    """The state ``Consumer._new_offset`` reads, for one partition."""
    return SimpleNamespace(
        _acked=defaultdict(list, {TOPIC: acked}),
        _acked_index=defaultdict(set, {TOPIC: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {TOPIC: committed}),
        _gap=defaultdict(IntervalTree, {TOPIC: gap}),
    )


@pytest.fixture
def patched() -> Iterator[None]:
    assert faust_consumer.consecutive_numbers is consecutive_numbers  # type: ignore[attr-defined]
    installation = install(tune_gc=False)
    assert faust_consumer.consecutive_numbers is acked_runs  # type: ignore[attr-defined]
    yield
    installation.undo()


@pytest.fixture
def unpatched() -> None:
    assert faust_consumer.consecutive_numbers is consecutive_numbers  # type: ignore[attr-defined]


def test_faust_commits_past_recovered_records_its_gap_also_holds(patched: None) -> None:
    # Faust saw a jump from 4 to 8 in the fetched records and noted [5, 8) as a gap; the gap
    # guard handled and acknowledged 5-7, then 8 and 9 came. Faust's gap filling repeats 5-7.
    consumer = _consumer([5, 6, 7, 8, 9], committed=5, gap=IntervalTree([Interval(5, 8)]))
    assert faust_consumer.Consumer._new_offset(consumer, TOPIC) == 10
    assert consumer._acked[TOPIC] == []


def test_faust_still_stops_at_a_record_not_handled(patched: None) -> None:
    consumer = _consumer([5, 6, 6, 7, 9, 10], committed=5, gap=IntervalTree())
    assert faust_consumer.Consumer._new_offset(consumer, TOPIC) == 8
    assert consumer._acked[TOPIC] == [9, 10]


def test_without_it_faust_commits_one_offset_at_a_time(unpatched: None) -> None:
    consumer = _consumer([5, 6, 7, 8, 9], committed=5, gap=IntervalTree([Interval(5, 8)]))
    assert faust_consumer.Consumer._new_offset(consumer, TOPIC) == 6  # the stall, for the record
