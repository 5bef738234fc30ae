"""Build a reference data bundle from the seed documents, the master lists and CMS files.

Precedence, field by field: a CMS file (PPRRVU for indicators, NCCI MUE for units) wins over seed
text, because CMS publishes the indicators payers adjudicate with; the seed documents supply what
CMS does not (descriptions, add-on relations, codes absent from the files). Every value keeps its
source, and every seed fact the build refuses or overrides is recorded as a ``Correction``.

What to refuse is the lint's verdict (``scrubber.refdata.lint``), run on exactly the inputs of
the build, so ``scrubber refdata lint`` shows beforehand what a build will refuse:

* modifiers come from the master list (``master/modifiers.csv``: CPT Appendix A and CMS's HCPCS
  level II modifiers), never from the seeds alone; a seed line that lists a modifier that does not
  exist, describes it as another one, or offers it for a code whose CMS indicators forbid it
  (or outside the codes it applies to) is recorded as refused and is not kept as an attestation
  of the modifier;
* a seed's own code that does not exist, or a description that contradicts the CPT master list,
  is not taken;
* taxonomy codes, diagnoses and related-code rows are not carried by the bundle at all; the bad
  ones are still recorded, so that the bundle says what it refused and why.

The build is deterministic: the same inputs give the same bundle and therefore the same version
(corrections are sorted, sources listed in a fixed order); the master lists are among the inputs,
so a changed list gives a new version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scrubber.contracts import Category
from scrubber.refdata.aoc import AocTable
from scrubber.refdata.cms import read_mpfs, read_mue
from scrubber.refdata.cms_aoc import read_aoc
from scrubber.refdata.cms_icd10cm import read_icd10cm_order
from scrubber.refdata.cms_ptp import read_ptp
from scrubber.refdata.icd10cm import Icd10CodeSet, Icd10Index, sets_needed
from scrubber.refdata.inputs import MASTER_MODIFIERS
from scrubber.refdata.lint import SEED_INDICATOR_FIELDS, LintFinding, LintReference, lint
from scrubber.refdata.master import read_master_lists
from scrubber.refdata.model import (
    Bundle,
    CodeReference,
    Correction,
    ModifierReference,
    SourceFile,
)
from scrubber.refdata.payers_file import load_payer_profiles
from scrubber.refdata.ptp import PtpTable
from scrubber.refdata.seeds import SeedDocument, parse_seeds
from scrubber.revisions import DEFAULT_LATENESS_DAYS
from scrubber.rules.library import default_engine

__all__ = ["build_bundle", "corrections_from_findings", "read_master_modifiers"]

#: PPRRVU columns copied onto the bundle (bundle field = MpfsRow attribute): the indicators the
#: seeds can state too, and ENDO BASE.
_MPFS_FIELDS = (*SEED_INDICATOR_FIELDS.values(), "endo_base")

#: What the build does with the seed fact a lint finding is about: (what it is, the action).
#: Kinds not listed refuse nothing: a documentation warning keeps the fact, and a seed indicator
#: that CMS contradicts is recorded where CMS overrides it.
_ACTIONS: dict[str, tuple[str, str]] = {
    "modifier.not_real": ("modifier", "excluded"),
    "modifier.description_contradicts": ("modifier", "description not used"),
    "modifier.forbidden_by_cms": ("modifier", "not offered for {code}"),
    "modifier.not_applicable": ("modifier", "not offered for {code}"),
    "taxonomy.malformed": ("taxonomy", "excluded"),
    "taxonomy.specialty_contradicts": ("taxonomy", "excluded"),
    "taxonomy.unverified": ("taxonomy", "excluded"),
    "diagnosis.malformed": ("diagnosis", "excluded"),
    "diagnosis.not_billable": ("diagnosis", "excluded"),
    "diagnosis.description_contradicts": ("diagnosis", "excluded"),
    "related_code.not_real": ("related code", "excluded"),
    "related_code.contradicts": ("related code", "excluded"),
    "code.not_real": ("code", "excluded"),
    "code.description_contradicts": ("code", "description not used"),
    "code.family_not_billable": ("code family", "not taken as a code"),
}


@dataclass
class _Draft:
    """A code being assembled: values and their sources, before freezing."""

    code: str
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    add_ons: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: Any, source: str) -> None:
        self.values[name] = value
        self.sources[name] = source

    def freeze(self) -> CodeReference:
        sources = dict(self.sources)
        if self.add_ons:
            sources["add_on_codes"] = "; ".join(sorted(set(self.add_ons.values())))
        return CodeReference(
            code=self.code,
            add_on_codes=tuple(sorted(self.add_ons)),
            sources=sources,
            **self.values,
        )


def _cms_wins(
    d: _Draft,
    name: str,
    value: Any,
    source: str,
    corrections: list[Correction],
    table: str,
    shown: Callable[[Any], str],
) -> None:
    """Put a CMS value on the draft; a seed value it contradicts is recorded as overridden."""
    seed_value, seed_source = d.values.get(name), d.sources.get(name)
    if seed_value is not None and seed_value != value and seed_source:
        corrections.append(
            Correction(
                source=seed_source,
                subject=f"{d.code} {name}",
                action=f"overridden by CMS ({shown(value)} instead of {shown(seed_value)})",
                reason=f"{table} wins over seed text ({source})",
            )
        )
    d.put(name, value, source)


@dataclass(frozen=True, slots=True)
class _Refused:
    """The lint's verdict in the shape the merge needs."""

    bad_lines: frozenset[str]  # seed lines with an error: not kept as attestations
    not_real: frozenset[str]  # codes that do not exist
    bad_descriptions: frozenset[str]  # lines whose code description is not taken

    @classmethod
    def of(cls, findings: Iterable[LintFinding]) -> _Refused:
        findings = list(findings)
        return cls(
            bad_lines=frozenset(f.source for f in findings if f.severity == "error"),
            not_real=frozenset(
                f.subject for f in findings if f.kind in {"code.not_real", "related_code.not_real"}
            ),
            bad_descriptions=frozenset(
                f.source for f in findings if f.kind == "code.description_contradicts"
            ),
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _text_sha256(code_set: Icd10CodeSet) -> str:
    """The hash of a code set given as data rather than as a file (the shipped default)."""
    return hashlib.sha256(code_set.model_dump_json().encode()).hexdigest()


def read_master_modifiers(path: Path = MASTER_MODIFIERS) -> dict[str, ModifierReference]:
    """The master list of real modifiers, each with the publication it comes from."""
    master = read_master_lists(path.parent)
    return {
        code: ModifierReference(
            code=code,
            description=m.description,
            sources=(_publication(m.source),),
        )
        for code, m in master.modifiers.items()
    }


def _publication(source: str) -> str:
    """``"modifiers.csv:12 (CPT Appendix A)"`` from a master list's ``"modifiers.csv:12, CPT"``."""
    where, _, publication = source.partition(", ")
    return f"{where} ({publication})"


def _source_key(source: str) -> tuple[str, int]:
    name, _, line = source.rpartition(":")
    return (name, int(line)) if name and line.isdigit() else (source, 0)


def corrections_from_findings(
    documents: Sequence[SeedDocument], findings: Iterable[LintFinding]
) -> list[Correction]:
    """The corrections a build records for lint findings: each refused seed fact and why.

    A code family is recorded where a document offers it as a code (a candidate-table row), not
    where its prose merely names it: the build only ever reads the former.
    """
    modifier_codes = {m.source: m.for_code for d in documents for m in d.modifiers}
    family_rows = {c.source for d in documents for c in d.codes if c.is_family}
    out: list[Correction] = []
    for finding in findings:
        action = _ACTIONS.get(finding.kind)
        if action is None:
            continue
        if finding.kind == "code.family_not_billable" and finding.source not in family_rows:
            continue
        what, verb = action
        out.append(
            Correction(
                source=finding.source,
                subject=f"{what} {finding.subject}",
                action=verb.format(code=modifier_codes.get(finding.source) or "its code"),
                reason=finding.message,
            )
        )
    return out


def build_bundle(
    seeds_dir: Path,
    mpfs: Path | None = None,
    mue: Path | None = None,
    ptp: Sequence[Path] = (),
    payers: Path | None = None,
    icd10cm: Sequence[Path | Icd10CodeSet] = (),
    aoc: Path | None = None,
    lateness_days: int = DEFAULT_LATENESS_DAYS,
) -> Bundle:
    """Merge seeds, the master lists and (optionally) CMS files into a versioned bundle.

    ``ptp`` are the parts of the NCCI practitioner PTP table (CMS ships four), each a TXT, a zip
    holding it, or a gzip of it; every row of every part is kept. A bad row stops the build.
    ``payers`` is a payer profile file, validated against the product's rules (an unknown rule
    id, category or severity stops the build with file:line). ``icd10cm`` are ICD-10-CM code
    sets (CMS order files, or sets already read such as the shipped default); the bundle keeps
    the ones a line up to ``lateness_days`` behind the newest set's start can need, judged from
    the sets themselves, never from the clock, so the same inputs give the same version.
    ``aoc`` is CMS's add-on code edit workbook.
    """
    documents = parse_seeds(seeds_dir)
    master = read_master_lists()
    modifiers = read_master_modifiers()
    mpfs_file = read_mpfs(mpfs) if mpfs is not None else None
    mue_rows = read_mue(mue) if mue is not None else ()
    reference = LintReference.from_rows(master, mpfs_file.rows if mpfs_file else (), mue_rows)
    findings = lint(documents, reference)
    refused = _Refused.of(findings)

    corrections = corrections_from_findings(documents, findings)
    drafts: dict[str, _Draft] = {}
    sources = [
        SourceFile(
            name=path.name,
            kind="modifier-master" if path == MASTER_MODIFIERS else f"master:{path.stem}",
            sha256=_sha256(path),
        )
        for path in master.files
    ]

    def draft(code: str) -> _Draft:
        return drafts.setdefault(code, _Draft(code))

    for doc in documents:
        sources.append(
            SourceFile(name=doc.name, kind=f"seed:{doc.kind}", sha256=_sha256(seeds_dir / doc.name))
        )
        _merge_seed(doc, draft, modifiers, refused)

    if mpfs is not None and mpfs_file is not None:
        sources.append(
            SourceFile(
                name=mpfs.name,
                kind="cms:pprrvu",
                sha256=_sha256(mpfs),
                effective_date=mpfs_file.released,
            )
        )
        for row in mpfs_file.rows:
            if row.modifier:  # 26/TC/53 rows price components; the global row holds indicators
                continue
            d = draft(row.code)
            for name in _MPFS_FIELDS:
                value = getattr(row, name)
                if not value:  # a blank cell (ENDO BASE outside endoscopy families) says nothing
                    continue
                _cms_wins(
                    d, name, value, row.source, corrections, "the CMS fee schedule file", repr
                )
            if row.description and "description" not in d.values:
                d.put("description", row.description, row.source)

    if mue is not None:
        sources.append(SourceFile(name=mue.name, kind="cms:mue", sha256=_sha256(mue)))
        for mrow in mue_rows:
            d = draft(mrow.code)
            _cms_wins(
                d, "mue_value", mrow.value, mrow.source, corrections, "the NCCI MUE table", str
            )
            d.put("mue_indicator", mrow.indicator, mrow.source)

    ptp_table = None
    if ptp:
        rows = [row for path in ptp for row in read_ptp(path)]
        ptp_table = PtpTable.from_rows(rows)
        for path in ptp:
            sources.append(SourceFile(name=path.name, kind="cms:ncci-ptp", sha256=_sha256(path)))

    code_sets = []
    for item in icd10cm:
        if isinstance(item, Path):
            code_set = read_icd10cm_order(item)
            sources.append(SourceFile(name=item.name, kind="cms:icd10cm", sha256=_sha256(item)))
        else:
            code_set = item
            sources.append(
                SourceFile(name=code_set.name, kind="icd10cm", sha256=_text_sha256(code_set))
            )
        code_sets.append(code_set)
    kept: tuple[Icd10CodeSet, ...] = ()
    if code_sets:
        newest = max(s.effective_from for s in code_sets)
        kept = sets_needed(code_sets, newest, lateness_days)
        Icd10Index.from_sets(kept)  # two sets starting the same day are refused here

    aoc_table = None
    if aoc is not None:
        aoc_table = AocTable.from_rows(read_aoc(aoc))
        sources.append(SourceFile(name=aoc.name, kind="cms:aoc", sha256=_sha256(aoc)))

    profiles = None
    if payers is not None:
        engine = default_engine()
        specs = engine.rule_specs()
        profiles = load_payer_profiles(
            payers,
            rule_ids=[rule_id for rule_id, _, _ in specs],
            categories=[c.value for c in Category],
            groups=engine.groups(),
            rule_categories={rule_id: category for rule_id, category, _ in specs},
        )
        sources.append(SourceFile(name=payers.name, kind="payers", sha256=_sha256(payers)))

    corrections.sort(key=lambda c: (*_source_key(c.source), c.subject, c.action, c.reason))
    bundle = Bundle(
        sources=tuple(sources),
        codes={code: d.freeze() for code, d in sorted(drafts.items())},
        modifiers=dict(sorted(modifiers.items())),
        corrections=tuple(corrections),
        ptp=ptp_table,
        payers=profiles,
        icd10cm=kept,
        aoc=aoc_table,
    )
    return bundle.with_version()


def _merge_seed(
    doc: SeedDocument,
    draft: Callable[[str], _Draft],
    modifiers: dict[str, ModifierReference],
    refused: _Refused,
) -> None:
    """Take the facts of one seed document that the lint found nothing wrong with."""
    for code in doc.codes:
        if code.is_family or code.code in refused.not_real:
            continue  # "1430X" names a family, not a billable code
        d = draft(code.code)
        if (
            code.description
            and "description" not in d.values
            and code.source not in refused.bad_descriptions
        ):
            d.put("description", code.description, code.source)
    for ind in doc.indicators:
        name = SEED_INDICATOR_FIELDS.get(ind.name)
        if ind.for_code is None:
            continue
        if name is not None:
            draft(ind.for_code).put(name, ind.value, ind.source)
        elif ind.name == "mue" and ind.value.isdigit():
            draft(ind.for_code).put("mue_value", int(ind.value), ind.source)
    for addon in doc.add_ons:
        if addon.add_on not in refused.not_real:
            draft(addon.primary).add_ons[addon.add_on] = addon.source
    for mod in doc.modifiers:
        known = modifiers.get(mod.code)
        if known is None or mod.source in refused.bad_lines:
            continue  # refused: the correction is recorded from the lint finding
        if mod.source not in known.sources:
            modifiers[mod.code] = known.model_copy(update={"sources": (*known.sources, mod.source)})
