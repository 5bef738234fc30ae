"""Per-patient history: what the engine remembers about a patient across claims.

A plain, immutable data structure. The engine reads it and returns the next one; the adapters
store it (a Faust table backed by a compacted changelog in the worker, a dict in the offline
scrub), so the engine itself never does I/O and the same history logic serves both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PatientHistory:
    """The lines of one patient that later lines may need to be judged against.

    Empty for a patient seen for the first time. The global-surgery checks extend it with the
    procedures that open a global period and the recent lines a later surgery could pull in.
    """

    member_id: str = ""

    @classmethod
    def empty(cls, member_id: str) -> PatientHistory:
        """The history of a patient the scrubber has not seen before."""
        return cls(member_id=member_id)
