"""Payer profiles as the worker applies them: which rules apply to a line, at what severity.

Runs in the worker (and in the build, which stores the profiles in the bundle); reading and
validating the YAML file is ``scrubber.refdata.payers_file``, a build-time module the worker never
imports (nor PyYAML).

The catalogue is Medicare's reading of the public rules. Where Medicare pays, every rule applies as
catalogued; a commercial payer follows some of Medicare's policy (most apply NCCI edits and the
global surgery package) and not the rest (its coverage is its own, so "Medicare does not cover
status N" says nothing about it). A profile names the payers it covers (glob patterns on the
line's ``payer_id``), the rules it switches off and the severities it changes.

A profile's name becomes a Prometheus label value and an identifier in results, so names are a
closed set of short, safe tokens (``[a-z0-9][a-z0-9_-]{0,31}``). Payer ids are not a closed set
(any producer can send any string), which is why ``ProfileMatcher`` bounds its cache.

Resolution is separate from loading: a profile is stored in the reference-data bundle as written
(names, not expanded rule sets), and each worker resolves it against the rules its own engine
has, once per bundle version. ``resolve`` never raises: a name the engine does not know (a rule
removed since the bundle was built) cannot switch anything off, and is reported in
``ResolvedProfile.unknown`` for the caller to log.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase, translate
from functools import lru_cache
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from scrubber.contracts import Severity

__all__ = [
    "NAME_PATTERN",
    "PayerProfile",
    "PayerProfiles",
    "ProfileMatcher",
    "ResolvedProfile",
    "resolve",
]

#: A profile name: a metric label value and a token in results, so short and of a safe alphabet.
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,31}"

ProfileName = Annotated[str, StringConstraints(pattern=rf"^{NAME_PATTERN}$")]
Pattern = Annotated[str, StringConstraints(min_length=1)]


class PayerProfile(BaseModel):
    """One profile as written in the file: names, not expanded rule sets.

    Kept unexpanded so that the bundle says what its author meant ("the units category"), and each
    engine version expands it against the rules it actually has (``resolve``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ProfileName
    payers: Annotated[tuple[Pattern, ...], Field(min_length=1)]
    """Glob patterns on ``payer_id`` (``fnmatch.fnmatchcase``: case-sensitive; ``*``, ``?``,
    ``[...]``)."""
    disable: tuple[str, ...] = ()
    """Rule ids, categories or group names whose rules do not run for these payers."""
    severity: dict[str, Severity] = Field(default_factory=dict)
    """Rule id or category -> severity for these payers; a rule id wins over its category."""

    def matches(self, payer_id: str) -> bool:
        """Whether any of the profile's patterns matches the payer id."""
        return any(fnmatchcase(payer_id, pattern) for pattern in self.payers)


class PayerProfiles(BaseModel):
    """An ordered list of profiles: the first whose pattern matches a payer id applies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profiles: tuple[PayerProfile, ...] = ()
    source: str | None = None
    """The name of the file the profiles were read from."""

    @model_validator(mode="after")
    def _unique_names(self) -> PayerProfiles:
        """Names identify profiles in metrics and results; two with one name cannot be told apart.

        The loader reports a duplicate with its line; this guards profiles read from a bundle.
        """
        seen: set[str] = set()
        for profile in self.profiles:
            if profile.name in seen:
                raise ValueError(f"duplicate profile name {profile.name!r}")
            seen.add(profile.name)
        return self

    def match(self, payer_id: str) -> PayerProfile | None:
        """The first profile with a pattern matching ``payer_id``, or None.

        None means the line is judged with every rule as catalogued. Use ``ProfileMatcher`` on a
        hot path: it caches the answer per payer id.
        """
        for profile in self.profiles:
            if profile.matches(payer_id):
                return profile
        return None

    def names(self) -> tuple[str, ...]:
        """The profile names, in file order (the closed set of values of a profile label)."""
        return tuple(p.name for p in self.profiles)


# ----------------------------------------------------------------------------------- resolution


@dataclass(frozen=True, slots=True)
class ResolvedProfile:
    """What the engine applies to a line of a profile's payers, in terms of its own rule ids.

    Computed once per (bundle version, profile); the engine skips ``disabled`` rules and gives a
    finding of a rule in ``severity`` that severity instead of the catalogued one.
    """

    name: str
    disabled: frozenset[str]
    """Rule ids that do not run."""
    severity: Mapping[str, Severity]
    """Rule id -> severity, only for rules that run and whose severity the profile changes."""
    unknown: frozenset[str] = field(default_factory=frozenset)
    """Names in the profile that the engine does not know (nothing was done for them)."""

    def __hash__(self) -> int:
        # The generated hash would hash the mapping and fail; an engine may key a memo by profile.
        return hash((self.name, self.disabled, frozenset(self.severity.items()), self.unknown))


def _index(
    rules: Sequence[tuple[str, str, Severity]],
) -> tuple[dict[str, tuple[str, Severity]], dict[str, list[str]]]:
    """Rule id -> (category, severity) and category -> rule ids, in catalogue order."""
    by_id: dict[str, tuple[str, Severity]] = {}
    by_category: dict[str, list[str]] = {}
    for rule_id, category, severity in rules:
        by_id[rule_id] = (category, Severity(severity))
        by_category.setdefault(category, []).append(rule_id)
    return by_id, by_category


def resolve(
    profile: PayerProfile,
    rules: Sequence[tuple[str, str, Severity]],
    groups: Mapping[str, Collection[str]],
) -> ResolvedProfile:
    """Expand a profile against an engine's rules: ``(rule_id, category, catalogued severity)``.

    A ``disable`` entry is a rule id, a category (all its rules) or a group (all its member rule
    ids). A ``severity`` key is a rule id or a category (all its rules); a rule-id key wins over
    its category's key. Disabling wins over a severity override (the loader refuses a file where
    it can see that happen). Names the engine does not know
    are collected in ``unknown`` instead of raising: a worker must keep judging lines when a
    bundle names a rule its version no longer has.
    """
    by_id, by_category = _index(rules)
    unknown: set[str] = set()
    disabled: set[str] = set()
    for entry in profile.disable:
        if entry in by_id:
            disabled.add(entry)
        elif entry in by_category:
            disabled.update(by_category[entry])
        elif entry in groups:
            members = set(groups[entry])
            disabled.update(members & by_id.keys())
            unknown.update(members - by_id.keys())
        else:
            unknown.add(entry)
    unknown.update(key for key in profile.severity if key not in by_id and key not in by_category)
    severity: dict[str, Severity] = {}
    for rule_id, (category, catalogued) in by_id.items():
        if rule_id in disabled:
            continue
        wanted = profile.severity.get(rule_id) or profile.severity.get(category)
        if wanted is not None and wanted != catalogued:
            severity[rule_id] = wanted
    return ResolvedProfile(
        name=profile.name,
        disabled=frozenset(disabled),
        severity=MappingProxyType(severity),
        unknown=frozenset(unknown),
    )


class ProfileMatcher:
    """The per-line lookup: payer id -> the resolved profile that applies, or None.

    Profiles are resolved once, at construction (once per bundle version); the answer for a payer
    id is cached, because a stream carries few distinct payer ids and matching walks every
    pattern of every profile before the one that applies. The cache is bounded (least recently
    used entries go first): payer ids come from producers and are not a closed set.
    """

    def __init__(
        self,
        profiles: PayerProfiles,
        rules: Sequence[tuple[str, str, Severity]],
        groups: Mapping[str, Collection[str]],
        *,
        cache_size: int = 4096,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self.profiles = profiles
        self.resolved: dict[str, ResolvedProfile] = {
            p.name: resolve(p, rules, groups) for p in profiles.profiles
        }
        # One regular expression for every pattern of every profile, in file order: alternatives
        # are tried in order, so the group that matches is the first profile that applies. A
        # miss costs one regex match instead of one fnmatch per pattern (the shipped file has
        # over sixty), which matters when a producer sends a new payer id on every line.
        self._by_group = {f"p{i}": self.resolved[p.name] for i, p in enumerate(profiles.profiles)}
        self._regex = (
            re.compile(
                "|".join(
                    f"(?P<p{i}>{'|'.join(translate(pattern) for pattern in p.payers)})"
                    for i, p in enumerate(profiles.profiles)
                )
            )
            if profiles.profiles
            else None
        )
        self._lookup = lru_cache(maxsize=cache_size)(self._match)

    def _match(self, payer_id: str) -> ResolvedProfile | None:
        found = self._regex.match(payer_id) if self._regex is not None else None
        if found is None or found.lastgroup is None:
            return None
        return self._by_group[found.lastgroup]

    def for_payer(self, payer_id: str) -> ResolvedProfile | None:
        """The resolved profile for a line's payer id, or None: every rule as catalogued."""
        return self._lookup(payer_id)

    def cache_size(self) -> int:
        """How many payer ids the cache holds now (never more than its bound)."""
        return self._lookup.cache_info().currsize
