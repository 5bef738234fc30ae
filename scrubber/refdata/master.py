"""The master lists: small CSV files of public facts, read and validated (``master/*.csv``).

Each list holds facts taken from one kind of publication, every row naming it in a ``source``
column: real modifiers (CPT Appendix A, CMS's HCPCS level II modifiers) and the code ranges some
apply to, NUCC taxonomy codes and their specialties, ICD-10-CM codes and whether a claim may carry
them, elements of CPT descriptors, and CPT ranges listed completely (``master/README.md``).

This module owns reading them. The lists are the evidence the lint (``scrubber.refdata.lint``)
judges the seeds with and that the build (``scrubber.refdata.build``) takes its modifiers from,
so a row that cannot be trusted stops both with ``MasterListError`` naming file and line: a typo
would otherwise silently switch a check off (or on). A list is deliberately small; a code that is
not on it is *unknown*, never wrong.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scrubber.refdata import vocabulary as vocab
from scrubber.refdata.inputs import MASTER_DIR, MASTER_FILES
from scrubber.standards import CPT_NUMERIC_SHAPE, ICD10CM_SHAPE, MODIFIER_SHAPE, TAXONOMY_SHAPE

__all__ = [
    "MasterDiagnosis",
    "MasterListError",
    "MasterLists",
    "MasterModifier",
    "MasterProcedure",
    "MasterRange",
    "MasterTaxonomy",
    "ModifierScope",
    "icd_key",
    "read_master_lists",
]


class MasterListError(ValueError):
    """A master list row that cannot be trusted; the message is ``"<file>:<line>: ..."``.

    A typo in a master list would silently switch a check off (or on), so rows are validated
    as strictly as the CMS files are.
    """


@dataclass(frozen=True, slots=True)
class MasterModifier:
    """A real CPT or HCPCS level II modifier (``master/modifiers.csv``)."""

    code: str
    kind: str
    description: str
    source: str  # "modifiers.csv:12 (CPT Appendix A)"


@dataclass(frozen=True, slots=True)
class ModifierScope:
    """A code range a modifier applies to (``master/modifier_scope.csv``).

    A modifier may have several ranges, and applies to a code inside any of them.
    """

    modifier: str
    first: int
    last: int
    applies_to: str
    source: str


@dataclass(frozen=True, slots=True)
class MasterTaxonomy:
    """A NUCC taxonomy code and the specialty it stands for (``master/taxonomy.csv``).

    ``also_called`` holds names in common use for the same specialty ("General Surgery" for
    NUCC's "Surgery") so that a seed's specialty column can be matched to it.
    """

    code: str
    grouping: str
    classification: str
    specialization: str
    also_called: tuple[str, ...]
    source: str

    @property
    def display(self) -> str:
        """NUCC's name: the classification, then the specialization when there is one."""
        if self.specialization:
            return f"{self.classification}, {self.specialization}"
        return self.classification

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a seed may use for this code's specialty.

        A specialization's code is rightly called by its classification too: 2086X0206X is
        Surgery, Surgical Oncology.
        """
        return (*self.own_names, self.classification)

    @property
    def own_names(self) -> tuple[str, ...]:
        """The names of exactly this code: its specialization (or classification) and aliases."""
        return (self.specialization or self.classification, *self.also_called)


@dataclass(frozen=True, slots=True)
class MasterDiagnosis:
    """An ICD-10-CM code, its description and whether a claim may carry it (``icd10cm.csv``)."""

    code: str
    description: str
    billable: bool
    note: str
    source: str


@dataclass(frozen=True, slots=True)
class MasterProcedure:
    """The facts of a CPT code a description can be checked against (``cpt_codes.csv``).

    Elements of the descriptor rather than the descriptor itself: the procedure kinds it is
    (terms of ``scrubber.refdata.vocabulary``), the body sites it covers and its size range.
    """

    code: str
    kinds: frozenset[str]
    sites: frozenset[str]
    size: str
    summary: str
    source: str


@dataclass(frozen=True, slots=True)
class MasterRange:
    """A CPT code range whose codes are all listed (``cpt_ranges.csv``).

    A code inside the range that is not listed does not exist.
    """

    first: int
    last: int
    codes: frozenset[str]
    source: str


@dataclass(frozen=True, slots=True)
class MasterLists:
    """Everything in ``master/``, read and validated."""

    modifiers: Mapping[str, MasterModifier]
    modifier_scopes: Mapping[str, tuple[ModifierScope, ...]]
    taxonomies: Mapping[str, MasterTaxonomy]
    diagnoses: Mapping[str, MasterDiagnosis]
    procedures: Mapping[str, MasterProcedure]
    ranges: tuple[MasterRange, ...]
    files: tuple[Path, ...]


def _csv_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[str, int, dict[str, str]]]:
    """``(file:line prefix, line, stripped cells)`` for each row; missing columns fail loudly."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise MasterListError(f"{path.name}:1: missing column(s) {', '.join(missing)}")
        for row in reader:
            cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
            yield f"{path.name}:{reader.line_num}", reader.line_num, cells


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise MasterListError(f"{where}: {message}")


def _read_modifiers(path: Path) -> dict[str, MasterModifier]:
    out: dict[str, MasterModifier] = {}
    for where, _, row in _csv_rows(path, ("modifier", "kind", "description", "source")):
        code = row["modifier"]
        _check(bool(MODIFIER_SHAPE.fullmatch(code)), where, f"{code!r} is not a modifier")
        _check(code not in out, where, f"modifier {code} listed twice")
        _check(bool(row["description"] and row["source"]), where, "description and source needed")
        out[code] = MasterModifier(
            code, row["kind"], row["description"], f"{where}, {row['source']}"
        )
    return out


def _read_scopes(
    path: Path, modifiers: Mapping[str, MasterModifier]
) -> dict[str, tuple[ModifierScope, ...]]:
    out: dict[str, list[ModifierScope]] = defaultdict(list)
    for where, _, row in _csv_rows(
        path, ("modifier", "first_code", "last_code", "applies_to", "source")
    ):
        code, first, last = row["modifier"], row["first_code"], row["last_code"]
        _check(code in modifiers, where, f"{code!r} is not on the modifier master list")
        _check(
            bool(CPT_NUMERIC_SHAPE.fullmatch(first) and CPT_NUMERIC_SHAPE.fullmatch(last))
            and int(first) <= int(last),
            where,
            f"{first!r}-{last!r} is not a range of numeric CPT codes",
        )
        _check(bool(row["source"]), where, "source needed")
        out[code].append(
            ModifierScope(
                code, int(first), int(last), row["applies_to"], f"{where}, {row['source']}"
            )
        )
    return {code: tuple(scopes) for code, scopes in out.items()}


def _read_taxonomies(path: Path) -> dict[str, MasterTaxonomy]:
    out: dict[str, MasterTaxonomy] = {}
    columns = ("code", "grouping", "classification", "specialization", "also_called", "source")
    for where, _, row in _csv_rows(path, columns):
        code = row["code"]
        _check(bool(TAXONOMY_SHAPE.fullmatch(code)), where, f"{code!r} is not a NUCC code")
        _check(code not in out, where, f"taxonomy {code} listed twice")
        _check(bool(row["classification"] and row["source"]), where, "classification and source")
        also = tuple(n.strip() for n in row["also_called"].split(";") if n.strip())
        out[code] = MasterTaxonomy(
            code,
            row["grouping"],
            row["classification"],
            row["specialization"],
            also,
            f"{where}, {row['source']}",
        )
    return out


def icd_key(code: str) -> str:
    """The key a diagnosis is listed under: no dot (X12 carries none), upper case."""
    return code.replace(".", "").upper()


def _read_diagnoses(path: Path) -> dict[str, MasterDiagnosis]:
    out: dict[str, MasterDiagnosis] = {}
    for where, _, row in _csv_rows(path, ("code", "description", "billable", "note", "source")):
        code = row["code"]
        _check(bool(ICD10CM_SHAPE.fullmatch(code)), where, f"{code!r} is not an ICD-10-CM code")
        _check(icd_key(code) not in out, where, f"diagnosis {code} listed twice")
        _check(row["billable"] in {"Y", "N"}, where, "billable must be Y or N")
        _check(
            row["billable"] == "Y" or bool(row["note"]), where, "a non-billable code needs a note"
        )
        _check(bool(row["description"] and row["source"]), where, "description and source needed")
        out[icd_key(code)] = MasterDiagnosis(
            code,
            row["description"],
            row["billable"] == "Y",
            row["note"],
            f"{where}, {row['source']}",
        )
    return out


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def _read_procedures(path: Path) -> dict[str, MasterProcedure]:
    out: dict[str, MasterProcedure] = {}
    for where, _, row in _csv_rows(path, ("code", "kinds", "sites", "size", "summary", "source")):
        code = row["code"]
        _check(bool(CPT_NUMERIC_SHAPE.fullmatch(code)), where, f"{code!r} is not a CPT code")
        _check(code not in out, where, f"CPT code {code} listed twice")
        kinds, sites = _split(row["kinds"]), _split(row["sites"])
        unknown = [k for k in kinds if k not in vocab.PROCEDURE_KINDS] + [
            s for s in sites if s not in vocab.SITE_PARENT
        ]
        _check(not unknown, where, f"not in the lint's vocabulary: {', '.join(unknown)}")
        _check(bool(kinds), where, "at least one procedure kind needed")
        _check(
            not row["size"] or bool(vocab.sizes(row["size"])), where, f"size {row['size']!r} unread"
        )
        _check(bool(row["source"]), where, "source needed")
        out[code] = MasterProcedure(
            code,
            frozenset(kinds),
            frozenset(sites),
            row["size"],
            row["summary"],
            f"{where}, {row['source']}",
        )
    return out


def _read_ranges(path: Path) -> tuple[MasterRange, ...]:
    out: list[MasterRange] = []
    for where, _, row in _csv_rows(path, ("first_code", "last_code", "codes", "source")):
        first, last, codes = row["first_code"], row["last_code"], _split(row["codes"])
        _check(
            bool(CPT_NUMERIC_SHAPE.fullmatch(first) and CPT_NUMERIC_SHAPE.fullmatch(last))
            and int(first) <= int(last),
            where,
            "not a range of numeric CPT codes",
        )
        _check(
            all(
                CPT_NUMERIC_SHAPE.fullmatch(c) and int(first) <= int(c) <= int(last) for c in codes
            ),
            where,
            "a listed code is outside the range",
        )
        out.append(
            MasterRange(int(first), int(last), frozenset(codes), f"{where}, {row['source']}")
        )
    return tuple(out)


def read_master_lists(directory: Path = MASTER_DIR) -> MasterLists:
    """Read and validate every master list in ``directory`` (the package's ``master/``)."""
    modifiers = _read_modifiers(directory / "modifiers.csv")
    return MasterLists(
        modifiers=modifiers,
        modifier_scopes=_read_scopes(directory / "modifier_scope.csv", modifiers),
        taxonomies=_read_taxonomies(directory / "taxonomy.csv"),
        diagnoses=_read_diagnoses(directory / "icd10cm.csv"),
        procedures=_read_procedures(directory / "cpt_codes.csv"),
        ranges=_read_ranges(directory / "cpt_ranges.csv"),
        files=tuple(directory / name for name in MASTER_FILES),
    )
