"""The words the lint reads free-text descriptions with: procedure kinds, body sites, sizes.

A seed describes a code in prose ("adjacent tissue transfer, forehead, 10.5 sq cm"); the master
lists state the same code's facts as terms of this vocabulary (``master/cpt_codes.csv``: kinds,
sites, size). This module owns that vocabulary and the helpers that read a text into it, so that
the lint (``scrubber.refdata.lint``) can compare the two and the master list reader
(``scrubber.refdata.master``) can refuse a row that uses a term the vocabulary does not know.

The words are generic language, not facts about any code (those are in the master lists): names
of procedure kinds, of body sites and of kinds of lesion, each with the broader term it is part
of, so that "forearm" fits "arm" but not "lower leg"; size figures and their units; and the word
sets modifier descriptions and specialty names are compared by.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "LESION_PARENT",
    "PROCEDURE_KINDS",
    "SITE_PARENT",
    "Size",
    "coverage",
    "format_sizes",
    "incompatible",
    "lesions",
    "procedure_kinds",
    "same_name",
    "sides",
    "sites",
    "sizes",
    "words",
]

#: Procedure kinds and the words that say a description is of that kind.
_KIND_RES: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.IGNORECASE)
    for name, pattern in (
        ("tissue expander", r"\bexpanders?\b"),
        ("graft", r"\bgraft(?:s|ing)?\b"),
        ("flap", r"\bflaps?\b"),
        ("adjacent tissue transfer", r"\badjacent tissue\b|\btissue transfer\b|\brearrangement\b"),
        ("complex repair", r"\bcomplex\b"),
        ("intermediate repair", r"\bintermediate\b|\blayer(?:ed)? closure\b"),
        ("simple repair", r"\bsimple\b"),
    )
}

#: Body sites: canonical name -> (pattern, the site it is part of). Multi-word sites first, so
#: that "upper arm" is read as one site rather than as "arm".
_SITES: tuple[tuple[str, str, str | None], ...] = (
    ("abdominal wall", r"abdominal walls?", "trunk"),
    ("lower leg", r"lower legs?", "leg"),
    ("lower limb", r"lower (?:limbs?|extremit(?:y|ies))", "extremity"),
    ("upper arm", r"upper arms?", "arm"),
    ("upper limb", r"upper (?:limbs?|extremit(?:y|ies))", "extremity"),
    ("midface", r"mid-?face", "face"),
    ("arm", r"arms?", "upper limb"),
    ("axilla", r"axill(?:a|ae|ary)", "trunk"),
    ("breast", r"breasts?", "trunk"),
    ("cheek", r"cheeks?", "face"),
    ("chest", r"chest", "trunk"),
    ("chin", r"chins?", "face"),
    ("ear", r"ears?", "head"),
    ("extremity", r"extremit(?:y|ies)", None),
    ("eyelid", r"eyelids?", "face"),
    ("face", r"face|facial", "head"),
    ("finger", r"fingers?", "hand"),
    ("foot", r"foot|feet", "lower limb"),
    ("forearm", r"forearms?", "arm"),
    ("forehead", r"foreheads?", "face"),
    ("genitalia", r"genitalia|genitals?", None),
    ("hand", r"hands?", "upper limb"),
    ("head", r"head", None),
    ("hip", r"hips?", "lower limb"),
    ("knee", r"knees?", "leg"),
    ("leg", r"legs?", "lower limb"),
    ("lip", r"lips?", "face"),
    ("mouth", r"mouth", "face"),
    ("nail", r"nails?", None),
    ("neck", r"neck", None),
    ("nose", r"nose|nasal", "face"),
    ("perineum", r"perine(?:um|al)", None),
    ("scalp", r"scalp", "head"),
    ("shoulder", r"shoulders?", "upper limb"),
    ("thigh", r"thighs?", "leg"),
    ("thumb", r"thumbs?", "hand"),
    ("toe", r"toes?", "foot"),
    ("trunk", r"trunk", None),
    ("wrist", r"wrists?", "arm"),
)

#: Kinds of lesion an ICD-10-CM description names, and the broader kind each is one of.
_LESIONS: tuple[tuple[str, str, str | None], ...] = (
    ("basal cell carcinoma", r"basal cell carcinomas?", "malignant neoplasm"),
    ("squamous cell carcinoma", r"squamous cell carcinomas?", "malignant neoplasm"),
    ("malignant neoplasm", r"malignant neoplasms?", None),
    ("melanoma", r"melanomas?", "malignant neoplasm"),
    ("open wound", r"open wounds?", None),
    ("laceration", r"lacerations?", "open wound"),
    ("puncture wound", r"puncture wounds?", "open wound"),
    ("open bite", r"open bites?", "open wound"),
    ("abrasion", r"abrasions?", None),
    ("contusion", r"contusions?", None),
    ("fracture", r"fractures?", None),
)
_LATERALITY_RE = re.compile(r"\b(right|left|bilateral)\b", re.IGNORECASE)

#: A size: a number (or "a to b") and its unit; cm2, cm² and sq cm are areas, cm a length.
_SIZE_RE = re.compile(
    r"(?P<value>\d+(?:\.\d+)?)\s*(?:(?:to|–|-)\s*(?P<upper>\d+(?:\.\d+)?)\s*)?"
    r"(?P<unit>sq\.?\s*cm|square\s+centimet(?:er|re)s?|cm2|cm²|cm)(?![a-z])",
    re.IGNORECASE,
)

Size = tuple[float, str]

#: The procedure kinds the vocabulary knows (a master list row may name only these).
PROCEDURE_KINDS = frozenset(_KIND_RES)
#: Each body site and the site it is part of (``None``: a whole).
SITE_PARENT: Mapping[str, str | None] = {name: parent for name, _, parent in _SITES}
#: Each kind of lesion and the broader kind it is one of.
LESION_PARENT: Mapping[str, str | None] = {name: parent for name, _, parent in _LESIONS}


def sizes(text: str) -> frozenset[Size]:
    """The size figures a text states, as ``(value, "cm" | "sq cm")``."""
    out: set[Size] = set()
    for match in _SIZE_RE.finditer(text):
        dim = "cm" if match["unit"].lower() == "cm" else "sq cm"
        for value in (match["value"], match["upper"]):
            if value is not None:
                out.add((round(float(value), 2), dim))
    return frozenset(out)


def format_sizes(found: Iterable[Size]) -> str:
    """Size figures as a message shows them: ``"10 sq cm, 30 sq cm"``."""
    return ", ".join(f"{value:g} {dim}" for value, dim in sorted(found))


class _Terms:
    """Finds the terms of one family (sites, lesions) in a text, in one pass of one expression.

    Each term is a named group, so a match says which term it is; alternatives are tried in
    table order, which is why multi-word terms come first in the tables.
    """

    def __init__(self, table: Sequence[tuple[str, str, str | None]]) -> None:
        self.names = tuple(name for name, _, _ in table)
        alternatives = "|".join(f"(?P<t{i}>{pattern})" for i, (_, pattern, _) in enumerate(table))
        self.pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)

    def found(self, text: str) -> frozenset[str]:
        """The canonical names of the terms a text mentions."""
        found: set[str] = set()
        for match in self.pattern.finditer(text):
            group = match.lastgroup
            if group is not None:
                found.add(self.names[int(group[1:])])
        return frozenset(found)


_SITE_TERMS = _Terms(_SITES)
_LESION_TERMS = _Terms(_LESIONS)


def procedure_kinds(text: str) -> frozenset[str]:
    """The procedure kinds a text names."""
    return frozenset(name for name, pattern in _KIND_RES.items() if pattern.search(text))


def sites(text: str) -> frozenset[str]:
    """The body sites a text names (multi-word sites read as one: "upper arm", not "arm")."""
    return _SITE_TERMS.found(text)


def lesions(text: str) -> frozenset[str]:
    """The kinds of lesion a text names."""
    return _LESION_TERMS.found(text)


def sides(text: str) -> frozenset[str]:
    """The sides a text names: right, left, bilateral (lower case)."""
    return frozenset(s.lower() for s in _LATERALITY_RE.findall(text))


def _ancestors(term: str, parents: Mapping[str, str | None]) -> set[str]:
    out: set[str] = set()
    parent = parents.get(term)
    while parent is not None and parent not in out:
        out.add(parent)
        parent = parents.get(parent)
    return out


def incompatible(
    stated: Iterable[str], known: Iterable[str], parents: Mapping[str, str | None]
) -> list[str]:
    """The stated terms that are neither a known term, a part of one nor a whole one is part of.

    "arm" fits "upper arm" (broader) and "forearm" fits "arm" (narrower); "knee" does not fit
    "lower leg" although both are parts of the leg.
    """
    known = set(known)
    if not known:
        return []
    bad: list[str] = []
    for term in sorted(set(stated)):
        mine = _ancestors(term, parents)
        if not any(term == k or term in _ancestors(k, parents) or k in mine for k in known):
            bad.append(term)
    return bad


# Words that carry no meaning of their own when a modifier's description is compared with
# the master list ("physician or other qualified health care professional" is CPT's boilerplate).
_STOPWORDS = frozenset(
    {
        "a", "an", "and", "or", "of", "the", "to", "by", "for", "in", "on", "at", "as", "with",
        "without", "during", "same", "other", "qualified", "health", "care", "professional",
        "individual", "this", "that", "is", "be", "when", "use", "used", "than", "more",
    }
)  # fmt: skip
_WORD_RE = re.compile(r"[a-z0-9]+")


def words(text: str) -> frozenset[str]:
    """The meaningful words of a text, lower case, a plural read as its singular."""
    out: set[str] = set()
    for word in _WORD_RE.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.add(word)
    return frozenset(out)


def coverage(stated: frozenset[str], known: frozenset[str]) -> tuple[float, int]:
    """How much of ``stated`` ``known`` covers: the share of its words, and how many."""
    shared = len(stated & known)
    return (shared / len(stated) if stated else 0.0, shared)


def same_name(names: Iterable[str], stated: frozenset[str]) -> bool:
    """Whether a name as a seed writes it (as ``words``) is one of ``names``.

    Word order, "&" against "and", and singular against plural do not matter.
    """
    return bool(stated) and any(words(name) == stated for name in names)
