"""contracts/ is generated from the models and must not drift; its examples must validate."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml

from scrubber.schema import SCHEMAS, drift

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


def test_contract_files_match_the_models() -> None:
    stale = drift(CONTRACTS)
    assert stale == [], f"run `scrubber contracts generate`: {stale}"


@pytest.mark.parametrize(
    ("example", "schema"),
    [
        ("claim-line.json", "claim-line.v1.schema.json"),
        ("scrub-result.json", "scrub-result.v1.schema.json"),
        ("claim-result.json", "claim-result.v1.schema.json"),
    ],
)
def test_examples_validate_against_their_schema(example: str, schema: str) -> None:
    instance = orjson.loads((CONTRACTS / "examples" / example).read_bytes())
    validator = jsonschema.Draft202012Validator(orjson.loads((CONTRACTS / schema).read_bytes()))
    assert list(validator.iter_errors(instance)) == []


def test_schema_rejects_what_the_model_rejects() -> None:
    schema = orjson.loads((CONTRACTS / "claim-line.v1.schema.json").read_bytes())
    instance = orjson.loads((CONTRACTS / "examples" / "claim-line.json").read_bytes())
    instance["line_number"] = 0
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(instance))


def test_asyncapi_describes_the_worker_and_x12_topics() -> None:
    doc = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {
        "claims.lines.v1",
        "claims.accepted.v1",
        "claims.flagged.v1",
        "claims.dlq.v1",
        "claims.x12.v1",
        "claims.x12.ack.v1",
        "claims.claims.v1",
        "claims.x12.277ca.v1",
    }
    claims = doc["channels"]["claims"]["messages"]["claimResult"]["$ref"]
    assert claims == "#/components/messages/claimResult"
    refs = (
        "claim-line.v1.schema.json",
        "scrub-result.v1.schema.json",
        "claim-result.v1.schema.json",
    )
    for ref in refs:
        assert ref in SCHEMAS and (CONTRACTS / ref).exists()
    dlq_headers = doc["components"]["messages"]["deadLetter"]["headers"]["properties"]
    assert "scrubber-error-code" in dlq_headers
