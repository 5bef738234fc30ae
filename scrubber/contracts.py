"""The message contracts of claim-scrubber, version 1.

Every message that crosses a topic is one of these models; the JSON Schemas in ``contracts/`` are
generated from them (``scrubber contracts generate``) and a test fails when the two drift apart.

The input contract is a tolerant reader: unknown fields are ignored so that producers can add
fields without breaking the scrubber, while known fields are validated strictly (no coercion
of ``"3"`` into ``3``) so that a producer bug is caught instead of guessed at. The contract
rejects only what cannot be read; checks that are the scrubber's job (NPI check digit,
ICD-10-CM shape, a date of service in the future, a malformed modifier) are findings on an
emitted result, not contract errors. Every string and list is bounded so that one hostile
message cannot cost unbounded memory.

Validation errors never carry input values (``hide_input_in_errors``), and ``describe_errors``
reduces them further to location and error type, which is all that may reach a log, a metric or a
dead-letter header: the input holds PHI.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

CONTRACT_VERSION = "v1"

#: Largest input message accepted, in bytes. A 12-diagnosis, 4-modifier line with long ids is
#: about 1.5 KiB; 64 KiB leaves room for producers' extra fields without letting a bad producer
#: push megabytes through the validator.
MAX_MESSAGE_BYTES = 64 * 1024

#: Largest record the dead-letter topic takes (``max.message.bytes``) and the worker's producer
#: sends: an input of up to Kafka's default 1 MiB, with its headers, fits whole.
DEAD_LETTER_MAX_BYTES = 2 * 1024 * 1024

#: Most key and value bytes a dead letter carries whole. A compressing upstream can put a
#: record on the input topic that is many MiB once uncompressed (Kafka limits the compressed
#: batch, the producer's check the uncompressed record); sent whole, its dead letter would be
#: refused and the worker would stop on that offset. The rest of ``DEAD_LETTER_MAX_BYTES`` is
#: room for headers and the record's framing.
DEAD_LETTER_PAYLOAD_BYTES = DEAD_LETTER_MAX_BYTES - 64 * 1024

#: What the dead letter of a larger record keeps: the value's and the key's first bytes (see
#: ``HEADER_ORIGINAL_BYTES``). Enough to see what the message was; such a letter is never
#: replayed, so keeping megabytes of it (PHI) for the dead-letter topic's retention serves no
#: one, and a small letter fits any topic.
DEAD_LETTER_PREVIEW_BYTES = 64 * 1024
DEAD_LETTER_KEY_BYTES = 16 * 1024

#: Largest number of modifiers the contract reads. An 837P line has four slots (SV101-3..6); a
#: fifth is readable and is reported by the engine as a finding, so the bound is only a size guard.
MAX_MODIFIERS_READ = 12

Id64 = Annotated[str, Field(min_length=1, max_length=64)]
ShortCode = Annotated[str, Field(min_length=1, max_length=16)]
ShortText = Annotated[str, Field(max_length=16)]


class _Inbound(BaseModel):
    """Base for models read from producers: strict types, extra fields ignored, inputs hidden."""

    model_config = ConfigDict(
        strict=True,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
        str_max_length=256,
    )


class Patient(_Inbound):
    """The patient the line was billed for. ``member_id`` is the partitioning key."""

    member_id: Id64
    birth_date: date | None = None
    sex: Literal["F", "M", "U"] | None = None


class RenderingProvider(_Inbound):
    """The clinician who performed the service (837P loop 2310B / 2420A)."""

    npi: Annotated[str, Field(min_length=1, max_length=16)]
    taxonomy: ShortText | None = None


class BillingProvider(_Inbound):
    """The billing entity (837P loop 2010AA); ``tax_id`` identifies the group for global periods."""

    npi: Annotated[str, Field(min_length=1, max_length=16)]
    tax_id: ShortText | None = None


class X12Party(_Inbound):
    """A name and identifier of the 837 (an NM1) that a 277CA echoes. PHI for a patient."""

    entity_type: Annotated[str, Field(max_length=1, description="NM102: 1 person, 2 organisation")]
    last_name: Annotated[str, Field(max_length=60)] = ""
    first_name: Annotated[str | None, Field(max_length=35)] = None
    id_qualifier: Annotated[str | None, Field(max_length=2)] = None
    identifier: Annotated[str | None, Field(max_length=80)] = None


class X12Envelope(_Inbound):
    """The 837's interchange and group addresses (ISA05-08, ISA15, GS02-03), sent back swapped."""

    sender_qualifier: Annotated[str, Field(max_length=2)]
    sender: Annotated[str, Field(max_length=15)]
    receiver_qualifier: Annotated[str, Field(max_length=2)]
    receiver: Annotated[str, Field(max_length=15)]
    usage: Annotated[str, Field(max_length=1, description="ISA15: P production, T test")]
    group_sender: Annotated[str, Field(max_length=15)]
    group_receiver: Annotated[str, Field(max_length=15)]


class X12Claim(_Inbound):
    """What a 277CA echoes of a line's claim, carried by each of its lines.

    The claim's total charge (CLM02), the patient's and the billing provider's names (2010CA or
    2010BA, 2010AA), the submitter and receiver (1000A, 1000B), the batch (BHT03) and the
    envelope. Each line carries it so that whichever line completes its claim can answer it:
    a claim's lines meet on one partition, the 837 they came from does not.
    """

    charge: Annotated[str, Field(max_length=18)]
    patient: X12Party
    billing: X12Party
    submitter: X12Party
    receiver: X12Party
    batch: Annotated[str, Field(max_length=50)]
    envelope: X12Envelope


class X12Trace(_Inbound):
    """Where a line came from in an 837: interchange (ISA13), group (GS06), set (ST02).

    The optional rest is what a 277CA echoes and the claim line itself does not hold.
    """

    interchange_control: Annotated[str, Field(min_length=1, max_length=16)]
    group_control: Annotated[str, Field(min_length=1, max_length=16)]
    transaction_set_control: Annotated[str, Field(min_length=1, max_length=16)]
    service_to: date | None = Field(
        default=None, description="last date of service of an RD8 range (DTP*472)"
    )
    procedure_qualifier: Annotated[
        str | None, Field(max_length=2, description="SV101-1 (HC, ...)")
    ] = None
    units_text: Annotated[str | None, Field(max_length=15, description="SV104 as sent")] = None
    claim: X12Claim | None = None

    def controls(self) -> X12Trace:
        """The control numbers alone: what a claim's result names of its 837 (no names)."""
        return X12Trace(
            interchange_control=self.interchange_control,
            group_control=self.group_control,
            transaction_set_control=self.transaction_set_control,
        )


class ClaimLine(_Inbound):
    """One professional claim line (837P service line), the input of topic ``claims.lines.v1``."""

    claim_id: Id64
    line_number: Annotated[int, Field(ge=1, le=999)]
    payer_id: Id64
    patient: Patient
    rendering_provider: RenderingProvider
    billing_provider: BillingProvider
    service_date: date
    place_of_service: ShortText | None = None
    procedure_code: ShortCode
    modifiers: Annotated[list[ShortText], Field(max_length=MAX_MODIFIERS_READ)] = Field(
        default_factory=list
    )
    units: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)]
    charge: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2, allow_inf_nan=False)]
    diagnosis_codes: Annotated[list[ShortText], Field(min_length=1, max_length=12)]
    claim_line_count: Annotated[int, Field(ge=1, le=999)] | None = Field(
        default=None,
        description="How many service lines the claim has; a claim's result (ClaimResult) is "
        "assembled once that many of its lines have a verdict.",
    )
    x12: X12Trace | None = Field(
        default=None, description="The 837 envelope the line was read from, when it was."
    )

    @property
    def line_id(self) -> str:
        """The stable identity of a line across redeliveries and revisions."""
        return f"{self.claim_id}:{self.line_number}"


class Severity(StrEnum):
    """How a finding affects the verdict: error and warning flag a line, info does not."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Category(StrEnum):
    """The families of checks; the set is closed so that dashboards can rely on it."""

    CODE = "code"
    MODIFIER = "modifier"
    GLOBAL_PERIOD = "global_period"
    UNITS = "units"
    DIAGNOSIS = "diagnosis"
    PROVIDER = "provider"
    DATE = "date"
    ADD_ON = "add_on"
    DUPLICATE = "duplicate"
    NCCI_PTP = "ncci_ptp"
    HISTORY = "history"


class Outcome(StrEnum):
    """Where a result is routed: ``claims.accepted.v1`` or ``claims.flagged.v1``."""

    ACCEPTED = "accepted"
    FLAGGED = "flagged"


class _Outbound(BaseModel):
    """Base for models the scrubber writes: immutable, and no unknown fields on the way out."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Finding(_Outbound):
    """One problem (or note) the engine found on a line."""

    rule_id: str
    category: Category
    severity: Severity
    message: str
    field: str | None = None
    carc: str | None = Field(
        default=None, description="X12 claim adjustment reason code a payer would likely use"
    )
    reference: dict[str, Any] | None = Field(
        default=None,
        description="The reference data behind this finding when it is more than the line's "
        "own code (for ncci_ptp: the edit pair, its dates, modifier indicator and rationale, and "
        "the other line); absent otherwise.",
    )

    @model_serializer(mode="wrap")
    def _omit_absent_reference(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave ``reference`` out when there is none.

        A finding without one serialises exactly as before the field existed, so results and
        the verdict digests stored in patient histories stay the same for every other rule.
        """
        data: dict[str, Any] = handler(self)
        if data.get("reference") is None:
            data.pop("reference", None)
        return data


class ScrubResult(_Outbound):
    """The verdict on one line, the value of ``claims.accepted.v1`` and ``claims.flagged.v1``.

    Consumers keep the highest ``revision`` per ``line_id``: at-least-once delivery may repeat a
    result, and a later line (a surgery whose window covers an earlier visit) may revise one.
    """

    line_id: str
    revision: Annotated[int, Field(ge=1)]
    outcome: Outcome
    findings: list[Finding]
    line: ClaimLine
    reference: dict[str, Any] | None = Field(
        description="The reference data the engine used for this line's procedure code, "
        "or null when the code is unknown to it."
    )
    refdata_version: str
    scrubbed_at: datetime
    profile: str | None = Field(
        default=None,
        description="The payer profile the line was judged with (from the reference data "
        "version's payer profiles), or null when no profile matches its payer id.",
    )


class ClaimLineStatus(_Outbound):
    """The verdict on one line of a claim, as the claim's result reports it."""

    line_id: str
    revision: Annotated[int, Field(ge=1)]
    outcome: Outcome
    rule_ids: list[str] = Field(description="Rule ids of the line's findings, sorted, unique.")


class ClaimResult(_Outbound):
    """The verdict on a whole claim, the value of ``claims.claims.v1`` (key: member id).

    A claim is ``accepted`` when every one of its lines is accepted. It is first emitted when
    every line (``claim_line_count``) has a verdict, and again, with ``revision`` + 1, whenever a
    line's later revision changes that line's outcome or rule ids. Consumers keep the highest
    ``revision`` per ``claim_id``.
    """

    claim_id: str
    payer_id: str
    revision: Annotated[int, Field(ge=1)]
    outcome: Outcome
    lines: list[ClaimLineStatus]
    x12: X12Trace | None
    refdata_version: str
    scrubbed_at: datetime


class DeadLetterCode(StrEnum):
    """Why a message could not be scrubbed: a closed set, safe as a metric label."""

    EMPTY_VALUE = "empty_value"
    OVERSIZE = "oversize"
    NOT_JSON = "not_json"
    CONTRACT_VIOLATION = "contract_violation"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"
    PROCESSING_ERROR = "processing_error"
    NOT_X12 = "not_x12"


class DeadLetterStage(StrEnum):
    """Which step refused the message."""

    DECODE = "decode"
    VALIDATE = "validate"
    ENGINE = "engine"


class DeadLetter(_Outbound):
    """What the dead-letter topic says about a message, carried in headers (``DLQ_HEADERS``).

    The value of a dead letter is the original bytes, unchanged, and its key the original key:
    a fixed message can be replayed as it was. ``detail`` names locations and error types only.
    A message too large for the dead-letter topic (``DEAD_LETTER_PAYLOAD_BYTES``) is the one
    exception: its dead letter keeps the first bytes of its value and key, says how large they
    were (``original_bytes``, ``original_key_bytes``: set for each one that was cut), and is
    never replayed; the source headers still say where the whole message is.
    """

    error_code: DeadLetterCode
    stage: DeadLetterStage
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: datetime
    attempt: Annotated[int, Field(ge=1)] = 1
    original_bytes: Annotated[int | None, Field(ge=0)] = Field(
        default=None,
        description="Size of the original value when the dead letter holds only its first bytes.",
    )
    original_key_bytes: Annotated[int | None, Field(ge=0)] = Field(
        default=None,
        description="Size of the original key when the dead letter holds only its first bytes.",
    )


#: Header names of every message the scrubber writes. Results carry the ``source`` headers too, so
#: that any output can be traced back to the input offset it came from.
HEADER_ERROR_CODE = "scrubber-error-code"
HEADER_STAGE = "scrubber-stage"
HEADER_DETAIL = "scrubber-error-detail"
HEADER_SOURCE_TOPIC = "scrubber-source-topic"
HEADER_SOURCE_PARTITION = "scrubber-source-partition"
HEADER_SOURCE_OFFSET = "scrubber-source-offset"
HEADER_FAILED_AT = "scrubber-failed-at"
HEADER_ATTEMPT = "scrubber-attempt"
#: On a dead letter cut to fit its topic only: the original value's size, and the original key's
#: when the key was cut (a key is cut only when it is over ``DEAD_LETTER_KEY_BYTES``).
HEADER_ORIGINAL_BYTES = "scrubber-original-bytes"
HEADER_ORIGINAL_KEY_BYTES = "scrubber-original-key-bytes"
HEADER_CONTRACT = "scrubber-contract"
#: On results: ``input`` for the verdict on the input record itself, ``revision`` for a new
#: revision of an earlier line that the input changed (both carry the input's source headers).
HEADER_TRIGGER = "scrubber-trigger"


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """Reduce a validation error to ``location:type`` pairs, with no input value in it.

    Locations are field names and list indexes of the contract (never keys taken from the input,
    since the contract has no free-form mappings), so the result is safe for logs and headers.
    """
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "$"
        parts.append(f"{loc}:{err['type']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"+{more} more")
    return ", ".join(parts)
