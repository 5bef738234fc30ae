"""837P -> claim lines: every mapped field, loop variants, separators, determinism."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrubber.contracts import ClaimLine
from scrubber.x12.intake import X12Summary, read_interchanges
from tests.unit.x12data import (
    BILLING_NPI,
    OTHER_BILLING_NPI,
    RENDERING_2310B,
    RENDERING_2420A,
    Claim,
    Line,
    Patient,
    Provider,
    Separators,
    Subscriber,
    render,
    simple,
    transaction_set,
)

NOW = datetime(2024, 3, 20, 10, 30, tzinfo=UTC)


def lines_of(data: bytes) -> tuple[list[dict], X12Summary]:
    summary = X12Summary()
    out: list[dict] = []
    for outcome in read_interchanges(data, NOW):
        summary.add(outcome)
        out.extend(orjson.loads(line.value) for line in outcome.lines)
    return out, summary


def two_payers() -> bytes:
    """Two billing providers, three subscribers (two payers), a patient loop, four claims."""
    first = Provider(
        subscribers=[
            Subscriber(
                member_id="MEMBER001",
                payer_id="PAYER01",
                claims=[
                    Claim(
                        claim_id="CLAIM001",
                        diagnoses=(("ABK", "J209"), ("ABF", "R05"), ("ABF", "E119")),
                        lines=[
                            Line(procedure="99213", modifiers=("25",), pointers=("3", "1")),
                            Line(
                                procedure="11042",
                                modifiers=("59", "LT", "XS", "76"),
                                charge="250.50",
                                units="2",
                                place="22",
                                pointers=("2",),
                                date="20240302",
                                end_date="20240304",
                                rendering=RENDERING_2420A,
                                rendering_taxonomy="208600000X",
                            ),
                        ],
                    ),
                    Claim(claim_id="CLAIM002", rendering=None, lines=[Line(procedure="99214")]),
                ],
            ),
            Subscriber(
                member_id="MEMBER002",
                payer_id="PAYER02",
                birth="19700203",
                sex="M",
                patient=Patient(birth="20120709", sex="F"),
                claims=[Claim(claim_id="CLAIM003", place="21", lines=[Line(procedure="99232")])],
            ),
        ]
    )
    second = Provider(
        npi=OTHER_BILLING_NPI,
        tax_id="987654321",
        taxonomy="207R00000X",
        subscribers=[
            Subscriber(
                member_id="MEMBER003",
                payer_id="PAYER02",
                claims=[
                    Claim(
                        claim_id="CLAIM004",
                        rendering=None,
                        lines=[Line(procedure="J1100", units="1.5", charge="12.25")],
                    )
                ],
            )
        ],
    )
    return render([("101", [transaction_set("0001", [first, second])])])


def test_every_field_of_every_line() -> None:
    lines, summary = lines_of(two_payers())
    assert summary.text() == (
        "interchanges 1 (rejected 0), transaction sets 1 (accepted 1, rejected 0), "
        "claims 4, lines 5"
    )
    clinic = {"entity_type": "2", "last_name": "BILLING CLINIC", "id_qualifier": "XX"}
    claim_echo = {
        "charge": "350.5",  # CLM02
        "patient": {  # no patient loop: the subscriber (2010BA) is the patient
            "entity_type": "1",
            "last_name": "DOE",
            "first_name": "JOHN",
            "id_qualifier": "MI",
            "identifier": "MEMBER001",
        },
        "billing": {**clinic, "identifier": BILLING_NPI},
        "submitter": {
            "entity_type": "2",
            "last_name": "SUBMITTER CLINIC",
            "id_qualifier": "46",
            "identifier": "S12345",
        },
        "receiver": {
            "entity_type": "2",
            "last_name": "RECEIVER CH",
            "id_qualifier": "46",
            "identifier": "R54321",
        },
        "batch": "BATCH0001",
        "envelope": {
            "sender_qualifier": "ZZ",
            "sender": "SUBMITTER01",
            "receiver_qualifier": "ZZ",
            "receiver": "RECEIVER01",
            "usage": "T",
            "group_sender": "SUBMITTER01",
            "group_receiver": "RECEIVER01",
        },
    }
    trace = {
        "interchange_control": "000000101",
        "group_control": "101",
        "transaction_set_control": "0001",
        "service_to": "2024-03-01",
        "procedure_qualifier": "HC",
        "units_text": "1",
        "claim": claim_echo,
    }
    assert lines[0] == {
        "claim_id": "CLAIM001",
        "line_number": 1,
        "payer_id": "PAYER01",
        "patient": {"member_id": "MEMBER001", "birth_date": "1980-01-01", "sex": "M"},
        "rendering_provider": {"npi": RENDERING_2310B, "taxonomy": "207Q00000X"},
        "billing_provider": {"npi": BILLING_NPI, "tax_id": "123456789"},
        "service_date": "2024-03-01",
        "place_of_service": "11",
        "procedure_code": "99213",
        "modifiers": ["25"],
        "units": 1.0,
        "charge": "100",
        # SV107 points at 3 then 1: the line's first-listed diagnosis is E119, not the principal.
        "diagnosis_codes": ["E119", "J209"],
        "claim_line_count": 2,
        "x12": trace,
    }
    second = lines[1]
    # 2420A wins over 2310B, with its own taxonomy; SV105 wins over CLM05-1; RD8 gives its start.
    assert second["rendering_provider"] == {"npi": RENDERING_2420A, "taxonomy": "208600000X"}
    assert (second["place_of_service"], second["service_date"]) == ("22", "2024-03-02")
    assert second["modifiers"] == ["59", "LT", "XS", "76"]
    assert (second["units"], second["charge"], second["diagnosis_codes"]) == (
        2.0,
        "250.50",
        ["R05"],
    )
    # The RD8 range's end and SV104 as sent travel for the 277CA; the claim's echo is shared.
    assert (second["x12"]["service_to"], second["x12"]["units_text"]) == ("2024-03-04", "2")
    assert second["x12"]["claim"] == claim_echo
    # No 2310B, no 2420A: the billing provider renders, with 2000A's PRV*BI taxonomy.
    assert lines[2]["rendering_provider"] == {"npi": BILLING_NPI, "taxonomy": "207Q00000X"}
    assert lines[2]["claim_line_count"] == 1
    # Under a patient loop: the member id is the subscriber's, birth date and sex the patient's.
    assert lines[3]["patient"] == {"member_id": "MEMBER002", "birth_date": "2012-07-09", "sex": "F"}
    assert (lines[3]["payer_id"], lines[3]["place_of_service"]) == ("PAYER02", "21")
    assert lines[3]["x12"]["claim"]["patient"] == {  # the 2010CA name, which has no id
        "entity_type": "1",
        "last_name": "DOE",
        "first_name": "JANE",
    }
    assert lines[3]["x12"]["claim"]["charge"] == "100"
    fourth = lines[4]
    assert fourth["billing_provider"] == {"npi": OTHER_BILLING_NPI, "tax_id": "987654321"}
    assert fourth["rendering_provider"] == {"npi": OTHER_BILLING_NPI, "taxonomy": "207R00000X"}
    assert (fourth["units"], fourth["charge"], fourth["procedure_code"]) == (1.5, "12.25", "J1100")
    assert [line["claim_id"] for line in lines] == [
        "CLAIM001",
        "CLAIM001",
        "CLAIM002",
        "CLAIM003",
        "CLAIM004",
    ]
    for line in lines:
        ClaimLine.model_validate_json(orjson.dumps(line))


SEPARATORS = [
    pytest.param(Separators(), id="star-colon-tilde-newline"),
    pytest.param(
        Separators(element="|", component="^", repetition="{", segment="~", newline=""),
        id="pipe-caret",
    ),
    pytest.param(
        Separators(element="|", component=">", repetition="^", segment="\n", newline=""),
        id="newline-terminator",
    ),
    pytest.param(
        Separators(element="*", component=":", repetition="^", segment="~", newline="\r\n"),
        id="crlf-after-terminator",
    ),
    pytest.param(
        Separators(element="!", component="\\", repetition="`", segment="'", newline=""),
        id="unusual",
    ),
]


@pytest.mark.parametrize("sep", SEPARATORS)
def test_separators_declared_by_the_isa_give_the_same_lines(sep: Separators) -> None:
    default, _ = lines_of(two_payers())
    ts = transaction_set(
        "0001",
        [
            Provider(
                subscribers=[
                    Subscriber(
                        claims=[Claim(lines=[Line(modifiers=("25", "59"), pointers=("2", "1"))])]
                    )
                ]
            )
        ],
    )
    reference, _ = lines_of(render([("101", [ts])]))
    got, summary = lines_of(render([("101", [ts])], sep=sep))
    assert summary.accepted == 1
    assert got == reference
    assert got[0]["modifiers"] == ["25", "59"] and got[0]["diagnosis_codes"] == ["R05", "J209"]
    assert default  # the richer sample reads too


def test_several_interchanges_with_their_own_separators_bom_and_blank_lines() -> None:
    one = render([("101", [simple()])], control="000000101")
    two = render(
        [("7", [simple([Claim(claim_id="CLAIM009")], member_id="MEMBER009")])],
        control="000000102",
        sep=Separators(element="|", component="^", repetition="{", segment="~", newline=""),
    )
    lines, summary = lines_of(b"\xef\xbb\xbf\n  " + one + b"\r\n\r\n" + two + b"\n")
    assert (summary.interchanges, summary.transaction_sets, summary.lines) == (2, 2, 2)
    assert [
        (line["claim_id"], line["x12"]["interchange_control"], line["x12"]["group_control"])
        for line in lines
    ] == [
        ("CLAIM001", "000000101", "101"),
        ("CLAIM009", "000000102", "7"),
    ]


def test_a_value_the_guide_allows_but_the_contract_does_not_rejects_the_set() -> None:
    """A member id of 70 characters is valid X12 (NM109 is 80 long) but not a claim line."""
    data = render([("101", [simple(member_id="M" * 70)])])
    outcomes = list(read_interchanges(data, NOW))
    assert outcomes[0].lines == [] and outcomes[0].accepted_sets == 0
    ack = outcomes[0].ack.data.decode()
    assert "IK3*NM1*14**8~" in ack and "IK4*9*67*I12~" in ack and "IK5*R*5~" in ack
    assert "AK9*R*1*1*0~" in ack
    (reject,) = outcomes[0].rejects
    assert reject["errors"] == [
        {
            "level": "element",
            "segment_id": "NM1",
            "segment_position": 14,
            "element_position": 9,
            "component_position": None,
            "element_reference": "67",
            "code": "I12",
            "description": "implementation pattern match failure",
        }
    ]


def test_a_pointer_past_the_diagnoses_rejects_the_set() -> None:
    data = render([("101", [simple([Claim(lines=[Line(pointers=("1", "5"))])])])])
    (outcome,) = read_interchanges(data, NOW)
    assert outcome.lines == []
    assert "IK4*7:2*1328*7~" in outcome.ack.data.decode()


claims_strategy = st.lists(
    st.builds(
        Claim,
        claim_id=st.from_regex(r"[A-Z]{2}[0-9]{1,8}", fullmatch=True),
        lines=st.lists(
            st.builds(
                Line,
                procedure=st.sampled_from(["99213", "11042", "J1100", "99999"]),
                modifiers=st.lists(st.sampled_from(["25", "59", "LT", "RT"]), max_size=4).map(
                    tuple
                ),
                charge=st.from_regex(r"[1-9][0-9]{0,4}(\.[0-9]{2})?", fullmatch=True),
                units=st.sampled_from(["1", "2", "0.5"]),
                pointers=st.lists(
                    st.sampled_from(["1", "2"]), min_size=1, max_size=2, unique=True
                ).map(tuple),
            ),
            min_size=1,
            max_size=4,
        ),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda c: c.claim_id,
)


@settings(max_examples=25, deadline=None)
@given(claims=claims_strategy)
def test_reading_the_same_input_twice_gives_identical_lines(claims: list[Claim]) -> None:
    data = render([("101", [simple(claims)])])
    first = [line.value for o in read_interchanges(data, NOW) for line in o.lines]
    again = [
        line.value
        for o in read_interchanges(data, datetime(2030, 1, 1, tzinfo=UTC))
        for line in o.lines
    ]
    assert first == again
    assert len(first) == sum(len(c.lines) for c in claims)
    numbers = [(orjson.loads(v)["claim_id"], orjson.loads(v)["line_number"]) for v in first]
    assert numbers == [(c.claim_id, n) for c in claims for n in range(1, len(c.lines) + 1)]
