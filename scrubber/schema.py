"""Generate ``contracts/``: JSON Schemas of the models and an AsyncAPI 3 document of the topics.

The models in ``scrubber.contracts`` are the source of truth; the files are what other teams
read. ``scrubber contracts generate`` writes them and ``scrubber contracts check`` (run by the
test suite) fails when the files in the repo differ from what the models generate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from scrubber.config import Settings
from scrubber.contracts import (
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_PAYLOAD_BYTES,
    DEAD_LETTER_PREVIEW_BYTES,
    HEADER_ATTEMPT,
    HEADER_CONTRACT,
    HEADER_DETAIL,
    HEADER_ERROR_CODE,
    HEADER_FAILED_AT,
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_KEY_BYTES,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    HEADER_STAGE,
    HEADER_TRIGGER,
    MAX_MESSAGE_BYTES,
    ClaimLine,
    ClaimResult,
    DeadLetter,
    DeadLetterCode,
    DeadLetterStage,
    ScrubResult,
)

SCHEMAS: dict[str, Any] = {
    "claim-line.v1.schema.json": ClaimLine,
    "scrub-result.v1.schema.json": ScrubResult,
    "dead-letter.v1.schema.json": DeadLetter,
    "claim-result.v1.schema.json": ClaimResult,
}

_ID_BASE = "https://claim-scrubber.example/contracts/"


def json_schema(model: Any, name: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one model, with an id and the draft named."""
    schema: dict[str, Any] = model.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _ID_BASE + name,
        **schema,
    }


def _source_headers() -> dict[str, Any]:
    return {
        HEADER_SOURCE_TOPIC: {"type": "string", "description": "input topic of the record"},
        HEADER_SOURCE_PARTITION: {"type": "string", "description": "input partition (decimal)"},
        HEADER_SOURCE_OFFSET: {"type": "string", "description": "input offset (decimal)"},
    }


def asyncapi(settings: Settings, examples: dict[str, Any]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the worker's four topics and the X12 edge's four."""
    from scrubber.x12.intake import (
        HEADER_X12_GROUP,
        HEADER_X12_INTERCHANGE,
        HEADER_X12_TRANSACTION_SET,
        MAX_INTERCHANGE_BYTES,
    )

    key = {"type": "string", "description": "the patient's member id, UTF-8"}
    kafka_binding = {"kafka": {"key": key, "bindingVersion": "0.5.0"}}

    def channel(topic: str, message: str, description: str) -> dict[str, Any]:
        return {
            "address": topic,
            "description": description,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
            "bindings": {
                "kafka": {
                    "partitions": settings.partitions,
                    "replicas": 1,
                    "bindingVersion": "0.5.0",
                }
            },
        }

    result_headers = {
        "type": "object",
        "properties": {
            **_source_headers(),
            HEADER_CONTRACT: {"type": "string", "const": "v1"},
            HEADER_TRIGGER: {
                "type": "string",
                "enum": ["input", "revision"],
                "description": "input: the verdict on the input record itself; revision: a new "
                "revision of an earlier line that the input changed",
            },
        },
    }
    dlq_headers = {
        "type": "object",
        "required": [
            HEADER_ERROR_CODE,
            HEADER_STAGE,
            HEADER_SOURCE_TOPIC,
            HEADER_SOURCE_PARTITION,
            HEADER_SOURCE_OFFSET,
        ],
        "properties": {
            HEADER_ERROR_CODE: {"type": "string", "enum": [c.value for c in DeadLetterCode]},
            HEADER_STAGE: {"type": "string", "enum": [s.value for s in DeadLetterStage]},
            HEADER_DETAIL: {
                "type": "string",
                "description": "field locations and error types only; never input text",
            },
            **_source_headers(),
            HEADER_FAILED_AT: {"type": "string", "format": "date-time"},
            HEADER_ATTEMPT: {"type": "string", "description": "1 for the first failure"},
            HEADER_ORIGINAL_BYTES: {
                "type": "string",
                "description": (
                    "only on a dead letter whose value was cut to fit its topic: the original "
                    "value's size (decimal); the letter is never replayed"
                ),
            },
            HEADER_ORIGINAL_KEY_BYTES: {
                "type": "string",
                "description": (
                    "only on a dead letter whose key was cut (a key over "
                    f"{DEAD_LETTER_KEY_BYTES} bytes, in a letter too large for its topic): the "
                    "original key's size (decimal)"
                ),
            },
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "claim-scrubber",
            "version": "1.0.0",
            "description": (
                "Professional claim lines in, one verdict per line out. At-least-once: a result "
                "may be delivered more than once, and a line may be revised; consumers keep the "
                "highest revision per line_id. Every input ends in exactly one of accepted, "
                "flagged or the dead-letter topic."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {
            "claimLines": channel(
                settings.input_topic,
                "claimLine",
                "Claim lines from clearinghouse pipelines; key = member id. "
                f"Values over {MAX_MESSAGE_BYTES} bytes are dead-lettered.",
            ),
            "accepted": channel(
                settings.accepted_topic, "scrubResult", "Lines with no error or warning finding."
            ),
            "flagged": channel(
                settings.flagged_topic,
                "scrubResult",
                "Lines with at least one error or warning finding.",
            ),
            "deadLetters": channel(
                settings.dlq_topic,
                "deadLetter",
                "Inputs that could not be read: original key and bytes.",
            ),
            "x12Interchanges": channel(
                settings.x12_topic,
                "x12Interchange",
                "X12 837P interchanges (ISA..IEA; one or more per record), any key. Each "
                "service line of an accepted transaction set becomes a claim line on "
                f"{settings.input_topic}; values over {MAX_INTERCHANGE_BYTES} bytes, or that "
                "do not start with an ISA, are dead-lettered.",
            ),
            "x12Acks": channel(
                settings.x12_ack_topic,
                "x12Ack",
                "The 999 (005010X231A1) of each interchange read, or a TA1 interchange when "
                "the interchange was refused at its envelope.",
            ),
            "claims": channel(
                settings.claims_topic,
                "claimResult",
                "The verdict on each 837 claim once every line has one, and again whenever "
                "a line's revision changes it; consumers keep the highest revision per claim_id.",
            ),
            "x12ClaimAcks": channel(
                settings.x12_277ca_topic,
                "x12ClaimAck",
                "277CA (005010X214) claim acknowledgements rendered from the claim results, one "
                "interchange per submitter per line that completed or changed claims; key: the "
                "837's sender (ISA06).",
            ),
        },
        "operations": {
            "scrubLines": {"action": "receive", "channel": {"$ref": "#/channels/claimLines"}},
            "emitAccepted": {"action": "send", "channel": {"$ref": "#/channels/accepted"}},
            "emitFlagged": {"action": "send", "channel": {"$ref": "#/channels/flagged"}},
            "emitDeadLetter": {"action": "send", "channel": {"$ref": "#/channels/deadLetters"}},
            "readInterchanges": {
                "action": "receive",
                "channel": {"$ref": "#/channels/x12Interchanges"},
            },
            "emitAcks": {"action": "send", "channel": {"$ref": "#/channels/x12Acks"}},
            "emitClaims": {"action": "send", "channel": {"$ref": "#/channels/claims"}},
            "emitClaimAcks": {"action": "send", "channel": {"$ref": "#/channels/x12ClaimAcks"}},
        },
        "components": {
            "messages": {
                "claimLine": {
                    "name": "ClaimLine",
                    "payload": {"$ref": "./claim-line.v1.schema.json"},
                    "headers": {
                        "type": "object",
                        "description": "set on lines read from an 837 (with the source headers "
                        "of the interchange record)",
                        "properties": {
                            HEADER_X12_INTERCHANGE: {"type": "string", "description": "ISA13"},
                            HEADER_X12_GROUP: {"type": "string", "description": "GS06"},
                            HEADER_X12_TRANSACTION_SET: {"type": "string", "description": "ST02"},
                        },
                    },
                    "bindings": kafka_binding,
                    "examples": [{"name": "surgery", "payload": examples["claim-line"]}],
                },
                "scrubResult": {
                    "name": "ScrubResult",
                    "payload": {"$ref": "./scrub-result.v1.schema.json"},
                    "headers": result_headers,
                    "bindings": kafka_binding,
                    "examples": [{"name": "flagged", "payload": examples["scrub-result"]}],
                },
                "x12Interchange": {
                    "name": "X12Interchange",
                    "contentType": "application/edi-x12",
                    "payload": {
                        "type": "string",
                        "description": "X12 005010 interchanges, 837P (005010X222A1)",
                    },
                },
                "x12Ack": {
                    "name": "X12Ack",
                    "contentType": "application/edi-x12",
                    "payload": {
                        "type": "string",
                        "description": "a 999 (005010X231A1) interchange, or a TA1 interchange",
                    },
                    "bindings": {
                        "kafka": {
                            "key": {"type": "string", "description": "the submitter's ISA06"},
                            "bindingVersion": "0.5.0",
                        }
                    },
                },
                "x12ClaimAck": {
                    "name": "X12ClaimAck",
                    "contentType": "application/edi-x12",
                    "payload": {
                        "type": "string",
                        "description": "a 277CA (005010X214) interchange",
                    },
                    "bindings": {
                        "kafka": {
                            "key": {"type": "string", "description": "the submitter's ISA06"},
                            "bindingVersion": "0.5.0",
                        }
                    },
                },
                "claimResult": {
                    "name": "ClaimResult",
                    "payload": {"$ref": "./claim-result.v1.schema.json"},
                    "bindings": kafka_binding,
                    "examples": [{"name": "rejected", "payload": examples["claim-result"]}],
                },
                "deadLetter": {
                    "name": "DeadLetter",
                    "contentType": "application/octet-stream",
                    "payload": {
                        "type": "string",
                        "format": "binary",
                        "description": (
                            "the original value, unchanged; when key and value exceed "
                            f"{DEAD_LETTER_PAYLOAD_BYTES} bytes, the first "
                            f"{DEAD_LETTER_PREVIEW_BYTES} bytes of a longer value, and "
                            f"{HEADER_ORIGINAL_BYTES} gives its size"
                        ),
                    },
                    "headers": dlq_headers,
                    "bindings": kafka_binding,
                },
            }
        },
    }


def render(directory: Path, settings: Settings | None = None) -> dict[Path, bytes]:
    """Every generated file under ``directory`` with its content."""
    # Defaults, not the environment: the files in the repo describe the standard deployment.
    settings = settings or Settings.model_construct()
    out: dict[Path, bytes] = {}
    for name, model in SCHEMAS.items():
        out[directory / name] = (
            orjson.dumps(
                json_schema(model, name), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
            )
            + b"\n"
        )
    examples = {
        stem: orjson.loads((directory / "examples" / f"{stem}.json").read_bytes())
        for stem in ("claim-line", "scrub-result", "claim-result")
    }
    doc = asyncapi(settings, examples)
    out[directory / "asyncapi.yaml"] = yaml.safe_dump(
        doc, sort_keys=False, allow_unicode=True, width=100
    ).encode()
    return out


def drift(directory: Path) -> list[Path]:
    """Generated files whose content in the repo differs from what the models give."""
    return [
        path
        for path, data in render(directory).items()
        if not path.exists() or path.read_bytes() != data
    ]
