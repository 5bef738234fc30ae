"""Regenerate the shipped default ICD-10-CM code set (``cms/icd10cm-order-*.txt.gz``).

CMS's order files cannot be downloaded where the product is built, but the ``simple-icd-10-cm``
package on PyPI ships CDC's whole tabular list (XML) of one release. This script turns that list
into a file in CMS's order-file layout, so that:

* the runtime does not depend on ``simple-icd-10-cm`` (a 10 MB XML parsed at every start, a
  library that loads its data at import): the product ships a 1 MB gzip read by the same
  reader, with the same checks, as a CMS file;
* the shipped data can be reviewed with ``zcat`` and compared line by line with CMS's file;
* a new release is one command: install the newer package and run this again.

Usage (from the repository root)::

    pip install 'claim-scrubber[icd10cm-source]'
    python -m scrubber.refdata.make_icd10cm_default            # writes the file, prints counts
    python -m scrubber.refdata.make_icd10cm_default --check    # the shipped file is up to date?

The file keeps the codes in tabular order with sequential order numbers, flag 1 for leaves of the
tabular list (the codes valid for HIPAA transactions) and 0 for categories and subcategories above
them, the tabular title as the long description; the short-description field is blank, because
the tabular list has no CMS abbreviations. The file's name gives its release the way CMS names
them (``icd10cm-order-2027.txt.gz`` for an October release, ``icd10cm-order-april-2026.txt.gz``
for an April update), so the reader dates it without a special case.

Manifestation codes need no second file: the reader derives them from the long descriptions by
the title rule (see ``scrubber.refdata.cms_icd10cm``). This script measures the alternatives on the
tabular list's notes and prints them, and checks that the file read back gives exactly the codes
the title rule gives on the tabular tree.
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from scrubber.refdata.cms_icd10cm import (
    CMS_DIR,
    DEFAULT_ICD10CM_GLOB,
    effective_from_name,
    is_manifestation_title,
    read_icd10cm_order,
)

__all__ = ["Entry", "Release", "main", "order_file_name", "order_lines", "write_order_file"]

_MONTH_NAMES = (
    *("january", "february", "march", "april", "may", "june"),
    *("july", "august", "september", "october", "november", "december"),
)
_VERSION_RE = re.compile(rb"<version>\s*(\d{4})\s*</version>")


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the order file: a code (no dot), whether it is billable, its title."""

    code: str
    billable: bool
    title: str


@dataclass(frozen=True, slots=True)
class Release:
    """Which ICD-10-CM release a tabular list is: its fiscal year and first day in force."""

    fiscal_year: int
    effective_from: date
    source: str  # the tabular XML's file name, e.g. "icd10c-tabular-April-1-2026.xml"


def order_lines(entries: Iterable[Entry]) -> Iterator[str]:
    """The entries as CMS order-file lines: order number, code, flag, short and long title."""
    for number, entry in enumerate(entries, start=1):
        if number > 99999:
            raise ValueError("more than 99,999 codes do not fit the 5-digit order number")
        flag = "1" if entry.billable else "0"
        title = " ".join(entry.title.split())
        yield f"{number:05d} {entry.code:<7} {flag} {'':<60} {title}"


def order_file_name(release: Release) -> str:
    """CMS's naming: the fiscal year for an October release, month and year otherwise."""
    start = release.effective_from
    if (start.month, start.day) == (10, 1):
        return f"icd10cm-order-{release.fiscal_year}.txt.gz"
    if start.day != 1:
        raise ValueError(f"a release starting on {start} cannot be named like CMS's files")
    return f"icd10cm-order-{_MONTH_NAMES[start.month - 1]}-{start.year}.txt.gz"


def write_order_file(entries: Iterable[Entry], path: Path) -> None:
    """Write the gzip with no time stamp or name in its header: same input, same bytes."""
    text = "".join(f"{line}\n" for line in order_lines(entries)).encode("utf-8")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(text)
    path.write_bytes(buffer.getvalue())


# ------------------------------------------------------------------ simple-icd-10-cm side


def _library() -> Any:
    try:
        import simple_icd_10_cm  # only this script needs it, and only here
    except ImportError:
        sys.exit("simple-icd-10-cm is not installed: pip install 'claim-scrubber[icd10cm-source]'")
    return simple_icd_10_cm


def _release(xml: Path) -> Release:
    """The release from the tabular file's name and its ``<version>`` (the fiscal year)."""
    fiscal_year, start = effective_from_name(xml.name)
    match = _VERSION_RE.search(xml.read_bytes()[:4096])
    if match is None or int(match.group(1)) != fiscal_year:
        found = match.group(1).decode() if match else "none"
        raise SystemExit(f"{xml.name}: <version> {found} is not fiscal year {fiscal_year}")
    return Release(fiscal_year, start, xml.name)


def _entries(cm: Any) -> list[Entry]:
    """Categories, subcategories and codes in tabular order (chapters and blocks left out).

    A block holding a single category has that category's name ("B10"): the code list names it
    twice, the order file once.
    """
    codes = dict.fromkeys(
        code for code in cm.get_all_codes(with_dots=False) if cm.is_category_or_subcategory(code)
    )
    return [Entry(code, bool(cm.is_leaf(code)), str(cm.get_description(code))) for code in codes]


def _ancestry(code: str, known: set[str]) -> Iterator[str]:
    return (code[:n] for n in range(3, len(code) + 1) if code[:n] in known)


def _markers(cm: Any, entries: Sequence[Entry]) -> dict[str, set[str]]:
    """Four candidate markers of manifestation codes, as sets of codes."""
    known = {e.code for e in entries}
    titled = {e.code for e in entries if is_manifestation_title(e.title)}
    return {
        "title on the code": titled,
        "title on the code or a code above it": {
            e.code for e in entries if any(a in titled for a in _ancestry(e.code, known))
        },
        "'code first' note on the code": {e.code for e in entries if cm.get_code_first(e.code)},
        "'code first' note on the code or above": {
            e.code for e in entries if cm.get_code_first(e.code, search_in_ancestors=True)
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the shipped default set; print what it holds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=CMS_DIR)
    parser.add_argument("--check", action="store_true", help="compare with the shipped file")
    parser.add_argument("--tabular", type=Path, help="another release: CDC tabular XML")
    parser.add_argument(
        "--codes", type=Path, help="another release: CDC code list (with --tabular)"
    )
    args = parser.parse_args(argv)

    cm = _library()
    if args.tabular or args.codes:
        if not (args.tabular and args.codes):
            parser.error("--tabular and --codes go together")
        cm.change_version(str(args.codes), str(args.tabular))
        xml = args.tabular
    else:
        (xml,) = sorted((Path(cm.__file__).parent / "data").glob("*.xml"))
    release = _release(xml)
    entries = _entries(cm)
    target = args.out_dir / order_file_name(release)
    print(
        f"source: simple-icd-10-cm, {release.source}: FY{release.fiscal_year}, "
        f"in force from {release.effective_from}"
    )

    if args.check:
        expected = "".join(f"{line}\n" for line in order_lines(entries))
        if not target.exists() or gzip.decompress(target.read_bytes()).decode() != expected:
            print(f"{target} is missing or differs from the regenerated set")
            return 1
        print(f"{target.name} is up to date")
        return 0

    stale = [p for p in args.out_dir.glob(DEFAULT_ICD10CM_GLOB) if p != target]
    write_order_file(entries, target)
    for path in stale:
        path.unlink()
        print(f"removed the previous default {path.name}")

    code_set = read_icd10cm_order(target)
    billable = {e.code for e in entries if e.billable}
    print(
        f"wrote {target} ({target.stat().st_size:,} bytes): {len(entries):,} codes, "
        f"{len(billable):,} billable, {code_set.counts()}"
    )
    print("manifestation markers (all codes / billable codes):")
    markers = _markers(cm, entries)
    for name, codes in markers.items():
        print(f"  {name:42} {len(codes):6,} / {len(codes & billable):6,}")
    chosen = markers["title on the code or a code above it"]
    if set(code_set.manifestation.split()) != chosen:
        print("the file read back does not give the title rule's manifestation codes")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
