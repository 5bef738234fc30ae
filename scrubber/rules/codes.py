"""What kind of code a procedure code is: E/M, add-on, the primaries of an add-on.

Shared by the modifier, add-on and (later) global-period rules, so that every rule agrees on what
"an E/M code" and "an add-on code" mean. Nothing here registers a rule.
"""

from __future__ import annotations

from collections.abc import Mapping

from scrubber.refdata.model import CodeReference, ReferenceSnapshot
from scrubber.standards import ADD_ON_GLOBAL_DAYS as ADD_ON_GLOBAL

#: The CPT evaluation and management section: 99202-99499 (CPT E/M guidelines; CMS Claims
#: Processing Manual ch. 12 §30.6). 99201 was deleted in 2021, so the range starts at 99202.
EM_FIRST = 99202
EM_LAST = 99499


def is_em(code: str) -> bool:
    """Whether a procedure code is a CPT E/M code (five ASCII digits in 99202-99499)."""
    if len(code) != 5 or not code.isascii() or not code.isdigit():
        return False
    return EM_FIRST <= int(code) <= EM_LAST


def is_add_on(ref: CodeReference | None) -> bool:
    """Whether the reference data marks a code as an add-on (global days ZZZ).

    Unknown codes and codes without a global days value are not add-ons: no rule may conclude
    anything from data it does not have.
    """
    return ref is not None and ref.global_days == ADD_ON_GLOBAL


# A snapshot is immutable and replaced as a whole, so the reverse index of add-on relations is
# computed once per snapshot. The snapshot is kept in the entry so that its id cannot be reused by
# another object while the entry lives; the cache holds at most a few snapshots.
_PRIMARY_INDEX: dict[int, tuple[ReferenceSnapshot, Mapping[str, frozenset[str]]]] = {}
_PRIMARY_INDEX_SIZE = 4


def _primary_index(snapshot: ReferenceSnapshot) -> Mapping[str, frozenset[str]]:
    cached = _PRIMARY_INDEX.get(id(snapshot))
    if cached is not None and cached[0] is snapshot:
        return cached[1]
    index: dict[str, set[str]] = {}
    for code, ref in snapshot.codes.items():
        for add_on in ref.add_on_codes:
            index.setdefault(add_on, set()).add(code)
    frozen = {add_on: frozenset(codes) for add_on, codes in index.items()}
    if len(_PRIMARY_INDEX) >= _PRIMARY_INDEX_SIZE:
        _PRIMARY_INDEX.clear()  # versions change rarely; a rebuild costs one pass over the codes
    _PRIMARY_INDEX[id(snapshot)] = (snapshot, frozen)
    return frozen


def primaries_of(snapshot: ReferenceSnapshot, add_on: str) -> frozenset[str]:
    """The codes whose reference lists ``add_on`` among the add-on codes they are primary for."""
    return _primary_index(snapshot).get(add_on, frozenset())
