"""Reading a payer profile file: build time only (``scrubber refdata build``, the tests).

The worker gets the profiles from the bundle (``scrubber.refdata.payers``) and never imports this
module, nor PyYAML.

Profiles are read from a YAML file as strictly as the CMS files are: a typo in a rule id would
silently switch a check back on (or leave one off), so every name must be one the engine knows and
every error names ``file:line``. The file is composed with PyYAML's safe loader and validated node
by node, so that each message can point at the line of the offending node; nothing is returned
from a file with an error in it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from scrubber.contracts import Severity
from scrubber.refdata.payers import NAME_PATTERN, PayerProfile, PayerProfiles

__all__ = [
    "DEFAULT_PAYERS",
    "PayerProfileError",
    "load_payer_profiles",
    "parse_payer_profiles",
]

#: The payer profiles shipped with the package (see the comments in the file for each choice).
DEFAULT_PAYERS = Path(__file__).parent / "payers" / "default.yaml"

_NAME_RE = re.compile(rf"\A{NAME_PATTERN}\Z")

_GLOB_CHARS = frozenset("*?[")

_STR_TAG = "tag:yaml.org,2002:str"

_TOP_KEYS = ("profiles",)
_PROFILE_KEYS = ("name", "payers", "disable", "severity")
_REQUIRED_PROFILE_KEYS = ("name", "payers")
_SEVERITIES = tuple(s.value for s in Severity)

#: Lists of allowed values longer than this are not spelled out in a message (the rule catalogue
#: has dozens of ids; ``scrubber rules`` lists them), only the closest matches are.
_SHORT_LIST = 12


class PayerProfileError(ValueError):
    """A payer profile file that cannot be used; the message is ``"<file name>:<line>: ..."``.

    A ``ValueError`` so that callers validating input generically catch it too.
    """

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        self.reason = message
        super().__init__(f"{file}:{line}: {message}")


# -------------------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    """The names a profile file may use, and what they stand for."""

    rule_ids: frozenset[str]
    categories: frozenset[str]
    groups: Mapping[str, frozenset[str]]
    rule_categories: Mapping[str, str] | None

    @classmethod
    def of(
        cls,
        rule_ids: Collection[str],
        categories: Collection[str],
        groups: Mapping[str, Collection[str]],
        rule_categories: Mapping[str, str] | None,
    ) -> _Vocabulary:
        ids, cats = frozenset(rule_ids), frozenset(categories)
        clash = (ids & cats) | (ids & groups.keys()) | (cats & groups.keys())
        if clash:
            # A caller's mistake, not the file's: one name cannot mean two things.
            raise ValueError(f"names used for more than one of rule, category, group: {clash}")
        return cls(
            rule_ids=ids,
            categories=cats,
            groups={name: frozenset(members) for name, members in groups.items()},
            rule_categories=rule_categories,
        )

    def category_of(self, rule_id: str) -> str | None:
        """The rule's category, when the caller told us the categories of rules."""
        return None if self.rule_categories is None else self.rule_categories.get(rule_id)

    def rules_of_category(self, category: str) -> frozenset[str] | None:
        """The category's rule ids, or None when the caller did not tell us categories of rules."""
        if self.rule_categories is None:
            return None
        return frozenset(r for r, c in self.rule_categories.items() if c == category)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: yaml.Node) -> str:
    """How a node reads to a person, for 'expected X, found Y' messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR_TAG:
            return f"the string {node.value!r}"
        kind = node.tag.rsplit(":", 1)[-1]
        return f"{node.value!r} (read as {kind})" if node.value else "nothing (null)"
    return "an unknown node"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class _Reader:
    """Validates a composed YAML document node by node; every error names the node's line."""

    def __init__(self, name: str, vocabulary: _Vocabulary) -> None:
        self.name = name
        self.vocabulary = vocabulary

    def fail(self, node: yaml.Node | int, message: str) -> PayerProfileError:
        line = node if isinstance(node, int) else _line(node)
        return PayerProfileError(self.name, line, message)

    def mapping(
        self, node: yaml.Node, what: str, allowed: Sequence[str]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's entries by key (key node, value node); unknown or repeated keys refused."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping, found {_kind(node)}")
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                raise self.fail(key_node, f"{what} has a key that is {_kind(key_node)}")
            key = str(key_node.value)
            if key not in allowed:
                raise self.fail(
                    key_node,
                    f"unknown key {key!r} in {what} (allowed: {', '.join(allowed)})"
                    + _suggest(key, allowed),
                )
            if key in entries:
                first = _line(entries[key][0])
                raise self.fail(key_node, f"{what} has key {key!r} twice (first at line {first})")
            entries[key] = (key_node, value_node)
        return entries

    def string(self, node: yaml.Node, what: str) -> str:
        """A non-empty string scalar (an unquoted 01112 is a number in YAML: say so)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR_TAG:
            hint = ""
            if isinstance(node, yaml.ScalarNode) and node.value:
                hint = f"; quote it: '{node.value}'"
            raise self.fail(node, f"{what} must be a string, found {_kind(node)}{hint}")
        value = str(node.value)
        if not value.strip():
            raise self.fail(node, f"{what} must not be empty")
        if value != value.strip():
            raise self.fail(node, f"{what} {value!r} has leading or trailing spaces")
        return value

    def strings(self, node: yaml.Node, what: str, *, non_empty: bool) -> list[tuple[str, int]]:
        """A list of strings with their lines; a repeated entry is refused (a likely typo)."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list, found {_kind(node)}")
        if non_empty and not node.value:
            raise self.fail(node, f"{what} must not be empty")
        seen: dict[str, int] = {}
        out: list[tuple[str, int]] = []
        for item in node.value:
            value = self.string(item, f"an entry of {what}")
            if value in seen:
                raise self.fail(item, f"{value!r} is in {what} twice (first at line {seen[value]})")
            seen[value] = _line(item)
            out.append((value, _line(item)))
        return out

    # ------------------------------------------------------------------------------ the document

    def document(self, root: yaml.Node | None) -> tuple[PayerProfile, ...]:
        if root is None:
            raise self.fail(1, "the file is empty: expected a mapping with a 'profiles' list")
        top = self.mapping(root, "the file", _TOP_KEYS)
        if "profiles" not in top:
            raise self.fail(root, "the file has no 'profiles' list")
        list_node = top["profiles"][1]
        if not isinstance(list_node, yaml.SequenceNode):
            raise self.fail(list_node, f"'profiles' must be a list, found {_kind(list_node)}")
        if not list_node.value:
            raise self.fail(list_node, "'profiles' must not be empty")
        profiles: list[PayerProfile] = []
        first_line: dict[str, int] = {}
        for node in list_node.value:
            profile = self.profile(node, profiles, first_line)
            first_line[profile.name] = _line(node)
            profiles.append(profile)
        return tuple(profiles)

    def profile(
        self, node: yaml.Node, earlier: Sequence[PayerProfile], first_line: Mapping[str, int]
    ) -> PayerProfile:
        entries = self.mapping(node, "a profile", _PROFILE_KEYS)
        for key in _REQUIRED_PROFILE_KEYS:
            if key not in entries:
                raise self.fail(
                    node,
                    f"a profile has no {key!r} (required: {', '.join(_REQUIRED_PROFILE_KEYS)})",
                )
        name_node = entries["name"][1]
        name = self.string(name_node, "a profile name")
        if not _NAME_RE.match(name):
            raise self.fail(
                name_node,
                f"profile name {name!r} must match {NAME_PATTERN} (lower-case letters, digits, "
                "'_' and '-', at most 32 characters): it is a metric label value",
            )
        if name in first_line:
            raise self.fail(
                name_node, f"duplicate profile name {name!r} (first at line {first_line[name]})"
            )
        payers = self.strings(entries["payers"][1], f"the payers of {name!r}", non_empty=True)
        self.reachable(name, _line(node), payers, earlier, first_line)
        disable: list[tuple[str, int]] = []
        if "disable" in entries:
            what = f"the disable list of {name!r}"
            disable = self.strings(entries["disable"][1], what, non_empty=False)
            for entry, line in disable:
                self.check_disable_entry(entry, line)
        severity: dict[str, Severity] = {}
        if "severity" in entries:
            severity = self.severity(entries["severity"][1], name, disable)
        return PayerProfile(
            name=name,
            payers=tuple(p for p, _ in payers),
            disable=tuple(d for d, _ in disable),
            severity=severity,
        )

    def reachable(
        self,
        name: str,
        line_of_profile: int,
        payers: Sequence[tuple[str, int]],
        earlier: Sequence[PayerProfile],
        first_line: Mapping[str, int],
    ) -> None:
        """Refuse a pattern that an earlier profile always wins (the first match applies).

        Decidable cheaply in two cases, which are also the likely mistakes: anything after a
        catch-all ``*``, and a plain payer id (no glob characters) that an earlier pattern matches.
        """
        for profile in earlier:
            where = f"profile {profile.name!r} (line {first_line[profile.name]})"
            if "*" in profile.payers:
                raise self.fail(
                    line_of_profile,
                    f"profile {name!r} can never apply: {where} matches every payer id first",
                )
            for pattern, line in payers:
                if not _GLOB_CHARS & set(pattern) and profile.matches(pattern):
                    raise self.fail(
                        line, f"payer {pattern!r} in {name!r} never applies: {where} matches it"
                    )

    def check_disable_entry(self, entry: str, line: int) -> None:
        v = self.vocabulary
        if entry in v.rule_ids or entry in v.categories or entry in v.groups:
            return
        raise self.fail(
            line,
            f"disable: {entry!r} is not a rule id, a category or a group"
            f" ({self.known_names(with_groups=True)})"
            + _suggest(entry, v.rule_ids | v.categories | v.groups.keys()),
        )

    def known_names(self, *, with_groups: bool) -> str:
        v = self.vocabulary
        parts = [f"categories: {', '.join(sorted(v.categories))}"]
        if with_groups:
            parts.append(f"groups: {', '.join(sorted(v.groups)) or 'none'}")
        if len(v.rule_ids) <= _SHORT_LIST:
            parts.append(f"rule ids: {', '.join(sorted(v.rule_ids))}")
        else:
            parts.append("rule ids: see `scrubber rules`")
        return "; ".join(parts)

    def severity(
        self, node: yaml.Node, name: str, disable: Sequence[tuple[str, int]]
    ) -> dict[str, Severity]:
        v = self.vocabulary
        what = f"the severity mapping of {name!r}"
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping, found {_kind(node)}")
        out: dict[str, Severity] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self.string(key_node, f"a key of {what}")
            if key in lines:
                raise self.fail(key_node, f"{what} has {key!r} twice (first at line {lines[key]})")
            lines[key] = _line(key_node)
            if key in v.groups:
                raise self.fail(
                    key_node,
                    f"severity: {key!r} is a group; a severity applies to a rule id or a category",
                )
            if key not in v.rule_ids and key not in v.categories:
                raise self.fail(
                    key_node,
                    f"severity: {key!r} is not a rule id or a category"
                    f" ({self.known_names(with_groups=False)})"
                    + _suggest(key, v.rule_ids | v.categories),
                )
            if not isinstance(value_node, yaml.ScalarNode) or value_node.value not in _SEVERITIES:
                raise self.fail(
                    value_node,
                    f"severity of {key!r} must be one of {', '.join(_SEVERITIES)}, "
                    f"found {_kind(value_node)}",
                )
            by = self.disabled_by(key, disable)
            if by is not None:
                entry, line = by
                raise self.fail(
                    key_node,
                    f"severity of {key!r} overrides a rule this profile disables "
                    f"({entry!r} in disable, line {line})",
                )
            out[key] = Severity(value_node.value)
        return out

    def disabled_by(self, key: str, disable: Sequence[tuple[str, int]]) -> tuple[str, int] | None:
        """The disable entry that makes a severity override of ``key`` change nothing, if any.

        A rule-id key is dead when the rule is disabled by id, by its category or by a group; a
        category key when the category is disabled, or every one of its rules is. Relations that
        need the category of a rule are only checked when the caller gave ``rule_categories``.
        """
        v = self.vocabulary
        entries = dict(disable)
        if key in entries:
            return key, entries[key]
        if key in v.rule_ids:
            category = v.category_of(key)
            if category is not None and category in entries:
                return category, entries[category]
            for entry, line in disable:
                if key in v.groups.get(entry, ()):
                    return entry, line
            return None
        members = v.rules_of_category(key)
        if not members:
            return None
        covered: set[str] = set()
        last: tuple[str, int] | None = None
        for entry, line in disable:
            hit = members & ({entry} | v.groups.get(entry, frozenset()))
            if hit:
                covered |= hit
                last = (entry, line)
        return last if covered == members else None


def _yaml_problem(exc: yaml.MarkedYAMLError) -> tuple[int, str]:
    """The line and wording of a PyYAML error: where it noticed, and what it was reading."""
    mark = exc.problem_mark or exc.context_mark
    line = int(mark.line) + 1 if mark is not None else 1
    parts = []
    if exc.context:
        context = str(exc.context)
        if exc.context_mark is not None and exc.context_mark.line + 1 != line:
            context += f" (from line {exc.context_mark.line + 1})"
        parts.append(context)
    if exc.problem:
        parts.append(str(exc.problem))
    return line, "YAML syntax error: " + (", ".join(parts) or "unreadable")


def parse_payer_profiles(
    text: str,
    name: str,
    *,
    rule_ids: Collection[str],
    categories: Collection[str],
    groups: Mapping[str, Collection[str]],
    rule_categories: Mapping[str, str] | None = None,
) -> PayerProfiles:
    """Read profiles from YAML text as if it were the file ``name`` (which only names errors).

    ``rule_ids``, ``categories`` and ``groups`` (group name -> member rule ids) are the names the
    file may use. ``rule_categories`` (rule id -> category), when given, lets the reader also
    refuse a severity override of a rule disabled through its category. Raises
    ``PayerProfileError`` naming ``name:line``.
    """
    vocabulary = _Vocabulary.of(rule_ids, categories, groups, rule_categories)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise PayerProfileError(name, *_yaml_problem(exc)) from exc
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise PayerProfileError(name, line, f"unreadable character: {exc.reason}") from exc
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error above has a mark
        raise PayerProfileError(name, 1, f"YAML error: {exc}") from exc
    profiles = _Reader(name, vocabulary).document(root)
    return PayerProfiles(profiles=profiles, source=name)


def load_payer_profiles(
    path: Path,
    *,
    rule_ids: Collection[str],
    categories: Collection[str],
    groups: Mapping[str, Collection[str]],
    rule_categories: Mapping[str, str] | None = None,
) -> PayerProfiles:
    """Read and validate a payer profile file (see ``parse_payer_profiles``)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PayerProfileError(path.name, line, "not UTF-8 text") from exc
    return parse_payer_profiles(
        text,
        path.name,
        rule_ids=rule_ids,
        categories=categories,
        groups=groups,
        rule_categories=rule_categories,
    )
