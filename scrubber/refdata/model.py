"""Reference data as the engine sees it: one immutable bundle per version.

A bundle is built offline (``scrubber refdata build``) from the seed documents and, where a user has
them, CMS's public files; it is one JSON document whose ``version`` is a hash of its content, so
the same inputs always give the same version and a worker can say exactly which data produced a
verdict. Every value keeps its source (``sources``: field name -> "file:line") so that a billing
office can ask "why does the scrubber think 11960 has a 90-day global period?" and get an answer.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from scrubber.refdata.aoc import AocIndex, AocTable
from scrubber.refdata.icd10cm import Icd10CodeSet, Icd10Index
from scrubber.refdata.payers import PayerProfiles
from scrubber.refdata.ptp import PtpIndex, PtpTable

BUNDLE_FORMAT = "claim-scrubber/refdata-bundle"
BUNDLE_FORMAT_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CodeReference(_Frozen):
    """What the scrubber knows about one procedure code (CPT or HCPCS level II).

    The indicator fields hold the MPFS values as CMS writes them (strings: ``"090"`` and ``"0"``
    are not numbers), ``None`` where no source gives one.
    """

    code: str
    description: str | None = None
    status: str | None = Field(default=None, description="MPFS status code (A, B, C, I, N, ...)")
    global_days: str | None = Field(default=None, description="000, 010, 090, ZZZ, XXX, YYY, MMM")
    pctc: str | None = Field(default=None, description="PC/TC indicator 0-9")
    mult_proc: str | None = Field(default=None, description="multiple procedure indicator (51)")
    bilateral: str | None = Field(default=None, description="bilateral surgery indicator (50)")
    assistant: str | None = Field(default=None, description="assistant at surgery (80, 81, 82, AS)")
    co_surgeons: str | None = Field(default=None, description="co-surgeons indicator (62)")
    team_surgery: str | None = Field(default=None, description="team surgery indicator (66)")
    endo_base: str | None = None
    mue_value: int | None = Field(default=None, description="NCCI medically unlikely edit value")
    mue_indicator: str | None = Field(
        default=None, description="MUE adjudication indicator: 1 line, 2 date (policy), 3 date"
    )
    add_on_codes: tuple[str, ...] = Field(
        default=(), description="add-on codes this code is a primary for"
    )
    sources: dict[str, str] = Field(
        default_factory=dict, description="field name -> where its value came from (file:line)"
    )

    def engine_view(self) -> dict[str, Any]:
        """The facts a result carries as ``reference``: the values, not their provenance."""
        return self.model_dump(exclude={"sources"}, exclude_none=True)


class ModifierReference(_Frozen):
    """A real CPT or HCPCS level II modifier and where it is attested."""

    code: str
    description: str
    sources: tuple[str, ...] = ()


class SourceFile(_Frozen):
    """One input of a build: which file, what kind, its content hash and effective date."""

    name: str
    kind: str
    sha256: str
    effective_date: str | None = None


class Correction(_Frozen):
    """A seed fact the build refused or changed, and why (lint findings that the build acted on)."""

    source: str
    subject: str
    action: str
    reason: str


class Bundle(_Frozen):
    """A complete, versioned set of reference data."""

    format: str = BUNDLE_FORMAT
    format_version: int = BUNDLE_FORMAT_VERSION
    version: str = ""
    sources: tuple[SourceFile, ...] = ()
    codes: dict[str, CodeReference] = Field(default_factory=dict)
    modifiers: dict[str, ModifierReference] = Field(default_factory=dict)
    corrections: tuple[Correction, ...] = ()
    ptp: PtpTable | None = Field(
        default=None, description="NCCI procedure-to-procedure edits (practitioner table)"
    )
    payers: PayerProfiles | None = Field(
        default=None, description="payer profiles: which rules apply to which payer ids"
    )
    icd10cm: tuple[Icd10CodeSet, ...] = Field(
        default=(), description="ICD-10-CM code sets, each in force from its effective date"
    )
    aoc: AocTable | None = Field(default=None, description="CMS NCCI add-on code edits")

    def _absent_sections(self) -> set[str]:
        """Optional sections this bundle does not have.

        They are left out of the content hash, so a bundle built before a section existed keeps
        the version it was stamped with (a worker can still load it, and roll back to it).
        """
        return {name for name in _OPTIONAL_SECTIONS if not getattr(self, name)}

    def content_hash(self) -> str:
        """A hash of everything but the version itself, stable across builds of the same inputs."""
        body = self.model_dump(mode="json", exclude={"version", *self._absent_sections()})
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return digest[:16]

    def with_version(self) -> Bundle:
        """The same bundle, stamped with its content hash as its version."""
        return self.model_copy(update={"version": self.content_hash()})

    def contents(self) -> dict[str, Any]:
        """What the bundle holds beyond codes and modifiers, for ``scrubber refdata status``."""
        return {
            "ptp_edits": self.ptp.count if self.ptp else 0,
            "aoc_rows": len(self.aoc.rows) if self.aoc else 0,
            "payer_profiles": list(self.payers.names()) if self.payers else [],
            "icd10cm": Icd10Index.from_sets(self.icd10cm).describe(),
        }

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, so equal bundles are equal files."""
        body = self.model_dump(mode="json", exclude=self._absent_sections())
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes | str) -> Bundle:
        """Read a bundle and refuse one whose content does not match its version."""
        bundle = cls.model_validate_json(data)
        if bundle.format != BUNDLE_FORMAT:
            raise ValueError(f"not a reference data bundle (format {bundle.format!r})")
        if bundle.format_version != BUNDLE_FORMAT_VERSION:
            raise ValueError(f"unsupported bundle format version {bundle.format_version}")
        expected = bundle.content_hash()
        if bundle.version != expected:
            raise ValueError(
                f"bundle version {bundle.version!r} does not match its content ({expected!r})"
            )
        return bundle


#: Sections a bundle may lack (older bundles, or inputs not given to the build).
_OPTIONAL_SECTIONS = ("ptp", "payers", "icd10cm", "aoc")

_NO_PTP = PtpIndex.from_table(PtpTable.empty())
_NO_AOC = AocIndex.from_table(AocTable.from_rows(()))


class ReferenceSnapshot:
    """The in-memory, read-only view of one bundle that the engine reads on the hot path.

    Built once per version (loading and indexing are the expensive part), then shared by every
    event until a new version replaces it; the engine never sees a half-loaded version because
    a snapshot is only published once it is complete.
    """

    __slots__ = ("aoc", "aoc_add_ons", "bundle", "codes", "icd10", "modifiers", "ptp", "version")

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.codes = bundle.codes
        self.modifiers = bundle.modifiers
        self.ptp = PtpIndex.from_table(bundle.ptp) if bundle.ptp else _NO_PTP
        self.icd10 = Icd10Index.from_sets(bundle.icd10cm)
        self.aoc = AocIndex.from_table(bundle.aoc) if bundle.aoc else _NO_AOC
        #: Every code the AOC file names as an add-on, on any date (asked per line).
        self.aoc_add_ons = self.aoc.add_ons()

    def code(self, code: str) -> CodeReference | None:
        """The reference record for a procedure code, or None when the data does not know it."""
        return self.codes.get(code)

    def is_modifier(self, modifier: str) -> bool:
        """Whether a modifier is on the master list of real modifiers."""
        return modifier in self.modifiers
