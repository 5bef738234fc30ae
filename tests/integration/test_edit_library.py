"""The edit library over the real broker and cache: the stream gives the offline scrub's verdicts.

NCCI PTP pairs (column 2 arriving first, across claims, bypass modifiers), diagnosis code sets
by date of service, add-on code edits and payer profiles, in one bundle: a worker on real Kafka
and Redis, fed the lines in a shuffled order, must end with exactly the verdicts the offline
scrub gives on the same records in the same order. Then the payer profiles change by a hot swap
while lines flow: every result names one complete version and the profile that version gives
its payer.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from scrubber.accounting import collect, end_offsets, key_of, publish
from scrubber.contracts import ScrubResult
from scrubber.examples import Mix, generate
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.refdata.aoc import AocRow, AocTable
from scrubber.refdata.build import build_bundle
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.model import Bundle, ReferenceSnapshot
from scrubber.rules.library import default_engine

from .conftest import REPO, assert_complete, load_bundle, wait_progress

pytestmark = pytest.mark.integration

PTP_FILE = """\
CPT only copyright 2025 American Medical Association.  All rights reserved.\t\t\t\t\t\t
Column1/Column2 Edits\t\t\t\t\t\t
Column 1\tColumn 2\t*=in existence\tEffective\tDeletion\tModifier\tPTP Edit Rationale
\t\tprior to 1996\tDate\tDate\t0=not allowed\t
\t\t\t\t*=no data\t1=allowed\t
\t\t\t\t\t9=not applicable\t
13100\t12032\t\t20200101\t*\t1\tStandards of medical / surgical practice
11960\t11970\t\t20200101\t*\t0\tMutually exclusive procedures
14021\t14020\t\t20200101\t20250630\t1\tMore extensive procedure
14021\t14020\t\t20200101\t20200101\t9\tMore extensive procedure
"""

# A small FY2025 code set (in force from 2024-10-01): the generator's diagnoses and a header.
ICD_CODES = [
    ("C44", 0, "Other and unspecified malignant neoplasm of skin"),
    ("C44311", 1, "Basal cell carcinoma of skin of nose"),
    ("L03", 0, "Cellulitis and acute lymphangitis"),
    ("L03115", 1, "Cellulitis of right lower limb"),
    ("M79", 0, "Other and unspecified soft tissue disorders, not elsewhere classified"),
    ("M79604", 1, "Pain in right leg"),
    ("S41", 0, "Open wound of shoulder and upper arm"),
    ("S41011A", 1, "Laceration without foreign body of right shoulder, initial encounter"),
    ("S81", 0, "Open wound of knee and lower leg"),
    ("S81811A", 1, "Laceration without foreign body, right lower leg, initial encounter"),
    ("T81", 0, "Complications of procedures, not elsewhere classified"),
    ("T814XXA", 1, "Infection following a procedure, initial encounter"),
    ("W01", 0, "Fall on same level from slipping, tripping and stumbling"),
    ("W010XXA", 1, "Fall on same level from slipping, tripping and stumbling, initial encounter"),
    ("Z48", 0, "Encounter for other postprocedural aftercare"),
    ("Z48817", 1, "Encounter for surgical aftercare following surgery on the skin"),
]

PROFILES_A = """\
profiles:
  - name: medicare
    payers: ["MCR-*"]
  - name: commercial
    payers: ["AETNA-*"]
    disable: ["ncci_ptp"]
    severity:
      diagnosis: warning
  - name: default
    payers: ["*"]
"""
# The next version: UnitedHealthcare joins a renamed commercial profile that drops Medicare policy.
PROFILES_B = (
    PROFILES_A.replace('disable: ["ncci_ptp"]', 'disable: ["medicare_policy"]')
    .replace("diagnosis: warning", "diagnosis: info")
    .replace("name: commercial", "name: commercial-b")
    .replace('payers: ["AETNA-*"]', 'payers: ["AETNA-*", "UHC-*"]')
)


def _order_file(path: Path) -> Path:
    lines = []
    for n, (code, billable, title) in enumerate(ICD_CODES, start=1):
        lines.append(f"{n:05d} {code:<7} {billable} {title[:60]:<60} {title}")
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return path


def _aoc() -> AocTable:
    row = AocRow(
        edit_type=1,
        add_on="15772",
        add_on_deletion=None,
        primary="15771",
        primary_deletion=None,
        effective=date(2020, 1, 1),
        deletion=None,
        notes="",
        source="aoc.xlsx:2",
    )
    return AocTable.from_rows([row])


def _bundle(tmp_path: Path, profiles: str) -> Bundle:
    ptp = tmp_path / "ccipra-test-f1.TXT"
    ptp.write_text(PTP_FILE.replace("\n", "\r\n"), encoding="latin-1")
    payers = tmp_path / f"payers-{abs(hash(profiles))}.yaml"
    payers.write_text(profiles)
    built = build_bundle(
        REPO / "seeds",
        EXTRACT_MPFS,
        EXTRACT_MUE,
        ptp=[ptp],
        payers=payers,
        icd10cm=[_order_file(tmp_path / "icd10cm-order-2025.txt")],
    )
    return built.model_copy(update={"aoc": _aoc(), "version": ""}).with_version()


def _scenario_lines() -> list[bytes]:
    """Hand-made claims for each edit family, several payers, across claims and days."""
    base: dict[str, Any] = {
        "patient": {"member_id": "EDIT-M1", "birth_date": "1960-01-01", "sex": "F"},
        "rendering_provider": {"npi": "1234567893", "taxonomy": "208200000X"},
        "billing_provider": {"npi": "1245319599", "tax_id": "123456789"},
        "place_of_service": "11",
        "units": 1,
        "charge": "100.00",
        "diagnosis_codes": ["S81.811A"],
    }
    specs: list[dict[str, Any]] = []
    for payer, member in (("MCR-J15", "EDIT-M1"), ("AETNA-60054", "EDIT-M2"), ("ZZ", "EDIT-M3")):
        p = {"payer_id": payer, "patient": {**base["patient"], "member_id": member}}
        day = "2025-03-10"
        specs += [
            # PTP indicator 1 without and with a bypass modifier, on two claims
            {**p, "claim_id": f"{member}-A", "line_number": 1, "procedure_code": "12032",
             "service_date": day},
            {**p, "claim_id": f"{member}-B", "line_number": 1, "procedure_code": "13100",
             "service_date": day},
            {**p, "claim_id": f"{member}-A", "line_number": 2, "procedure_code": "12032",
             "service_date": "2025-03-11", "modifiers": ["59"]},
            {**p, "claim_id": f"{member}-B", "line_number": 2, "procedure_code": "13100",
             "service_date": "2025-03-11"},
            # PTP indicator 0, and a window that closed on 2025-06-30
            {**p, "claim_id": f"{member}-C", "line_number": 1, "procedure_code": "11970",
             "service_date": "2025-04-01", "modifiers": ["59"]},
            {**p, "claim_id": f"{member}-C", "line_number": 2, "procedure_code": "11960",
             "service_date": "2025-04-01"},
            {**p, "claim_id": f"{member}-D", "line_number": 1, "procedure_code": "14020",
             "service_date": "2025-07-01"},
            {**p, "claim_id": f"{member}-D", "line_number": 2, "procedure_code": "14021",
             "service_date": "2025-07-01"},
            # diagnoses: a header, an invalid code, a date before the code set, external cause
            {**p, "claim_id": f"{member}-E", "line_number": 1, "procedure_code": "99213",
             "service_date": "2025-05-01", "diagnosis_codes": ["S81", "E11.9"]},
            {**p, "claim_id": f"{member}-E", "line_number": 2, "procedure_code": "99213",
             "service_date": "2024-09-30", "diagnosis_codes": ["E11.9"]},
            {**p, "claim_id": f"{member}-F", "line_number": 1, "procedure_code": "99212",
             "service_date": "2025-05-02", "diagnosis_codes": ["W01.0XXA", "S81.811A"]},
            # an add-on code edit of type 1, its primary arriving later
            {**p, "claim_id": f"{member}-G", "line_number": 2, "procedure_code": "15772",
             "service_date": "2025-06-01"},
            {**p, "claim_id": f"{member}-G", "line_number": 1, "procedure_code": "15771",
             "service_date": "2025-06-01"},
        ]  # fmt: skip
    return [orjson.dumps({**base, **spec}) for spec in specs]


def _offline(
    bundle: Bundle, records: list[tuple[bytes | None, bytes]], topic: str
) -> dict[str, ScrubResult]:
    snapshot = ReferenceSnapshot(bundle)
    processor, store = LineProcessor(default_engine()), MemoryHistoryStore()
    final: dict[str, ScrubResult] = {}
    for offset, (key, raw) in enumerate(records):
        processed = processor.process(
            raw, key, SourcePosition(topic, 0, offset), snapshot, store, datetime.now(UTC)
        )
        for e in processed.emissions:
            if e.result is not None:
                final[e.result.line_id] = e.result
    return final


def _verdict(doc: dict[str, Any]) -> tuple[Any, ...]:
    return (
        doc["outcome"],
        doc["revision"],
        doc.get("profile"),
        tuple((f["rule_id"], f["severity"]) for f in doc["findings"]),
    )


def test_the_stream_gives_the_offline_verdicts_of_the_edit_library(
    settings, worker, tmp_path
) -> None:
    bundle = _bundle(tmp_path, PROFILES_A)
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()

    lines = _scenario_lines() + generate(bundle, 600, seed=5, mix=Mix(malformed=0))
    random.Random(5).shuffle(lines)
    records: list[tuple[bytes | None, bytes]] = [(key_of(raw), raw) for raw in lines]
    start = asyncio.run(end_offsets(settings, [settings.accepted_topic, settings.flagged_topic]))
    # Keyed by member id, so each patient's lines keep their order on one partition: the
    # offline scrub of the same records in the same order is the oracle.
    positions = asyncio.run(publish(settings, records))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=120))
    assert_complete(ledger, worker)

    expected = _offline(bundle, records, settings.input_topic)
    final = ledger.final()
    assert final.keys() == expected.keys()
    differences = [
        line_id
        for line_id, doc in final.items()
        if _verdict(doc) != _verdict(orjson.loads(expected[line_id].model_dump_json()))
    ]
    assert differences == []

    # The scenarios really exercised each family (else this test proves less than it says).
    rule_ids = {f["rule_id"] for doc in final.values() for f in doc["findings"]}
    assert {
        "ncci_ptp.edit",
        "ncci_ptp.bypassed",
        "diagnosis.header_code",
        "diagnosis.invalid_for_date",
        "diagnosis.no_code_set",
        "diagnosis.external_cause_first",
    } <= rule_ids
    by_id = {doc["line_id"]: doc for doc in final.values()}
    assert by_id["EDIT-M1-A:1"]["outcome"] == "flagged"  # medicare: the PTP edit applies
    assert by_id["EDIT-M2-A:1"]["profile"] == "commercial"
    assert "ncci_ptp.edit" not in {f["rule_id"] for f in by_id["EDIT-M2-A:1"]["findings"]}
    assert by_id["EDIT-M1-G:2"]["revision"] == 2 and by_id["EDIT-M1-G:2"]["outcome"] == "accepted"
    assert worker.stop() == 0


def test_payer_profiles_swap_with_the_reference_data(settings, worker, tmp_path) -> None:
    first = _bundle(tmp_path, PROFILES_A)
    second = _bundle(tmp_path, PROFILES_B)
    assert first.version != second.version
    asyncio.run(load_bundle(settings, first))
    worker.start()
    worker.wait_ready()

    lines = generate(first, 1600, seed=9, mix=Mix(malformed=0))
    records = [(key_of(raw), raw) for raw in lines]
    start = asyncio.run(end_offsets(settings, [settings.accepted_topic, settings.flagged_topic]))
    positions = asyncio.run(publish(settings, records[:800]))
    wait_progress(settings, positions, start, 0.05)  # the first version has judged some
    asyncio.run(load_bundle(settings, second))  # the swap, while the first half is handled
    positions += asyncio.run(publish(settings, records[800:1200]))  # racing the swap
    # The worker polls the version pointer; at its speed the lines above may all be judged
    # before it looks. Lines published after it reports the new version must use it.
    worker.wait_version(second.version)
    positions += asyncio.run(publish(settings, records[1200:]))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=120))
    assert_complete(ledger, worker)

    profiles = {}
    for bundle in (first, second):
        engine, snapshot = default_engine(), ReferenceSnapshot(bundle)
        profiles[bundle.version] = {
            payer: (p.name if (p := engine.profile_for(snapshot, payer)) else None)
            for payer in ("MCR-J15", "AETNA-60054", "UHC-87726")
        }
    seen: set[str] = set()
    for outs in ledger.outputs.values():
        for out in outs:
            doc = orjson.loads(out.value)
            version = doc["refdata_version"]
            assert version in profiles, version  # one complete version per result
            assert doc["profile"] == profiles[version][doc["line"]["payer_id"]]
            seen.add(version)
    assert seen == {first.version, second.version}
    assert worker.stop() == 0


def test_a_damaged_stored_history_never_silences_the_patient(settings, worker, bundle) -> None:
    """A history in the changelog that no longer decodes: set aside, the patient goes on.

    Before, every later line of such a patient became a ``processing_error`` dead letter.
    """
    from scrubber.kafka import history_changelog

    asyncio.run(load_bundle(settings, bundle))
    member = b"M-DAMAGED"
    changelog = settings.model_copy(update={"input_topic": history_changelog(settings)})
    asyncio.run(publish(changelog, [(member, b'H2{"f":2,"m":"M-DAMAGED","e":[[1,2]]}\n')]))
    worker.start()
    worker.wait_ready()

    base = orjson.loads(generate(bundle, 1, seed=3)[0])
    docs = [
        {**base, "claim_id": f"D{i}", "patient": {"member_id": member.decode()},
         "procedure_code": "99213", "service_date": f"2025-0{i + 1}-15"}
        for i in range(3)
    ]  # fmt: skip
    records = [(member, orjson.dumps(doc)) for doc in docs]
    topics = [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]
    start = asyncio.run(end_offsets(settings, topics))
    positions = asyncio.run(publish(settings, records))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=60))
    assert_complete(ledger, worker)
    kinds = [ledger.own(p)[0].kind for p in positions]
    assert "dlq" not in kinds, kinds
    first, *rest = (orjson.loads(ledger.own(p)[0].value) for p in positions)
    assert [f["rule_id"] for f in first["findings"]] == ["history.unreadable"]
    assert all("history.unreadable" not in [f["rule_id"] for f in d["findings"]] for d in rest)
    metrics = httpx.get(worker.base_url + "/metrics", timeout=5).text
    assert "scrubber_histories_set_aside_total 1.0" in metrics
    assert worker.stop() == 0
