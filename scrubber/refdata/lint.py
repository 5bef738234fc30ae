"""The reference-data lint: what the seed documents say that the master lists or CMS contradict.

The seed documents are web pages written by people and generators; they state modifiers that do
not exist, offer modifiers the fee schedule forbids for the code, give taxonomy codes of other
specialties and describe codes as other codes. The parser keeps all of it exactly as written
(``scrubber.refdata.seeds``); this module judges it, and the build (``scrubber.refdata.build``)
refuses what it finds and records why.

Every finding is backed by something that ships with the package, never by memory:

* the master lists in ``master/`` -- small CSV files of facts taken from public publications, each
  row naming its publication in a ``source`` column (CPT Appendix A and CMS's HCPCS level II
  modifiers, the NUCC Health Care Provider Taxonomy code set, CMS's ICD-10-CM code descriptions,
  the AMA CPT code set). They are deliberately small: a code that is not on a list is *unknown*,
  and an unknown code is never reported as wrong, only, where it helps, as unverified;
* the CMS files (PPRRVU indicators, NCCI MUE values), the same files the build takes.

No value of any seed is written into this module. It owns the findings and the judgement: which
modifiers an MPFS indicator value refuses, what counts as a contradiction, and each finding's kind,
severity and message. The evidence comes from elsewhere: the master lists are read by
``scrubber.refdata.master``, the words a free-text description is compared by are
``scrubber.refdata.vocabulary``, and the CMS files are read by ``scrubber.refdata.cms``.

Severities: ``error`` where a master list or a CMS file says the seed is wrong; ``warning`` where
the evidence is weaker (ICD-10-CM facts beyond the code's shape, a taxonomy code missing from the
small master list, two documents that disagree with no master entry to settle it); ``info`` for
what is not wrong but is not a billable fact either (a code family such as ``1430X``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scrubber.refdata import vocabulary as vocab
from scrubber.refdata.cms import MpfsRow, MueRow, read_mpfs, read_mue
from scrubber.refdata.inputs import DEFAULT_MPFS, DEFAULT_MUE, MASTER_DIR
from scrubber.refdata.master import (
    MasterLists,
    MasterModifier,
    MasterProcedure,
    icd_key,
    read_master_lists,
)
from scrubber.refdata.seeds import (
    SeedDiagnosis,
    SeedDocument,
    SeedModifier,
    SeedTaxonomy,
    parse_seeds,
)
from scrubber.standards import (
    ADD_ON_GLOBAL_DAYS,
    ASSISTANT_DOCUMENTATION,
    ASSISTANT_MEANINGS,
    ASSISTANT_MODIFIERS,
    ASSISTANT_NOT_PAID,
    BILATERAL_VALUES,
    CPT_NUMERIC_SHAPE,
    GLOBAL_DAYS_VALUES,
    GLOBAL_SPLIT_MODIFIERS,
    ICD10CM_SHAPE,
    MPFS_COLUMNS,
    PCTC_ALLOWED,
    PCTC_VALUES,
    SPLIT_GLOBAL_DAYS,
    SURGEONS_DOCUMENTATION,
    SURGEONS_NOT_PERMITTED,
    TAXONOMY_SHAPE,
)

__all__ = [
    "SEED_INDICATOR_FIELDS",
    "LintFinding",
    "LintReference",
    "Severity",
    "exit_status",
    "lint",
    "load_reference",
    "render_text",
    "run_lint",
]

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class LintFinding:
    """One thing a seed document states that the reference data contradicts.

    ``kind`` is a stable short id (``modifier.not_real``, ``taxonomy.specialty_contradicts``,
    ...) that tests, the build and people can key on; ``source`` is the seed's ``file:line``;
    ``subject`` the code the finding is about as the seed writes it; ``message`` says why and
    names the master list row or CMS record that backs it.
    """

    severity: Severity
    kind: str
    source: str
    subject: str
    message: str


# ----------------------------------------------------------------------------- reference


@dataclass(frozen=True, slots=True)
class LintReference:
    """What the lint judges the seeds against: the master lists and the CMS records by code.

    ``mpfs`` holds the global rows only (no modifier): the indicators live there, while the
    26/TC/53 rows price components.
    """

    master: MasterLists
    mpfs: Mapping[str, MpfsRow]
    mue: Mapping[str, MueRow]

    @classmethod
    def from_rows(
        cls, master: MasterLists, mpfs_rows: Iterable[MpfsRow], mue_rows: Iterable[MueRow]
    ) -> LintReference:
        """A reference from rows already read (the build reads the CMS files once for both)."""
        return cls(
            master=master,
            mpfs={row.code: row for row in mpfs_rows if not row.modifier},
            mue={row.code: row for row in mue_rows},
        )


def load_reference(
    mpfs: Path | None = None, mue: Path | None = None, master_dir: Path = MASTER_DIR
) -> LintReference:
    """Read the master lists and the CMS files; ``None`` means the shipped CMS extract.

    The same default as ``scrubber refdata build``: the lint judges the seeds against the data
    the build would merge them with.
    """
    mpfs_file = read_mpfs(DEFAULT_MPFS if mpfs is None else mpfs)
    mue_rows = read_mue(DEFAULT_MUE if mue is None else mue)
    return LintReference.from_rows(read_master_lists(master_dir), mpfs_file.rows, mue_rows)


def run_lint(seeds_dir: Path, mpfs: Path | None, mue: Path | None) -> list[LintFinding]:
    """Parse the seeds in ``seeds_dir`` and lint them: all ``scrubber refdata lint`` needs."""
    return lint(parse_seeds(seeds_dir), load_reference(mpfs, mue))


def exit_status(findings: Sequence[LintFinding], *, strict: bool) -> int:
    """The CLI's exit status: 1 under ``--strict`` when any finding is an error, else 0.

    Warnings and info never fail a run: they are facts the master lists cannot settle.
    """
    return 1 if strict and any(f.severity == "error" for f in findings) else 0


# ------------------------------------------------------------------------------------ lint


def lint(documents: Sequence[SeedDocument], reference: LintReference) -> list[LintFinding]:
    """Every finding about ``documents``, sorted by source (file, then line number)."""
    findings = list(_Linter(documents, reference).run())
    return sorted(findings, key=_finding_key)


def _source_key(source: str) -> tuple[str, int]:
    name, _, line = source.rpartition(":")
    return (name, int(line)) if name and line.isdigit() else (source, 0)


def _finding_key(finding: LintFinding) -> tuple[str, int, str, str, str]:
    name, line = _source_key(finding.source)
    return (name, line, finding.kind, finding.subject, finding.message)


def render_text(findings: Sequence[LintFinding]) -> str:
    """The findings as text, one per line, then a count by severity (what the CLI prints)."""
    lines = [
        f"{f.source}: {f.severity} {f.kind} {f.subject}: {f.message}"
        for f in sorted(findings, key=_finding_key)
    ]
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
    lines.append(
        f"{len(findings)} finding(s): {counts['error']} error(s), {counts['warning']} warning(s), "
        f"{counts['info']} info"
    )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- modifier indicator rules


@dataclass(frozen=True, slots=True)
class _IndicatorRule:
    """Which values of an MPFS indicator forbid (or need documentation for) some modifiers.

    The values are the standard's (``scrubber.standards``), each with the reason a finding gives;
    a value outside both (or no value at all) says nothing, so a finding is never built on
    missing data.
    """

    modifiers: frozenset[str]
    field: str
    forbidden: Mapping[str, str]
    documentation: Mapping[str, str]
    cite: str

    @property
    def column(self) -> str:
        """The indicator's PPRRVU column, as findings name it."""
        return MPFS_COLUMNS[self.field]


def _each(values: Iterable[str], reason: str | Mapping[str, str]) -> dict[str, str]:
    """Each value with its reason: one for all, or each its own (the lint's wording of it)."""
    return {v: reason if isinstance(reason, str) else reason[v] for v in sorted(values)}


_RVU = "RVU25D layout"
_INDICATOR_RULES: tuple[_IndicatorRule, ...] = (
    _IndicatorRule(
        frozenset({"50"}),
        "bilateral",
        _each(
            BILATERAL_VALUES - {"1"},
            {
                "0": "150% bilateral adjustment does not apply",
                "2": "the code is already bilateral",
                "3": "each side is paid at 100% (diagnostic services)",
                "9": "the bilateral concept does not apply",
            },
        ),
        {},
        f"{_RVU}; CMS Claims Processing Manual ch. 12 §40.7: modifier 50 only with indicator 1",
    ),
    _IndicatorRule(
        frozenset(ASSISTANT_MODIFIERS),
        "assistant",
        _each(ASSISTANT_NOT_PAID, ASSISTANT_MEANINGS),
        {
            ASSISTANT_DOCUMENTATION: "an assistant at surgery is paid only with documentation "
            "of medical necessity"
        },
        _RVU,
    ),
    _IndicatorRule(
        frozenset({"62"}),
        "co_surgeons",
        _each(
            SURGEONS_NOT_PERMITTED,
            {"0": "co-surgeons not permitted", "9": "the co-surgeons concept does not apply"},
        ),
        {
            SURGEONS_DOCUMENTATION: "co-surgeons are paid only with documentation of "
            "medical necessity"
        },
        _RVU,
    ),
    _IndicatorRule(
        frozenset({"66"}),
        "team_surgery",
        _each(
            SURGEONS_NOT_PERMITTED,
            {"0": "team surgeons not permitted", "9": "the team surgery concept does not apply"},
        ),
        {SURGEONS_DOCUMENTATION: "a team is paid only with documentation of medical necessity"},
        _RVU,
    ),
    _IndicatorRule(
        frozenset({"26"}),
        "pctc",
        _each(
            (v for v in PCTC_VALUES if "26" not in PCTC_ALLOWED[v]),
            "modifier 26 cannot be used with this PC/TC indicator",
        ),
        {},
        f"{_RVU}, Attachment A",
    ),
    _IndicatorRule(
        frozenset({"TC"}),
        "pctc",
        _each(
            (v for v in PCTC_VALUES if "TC" not in PCTC_ALLOWED[v]),
            "modifier TC cannot be used with this PC/TC indicator",
        ),
        {},
        f"{_RVU}, Attachment A",
    ),
    _IndicatorRule(
        frozenset(GLOBAL_SPLIT_MODIFIERS),
        "global_days",
        _each(
            GLOBAL_DAYS_VALUES - SPLIT_GLOBAL_DAYS,
            "split global care applies to 010 and 090 codes only",
        ),
        {},
        f"{_RVU}; CMS Claims Processing Manual ch. 12 §40.2",
    ),
    _IndicatorRule(
        frozenset({"51"}),
        "global_days",
        {ADD_ON_GLOBAL_DAYS: "an add-on code is never reported with modifier 51"},
        {},
        f"{_RVU}; CPT Appendix A (modifier 51)",
    ),
)

#: Seed indicator names that are MPFS columns, and the bundle fields (``MpfsRow`` attributes)
#: they map onto; the build merges the same ones.
SEED_INDICATOR_FIELDS = {
    "status": "status",
    "global_days": "global_days",
    "pctc": "pctc",
    "mult_proc": "mult_proc",
    "bilateral": "bilateral",
    "assistant": "assistant",
    "co_surgeons": "co_surgeons",
    "team_surgery": "team_surgery",
}


# ------------------------------------------------------------------------------- the checks


@dataclass(frozen=True, slots=True)
class _Description:
    """One place the seeds describe a procedure code: a document's own code or a related row."""

    code: str
    text: str
    source: str
    related: bool


class _Linter:
    """One lint run: the documents, the reference and the indexes built from them."""

    def __init__(self, documents: Sequence[SeedDocument], reference: LintReference) -> None:
        self.documents = documents
        self.ref = reference
        self.master = reference.master
        # The seeds' own indicator statements, first statement per (code, field) wins.
        self.seed_indicators: dict[tuple[str, str], tuple[str, str]] = {}
        for doc in documents:
            for ind in doc.indicators:
                name = SEED_INDICATOR_FIELDS.get(ind.name)
                if name is not None and ind.for_code is not None:
                    self.seed_indicators.setdefault((ind.for_code, name), (ind.value, ind.source))
        self.modifier_words = {
            code: vocab.words(m.description) for code, m in self.master.modifiers.items()
        }

    def run(self) -> Iterator[LintFinding]:
        for doc in self.documents:
            for mod in doc.modifiers:
                yield from self._modifier(mod)
            for tax in doc.taxonomies:
                yield from self._taxonomy(tax)
            for dx in doc.diagnoses:
                yield from self._diagnosis(dx)
            for code in doc.codes:
                if code.is_family:
                    yield self._family(code.code, code.source, "a candidate-table row")
            for mention in doc.mentions:
                if mention.is_family:
                    yield self._family(mention.code, mention.source, "the page's text")
        yield from self._codes_not_real()
        yield from self._descriptions()
        yield from self._indicators()

    # -- modifiers ---------------------------------------------------------------------------

    def _modifier(self, mod: SeedModifier) -> Iterator[LintFinding]:
        known = self.master.modifiers.get(mod.code)
        head = mod.description.split(": ", 1)[0]
        stated = vocab.words(head)
        if known is None:
            yield LintFinding(
                "error",
                "modifier.not_real",
                mod.source,
                mod.code,
                f"{mod.code} is not a CPT (Appendix A) or HCPCS level II modifier: it is not on "
                "the master list (modifiers.csv)",
            )
            other = self._best_other_modifier(stated, exclude=None)
            if other is not None:
                yield LintFinding(
                    "error",
                    "modifier.description_contradicts",
                    mod.source,
                    mod.code,
                    f"the description {head!r} is modifier {other.code}'s meaning "
                    f"({other.description!r}, {other.source})",
                )
            return
        own, _ = vocab.coverage(stated, self.modifier_words[mod.code])
        if own < 0.5:
            other = self._best_other_modifier(stated, exclude=mod.code)
            if other is not None:
                yield LintFinding(
                    "error",
                    "modifier.description_contradicts",
                    mod.source,
                    mod.code,
                    f"{mod.code} is {known.description!r} ({known.source}); the description "
                    f"{head!r} is modifier {other.code}'s meaning ({other.description!r})",
                )
        if mod.for_code is not None:
            yield from self._modifier_scope(mod, mod.for_code)
            yield from self._modifier_indicators(mod, mod.for_code)

    def _best_other_modifier(
        self, stated: frozenset[str], exclude: str | None
    ) -> MasterModifier | None:
        """The master modifier a description clearly is (3/4 of its words, 2 or more shared)."""
        best: tuple[float, int, str] | None = None
        for code, words in self.modifier_words.items():
            if code == exclude:
                continue
            share, shared = vocab.coverage(stated, words)
            if share >= 0.75 and shared >= 2 and (best is None or (share, shared) > best[:2]):
                best = (share, shared, code)
        return None if best is None else self.master.modifiers[best[2]]

    def _modifier_scope(self, mod: SeedModifier, code: str) -> Iterator[LintFinding]:
        scopes = self.master.modifier_scopes.get(mod.code)
        # Ranges are of numeric CPT codes; a level II HCPCS code is not judged by them.
        if not scopes or not CPT_NUMERIC_SHAPE.fullmatch(code):
            return
        if any(s.first <= int(code) <= s.last for s in scopes):
            return
        where = "; ".join(f"{s.first:05d}-{s.last:05d} ({s.applies_to})" for s in scopes)
        yield LintFinding(
            "error",
            "modifier.not_applicable",
            mod.source,
            mod.code,
            f"{mod.code} is offered for {code}, but it applies only to {where} "
            f"({'; '.join(s.source for s in scopes)})",
        )

    def _indicator_value(self, code: str, field: str) -> tuple[str, str, str] | None:
        """``(value, where, who)`` of an indicator: the CMS file's, else the seeds' own."""
        row = self.ref.mpfs.get(code)
        if row is not None:
            value = getattr(row, field)
            if isinstance(value, str) and value:
                return value, row.source, "CMS"
        seed = self.seed_indicators.get((code, field))
        if seed is not None:
            return seed[0], seed[1], "the seed's"
        return None

    def _modifier_indicators(self, mod: SeedModifier, code: str) -> Iterator[LintFinding]:
        for rule in _INDICATOR_RULES:
            if mod.code not in rule.modifiers:
                continue
            found = self._indicator_value(code, rule.field)
            if found is None:
                continue
            value, where, who = found
            also = ""
            seed = self.seed_indicators.get((code, rule.field))
            if (
                who == "CMS"
                and seed is not None
                and _source_key(seed[1])[0] == _source_key(mod.source)[0]
            ):
                also = f"; the document itself says {seed[0]} at {seed[1]}"
            if value in rule.forbidden:
                yield LintFinding(
                    "error",
                    "modifier.forbidden_by_cms",
                    mod.source,
                    mod.code,
                    f"{mod.code} is offered for {code}, but {who} {rule.column} indicator {value} "
                    f"forbids it: {rule.forbidden[value]} ({where}; {rule.cite}){also}",
                )
            elif value in rule.documentation:
                yield LintFinding(
                    "warning",
                    "modifier.needs_documentation",
                    mod.source,
                    mod.code,
                    f"{mod.code} is offered for {code} without a condition, but {who} "
                    f"{rule.column} indicator {value} means {rule.documentation[value]} "
                    f"({where}; {rule.cite})",
                )

    # -- taxonomies --------------------------------------------------------------------------

    def _taxonomy(self, tax: SeedTaxonomy) -> Iterator[LintFinding]:
        if not TAXONOMY_SHAPE.fullmatch(tax.code):
            yield LintFinding(
                "error",
                "taxonomy.malformed",
                tax.source,
                tax.code,
                f"{tax.code!r} is not a NUCC taxonomy code (10 characters: 3 digits, "
                "6 letters or digits, then X)",
            )
            return
        stated = vocab.words(tax.specialty)
        entries = self.master.taxonomies.values()
        # The codes of exactly that specialty; failing that, of the classification it names.
        named = [t for t in entries if vocab.same_name(t.own_names, stated)] or [
            t for t in entries if vocab.same_name(t.names, stated)
        ]
        codes = ", ".join(sorted(t.code for t in named))
        listed = f"the list's code(s) for {tax.specialty}: {codes}"
        known = self.master.taxonomies.get(tax.code)
        if known is not None:
            if vocab.same_name(known.names, stated):
                return
            yield LintFinding(
                "error",
                "taxonomy.specialty_contradicts",
                tax.source,
                tax.code,
                f"{tax.code} is {known.display} ({known.grouping}), not {tax.specialty} "
                f"({known.source})" + (f"; {listed}" if named else ""),
            )
        elif named:
            yield LintFinding(
                "warning",
                "taxonomy.unverified",
                tax.source,
                tax.code,
                f"{tax.code} is not on the master taxonomy list (taxonomy.csv, a subset of the "
                f"NUCC code set), so it cannot be confirmed as {tax.specialty}; {listed}",
            )

    # -- diagnoses ---------------------------------------------------------------------------

    def _diagnosis(self, dx: SeedDiagnosis) -> Iterator[LintFinding]:
        if not ICD10CM_SHAPE.fullmatch(dx.code):
            yield LintFinding(
                "error",
                "diagnosis.malformed",
                dx.source,
                dx.code,
                f"{dx.code!r} is not an ICD-10-CM code (a letter, a digit, then 1-5 letters or "
                "digits; an optional dot after the third character)",
            )
            return
        known = self.master.diagnoses.get(icd_key(dx.code))
        if known is None:
            return
        if not known.billable:
            yield LintFinding(
                "warning",
                "diagnosis.not_billable",
                dx.source,
                dx.code,
                f"{dx.code} ({known.description}) cannot be reported on a claim: {known.note} "
                f"({known.source})",
            )
            return
        differences = _diagnosis_differences(dx.description, known.description)
        if differences:
            yield LintFinding(
                "warning",
                "diagnosis.description_contradicts",
                dx.source,
                dx.code,
                f"{dx.code} is {known.description!r} ({known.source}); the seed's "
                f"{dx.description!r} differs in {'; '.join(differences)}",
            )

    # -- code families and codes that do not exist -------------------------------------------

    def _family(self, family: str, source: str, where: str) -> LintFinding:
        stem = family.rstrip("X")
        members = sorted(
            c for c in self.ref.mpfs if len(c) == len(family) and c.startswith(stem) and c.isdigit()
        )
        listed = f" (the CMS file has {', '.join(members)})" if members else ""
        return LintFinding(
            "info",
            "code.family_not_billable",
            source,
            family,
            f"{family} in {where} names a code family{listed}, not a billable code",
        )

    def _codes_not_real(self) -> Iterator[LintFinding]:
        """Codes inside a fully listed CPT range that the range does not list."""
        for doc in self.documents:
            named: list[tuple[str, str, bool]] = [
                (c.code, c.code_source or c.source, False) for c in doc.codes if not c.is_family
            ]
            named += [(r.code, r.source, True) for r in doc.related_codes]
            named += [(a.add_on, a.source, False) for a in doc.add_ons]
            named += [(m.code, m.source, False) for m in doc.mentions if not m.is_family]
            for code, source, related in named:
                if not CPT_NUMERIC_SHAPE.fullmatch(code):
                    continue
                for rng in self.master.ranges:
                    if rng.first <= int(code) <= rng.last and code not in rng.codes:
                        hint = self._closest_procedure(doc, code, source)
                        yield LintFinding(
                            "error",
                            "related_code.not_real" if related else "code.not_real",
                            source,
                            code,
                            f"{code} is not a CPT code: the range {rng.first:05d}-{rng.last:05d} "
                            f"holds only {', '.join(sorted(rng.codes))} ({rng.source}){hint}",
                        )

    def _closest_procedure(self, doc: SeedDocument, code: str, source: str) -> str:
        """A master entry whose kind and sites fit what the seed says the missing code is."""
        text = next(
            (r.description for r in doc.related_codes if r.code == code and r.source == source),
            None,
        )
        if text is None:
            return ""
        kinds = vocab.procedure_kinds(text)
        sites = vocab.sites(text)
        if not kinds or not sites:
            return ""
        fits = sorted(
            p.code
            for p in self.master.procedures.values()
            if kinds <= p.kinds
            and p.sites
            and not vocab.incompatible(sites, p.sites, vocab.SITE_PARENT)
        )
        if not fits:
            return ""
        described = ", ".join([*sorted(kinds), *sorted(sites)])
        return f"; what the seed describes ({described}) is {', '.join(fits)}"

    # -- descriptions of procedure codes -----------------------------------------------------

    def _descriptions(self) -> Iterator[LintFinding]:
        by_code: dict[str, list[_Description]] = defaultdict(list)
        for doc in self.documents:
            for own in doc.codes:
                if not own.is_family and own.description:
                    by_code[own.code].append(
                        _Description(own.code, own.description, own.source, False)
                    )
            for rel in doc.related_codes:
                by_code[rel.code].append(_Description(rel.code, rel.description, rel.source, True))
        for code, records in sorted(by_code.items()):
            known = self.master.procedures.get(code)
            if known is not None:
                for record in records:
                    yield from self._against_master(record, known, records)
            else:
                yield from self._against_each_other(records)

    def _against_master(
        self, record: _Description, known: MasterProcedure, records: Sequence[_Description]
    ) -> Iterator[LintFinding]:
        differences = _procedure_differences(record.text, known)
        if not differences:
            return
        stated = vocab.sizes(record.text)
        others = [
            f"{r.source} gives {vocab.format_sizes(vocab.sizes(r.text))}"
            for r in records
            if r is not record and vocab.sizes(r.text) and vocab.sizes(r.text) != stated
        ]
        also = f"; elsewhere in the seeds {', '.join(others)}" if others else ""
        yield LintFinding(
            "error",
            "related_code.contradicts" if record.related else "code.description_contradicts",
            record.source,
            record.code,
            f"{record.code} in the CPT code set: {known.summary}"
            + (f", {known.size}" if known.size else "")
            + f" ({known.source}); {record.text!r} differs in {'; '.join(differences)}{also}",
        )

    def _against_each_other(self, records: Sequence[_Description]) -> Iterator[LintFinding]:
        """Without a master entry, two descriptions of one code that disagree are both suspect."""
        for record in records:
            clashes: list[str] = []
            for other in records:
                if other is record:
                    continue
                mine, theirs = vocab.sizes(record.text), vocab.sizes(other.text)
                size_clash = mine and theirs and not (mine <= theirs or theirs <= mine)
                sites_a = vocab.sites(record.text)
                sites_b = vocab.sites(other.text)
                site_clash = (
                    sites_a and sites_b and vocab.incompatible(sites_a, sites_b, vocab.SITE_PARENT)
                )
                if size_clash or site_clash:
                    what = []
                    if size_clash:
                        what.append(
                            f"size {vocab.format_sizes(mine)} vs {vocab.format_sizes(theirs)}"
                        )
                    if site_clash:
                        what.append(
                            f"site {', '.join(sorted(sites_a))} vs {', '.join(sorted(sites_b))}"
                        )
                    clashes.append(f"{other.source} ({'; '.join(what)})")
            if clashes:
                yield LintFinding(
                    "warning",
                    "related_code.contradicts"
                    if record.related
                    else "code.description_contradicts",
                    record.source,
                    record.code,
                    f"{record.code} is described as {record.text!r}, differently at "
                    f"{', '.join(clashes)}; no master entry settles which is right",
                )

    # -- indicators the seeds state ----------------------------------------------------------

    def _indicators(self) -> Iterator[LintFinding]:
        for doc in self.documents:
            for ind in doc.indicators:
                if ind.for_code is None:
                    continue
                name = SEED_INDICATOR_FIELDS.get(ind.name)
                row = self.ref.mpfs.get(ind.for_code)
                if name is not None and row is not None:
                    cms_value = getattr(row, name)
                    if isinstance(cms_value, str) and cms_value and cms_value != ind.value:
                        yield LintFinding(
                            "warning",
                            "indicator.contradicts_cms",
                            ind.source,
                            ind.for_code,
                            f"the seed says {ind.name} {ind.value!r} for {ind.for_code}; the CMS "
                            f"file says {cms_value!r} ({row.source}), and the CMS file wins",
                        )
                mue = self.ref.mue.get(ind.for_code)
                if ind.name == "mue" and mue is not None and ind.value != str(mue.value):
                    yield LintFinding(
                        "warning",
                        "indicator.contradicts_cms",
                        ind.source,
                        ind.for_code,
                        f"the seed says MUE {ind.value!r} for {ind.for_code}; the NCCI MUE table "
                        f"says {mue.value} ({mue.source}), and the MUE table wins",
                    )


def _procedure_differences(text: str, known: MasterProcedure) -> list[str]:
    """How a description of a procedure code contradicts its master entry (empty: it does not).

    A description may say less than the code set (no size, no site): only what it does say is
    compared. Kinds it names that the code is not, size figures the code does not have and sites
    that do not fit the code's sites are contradictions.
    """
    out: list[str] = []
    kinds = vocab.procedure_kinds(text) - known.kinds
    if kinds:
        out.append(f"kind: {', '.join(sorted(kinds))}, not {', '.join(sorted(known.kinds))}")
    sizes = vocab.sizes(text)
    expected = vocab.sizes(known.size)
    if sizes and expected and not sizes <= expected:
        out.append(f"size: {vocab.format_sizes(sizes)}, not {known.size}")
    sites = vocab.incompatible(vocab.sites(text), known.sites, vocab.SITE_PARENT)
    if sites:
        out.append(f"site: {', '.join(sites)}, not {', '.join(sorted(known.sites))}")
    return out


def _diagnosis_differences(text: str, known: str) -> list[str]:
    """How an ICD-10-CM description contradicts the code's own: site, side or kind of lesion.

    Only what both descriptions name is compared, and a broader word fits a narrower one ("open
    wound" fits "laceration"), so a looser paraphrase is not a contradiction; a different site,
    side or lesion is.
    """
    out: list[str] = []
    facets: tuple[tuple[str, frozenset[str], frozenset[str], Mapping[str, str | None]], ...] = (
        (
            "site",
            vocab.sites(text),
            vocab.sites(known),
            vocab.SITE_PARENT,
        ),
        (
            "kind",
            vocab.lesions(text),
            vocab.lesions(known),
            vocab.LESION_PARENT,
        ),
        (
            "side",
            vocab.sides(text),
            vocab.sides(known),
            {},
        ),
    )
    for name, stated, expected, parents in facets:
        bad = vocab.incompatible(stated, expected, parents)
        if bad:
            out.append(f"{name}: {', '.join(bad)}, not {', '.join(sorted(expected))}")
    return out
