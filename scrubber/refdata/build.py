"""Build a reference data bundle from the seed documents, the modifier master list and CMS files.

Precedence, field by field: a CMS file (PPRRVU for indicators, NCCI MUE for units) wins over seed
text, because CMS publishes the indicators payers adjudicate with; the seed documents supply what
CMS does not (descriptions, add-on relations, codes absent from the files). Every value keeps its
source, and every seed fact the build refuses or overrides is recorded as a ``Correction``.

Modifiers come from a master list (``master/modifiers.csv``: CPT Appendix A and CMS's HCPCS level
II modifiers), never from the seeds alone: a seed table that lists a modifier that does not exist
is a seed error, and the build excludes it rather than teaching the scrubber a false modifier.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scrubber.refdata.cms import read_mpfs, read_mue
from scrubber.refdata.model import (
    Bundle,
    CodeReference,
    Correction,
    ModifierReference,
    SourceFile,
)
from scrubber.refdata.seeds import SeedDocument, parse_seeds

PACKAGE_DIR = Path(__file__).parent
MASTER_MODIFIERS = PACKAGE_DIR / "master" / "modifiers.csv"
DEFAULT_MPFS = PACKAGE_DIR / "cms" / "PPRRVU2025_Oct-extract.csv"
DEFAULT_MUE = PACKAGE_DIR / "cms" / "MUE-practitioner-2026Q2-extract.csv"

#: Seed indicator names that map one to one onto bundle fields.
_INDICATOR_FIELDS = {
    "status": "status",
    "global_days": "global_days",
    "pctc": "pctc",
    "mult_proc": "mult_proc",
    "bilateral": "bilateral",
    "assistant": "assistant",
    "co_surgeons": "co_surgeons",
    "team_surgery": "team_surgery",
}

#: PPRRVU columns copied onto the bundle (bundle field -> MpfsRow attribute).
_MPFS_FIELDS = (
    "status",
    "global_days",
    "pctc",
    "mult_proc",
    "bilateral",
    "assistant",
    "co_surgeons",
    "team_surgery",
    "endo_base",
)


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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_master_modifiers(path: Path = MASTER_MODIFIERS) -> dict[str, ModifierReference]:
    """The master list of real modifiers, each with the publication it comes from."""
    out: dict[str, ModifierReference] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=2):
            code = row["modifier"].strip()
            out[code] = ModifierReference(
                code=code,
                description=row["description"].strip(),
                sources=(f"{path.name}:{number} ({row['source'].strip()})",),
            )
    return out


def build_bundle(seeds_dir: Path, mpfs: Path | None = None, mue: Path | None = None) -> Bundle:
    """Merge seeds, the master modifier list and (optionally) CMS files into a versioned bundle."""
    documents = parse_seeds(seeds_dir)
    modifiers = read_master_modifiers()
    corrections: list[Correction] = []
    drafts: dict[str, _Draft] = {}
    sources = [
        SourceFile(
            name=MASTER_MODIFIERS.name, kind="modifier-master", sha256=_sha256(MASTER_MODIFIERS)
        )
    ]

    def draft(code: str) -> _Draft:
        return drafts.setdefault(code, _Draft(code))

    for doc in documents:
        sources.append(
            SourceFile(name=doc.name, kind=f"seed:{doc.kind}", sha256=_sha256(seeds_dir / doc.name))
        )
        _merge_seed(doc, draft, modifiers, corrections)

    if mpfs is not None:
        mpfs_file = read_mpfs(mpfs)
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
                seed_value, seed_source = d.values.get(name), d.sources.get(name)
                if seed_value is not None and seed_value != value and seed_source:
                    corrections.append(
                        Correction(
                            source=seed_source,
                            subject=f"{row.code} {name}",
                            action=f"overridden by CMS ({value!r} instead of {seed_value!r})",
                            reason=f"the CMS fee schedule file wins over seed text ({row.source})",
                        )
                    )
                d.put(name, value, row.source)
            if row.description and "description" not in d.values:
                d.put("description", row.description, row.source)

    if mue is not None:
        sources.append(SourceFile(name=mue.name, kind="cms:mue", sha256=_sha256(mue)))
        for mrow in read_mue(mue):
            d = draft(mrow.code)
            seed_value, seed_source = d.values.get("mue_value"), d.sources.get("mue_value")
            if seed_value is not None and seed_value != mrow.value and seed_source:
                corrections.append(
                    Correction(
                        source=seed_source,
                        subject=f"{mrow.code} mue_value",
                        action=f"overridden by CMS ({mrow.value} instead of {seed_value})",
                        reason=f"the NCCI MUE table wins over seed text ({mrow.source})",
                    )
                )
            d.put("mue_value", mrow.value, mrow.source)
            d.put("mue_indicator", mrow.indicator, mrow.source)

    bundle = Bundle(
        sources=tuple(sources),
        codes={code: d.freeze() for code, d in sorted(drafts.items())},
        modifiers=dict(sorted(modifiers.items())),
        corrections=tuple(corrections),
    )
    return bundle.with_version()


def _merge_seed(
    doc: SeedDocument,
    draft: Any,
    modifiers: dict[str, ModifierReference],
    corrections: list[Correction],
) -> None:
    """Take the facts of one seed document that the scrubber can trust."""
    for code in doc.codes:
        if code.is_family:
            continue  # "1430X" names a family, not a billable code
        d = draft(code.code)
        if code.description and "description" not in d.values:
            d.put("description", code.description, code.source)
    for ind in doc.indicators:
        name = _INDICATOR_FIELDS.get(ind.name)
        if ind.for_code is None:
            continue
        if name is not None:
            draft(ind.for_code).put(name, ind.value, ind.source)
        elif ind.name == "mue" and ind.value.isdigit():
            draft(ind.for_code).put("mue_value", int(ind.value), ind.source)
    for addon in doc.add_ons:
        draft(addon.primary).add_ons[addon.add_on] = addon.source
    for mod in doc.modifiers:
        known = modifiers.get(mod.code)
        if known is None:
            corrections.append(
                Correction(
                    source=mod.source,
                    subject=f"modifier {mod.code}",
                    action="excluded",
                    reason="not a CPT (Appendix A) or HCPCS level II modifier",
                )
            )
            continue
        if mod.source not in known.sources:
            modifiers[mod.code] = known.model_copy(update={"sources": (*known.sources, mod.source)})
