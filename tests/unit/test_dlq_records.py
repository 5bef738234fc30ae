"""What the dead-letter tools read from a record's headers, without a broker."""

from __future__ import annotations

import pytest

from scrubber.contracts import (
    HEADER_ATTEMPT,
    HEADER_ERROR_CODE,
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_KEY_BYTES,
)
from scrubber.dlq import MAX_ATTEMPTS, DeadLetterRecord, sort_out


def _record(**headers: bytes) -> DeadLetterRecord:
    base = {HEADER_ERROR_CODE: b"oversize", HEADER_ATTEMPT: b"1"}
    return DeadLetterRecord(0, 7, b"M1", b"{...", {**base, **headers})


def test_a_whole_dead_letter_is_not_cut() -> None:
    rec = _record()
    assert rec.original_bytes is None and rec.original_key_bytes is None and not rec.cut
    assert rec.describe()["original_bytes"] is None


@pytest.mark.parametrize(
    ("headers", "size", "key_size"),
    [
        ({HEADER_ORIGINAL_BYTES: b"5242900"}, 5242900, None),
        ({HEADER_ORIGINAL_BYTES: b"garbled"}, -1, None),  # cut, size unreadable
        ({HEADER_ORIGINAL_KEY_BYTES: b"3000000"}, None, 3000000),  # only the key was cut
    ],
)
def test_a_cut_dead_letter_says_so(
    headers: dict[str, bytes], size: int | None, key_size: int | None
) -> None:
    rec = _record(**headers)
    assert rec.cut
    assert (rec.original_bytes, rec.original_key_bytes) == (size, key_size)
    described = rec.describe()
    assert (described["original_bytes"], described["original_key_bytes"]) == (size, key_size)


@pytest.mark.parametrize(("raw", "attempt"), [(b"2", 2), (b"0", 1), (b"x", 1), (None, 1)])
def test_the_attempt_is_at_least_one(raw: bytes | None, attempt: int) -> None:
    rec = _record() if raw is None else _record(**{HEADER_ATTEMPT: raw})
    if raw is None:
        del rec.headers[HEADER_ATTEMPT]
    assert rec.attempt == attempt


def test_replay_refuses_cut_letters_whatever_their_attempt() -> None:
    whole = _record()
    spent = DeadLetterRecord(0, 8, b"M1", b"{}", {HEADER_ATTEMPT: str(MAX_ATTEMPTS).encode()})
    cut = DeadLetterRecord(1, 9, b"M1", b"{", {HEADER_ORIGINAL_BYTES: b"9000000"})
    cut_and_spent = DeadLetterRecord(
        1,
        10,
        b"M1",
        b"{",
        {HEADER_ORIGINAL_KEY_BYTES: b"9000000", HEADER_ATTEMPT: str(MAX_ATTEMPTS).encode()},
    )
    report, allowed = sort_out([whole, spent, cut, cut_and_spent], dry_run=False)
    assert allowed == [whole]
    assert report.refused == [(0, 8)]
    assert report.cut == [(1, 9), (1, 10)]
    assert (report.selected, report.replayed, report.dry_run) == (4, 0, False)
