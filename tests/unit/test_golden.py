"""The offline scrub of seeds/examples/claims.jsonl, compared with a reviewed golden file.

The golden file lists, per result, the line id, revision, outcome and rule ids: a change to the
engine that changes any verdict on the demo input shows up here and in review. Regenerate with
`python -m tests.unit.test_golden` after checking that the change is intended.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import orjson

from scrubber.contracts import ScrubResult
from scrubber.offline import scrub_lines
from scrubber.refdata.build import build_bundle
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.model import ReferenceSnapshot

REPO = Path(__file__).resolve().parents[2]
INPUT = REPO / "seeds/examples/claims.jsonl"
GOLDEN = REPO / "tests/golden/claims.verdicts.jsonl"
AS_OF = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def verdicts() -> list[bytes]:
    bundle = build_bundle(REPO / "seeds", mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)
    results, rejects = io.BytesIO(), io.BytesIO()
    scrub_lines(
        INPUT.read_bytes().splitlines(),
        ReferenceSnapshot(bundle),
        results,
        rejects,
        INPUT.name,
        clock=lambda: AS_OF,
    )
    out = []
    for raw in results.getvalue().splitlines():
        r = ScrubResult.model_validate_json(raw)
        out.append(
            orjson.dumps(
                {
                    "line_id": r.line_id,
                    "revision": r.revision,
                    "outcome": r.outcome.value,
                    "rules": [f.rule_id for f in r.findings],
                }
            )
        )
    for raw in rejects.getvalue().splitlines():
        doc = orjson.loads(raw)
        out.append(orjson.dumps({"input_line": doc["input_line"], "reject": doc["error_code"]}))
    return out


def test_offline_scrub_of_the_demo_input_matches_the_golden_file() -> None:
    expected = GOLDEN.read_bytes().splitlines()
    assert verdicts() == expected


if __name__ == "__main__":
    GOLDEN.write_bytes(b"".join(v + b"\n" for v in verdicts()))
    print(f"wrote {GOLDEN}")
