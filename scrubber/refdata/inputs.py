"""Where the reference-data inputs that ship with the package are: master lists, CMS extracts.

One place for the paths, so that the build, the lint and the CLI read the same files by default
(``scrubber refdata lint`` must judge the seeds against exactly what ``scrubber refdata build``
merges them with) and none of them has to import another only to learn a location. Paths only:
nothing here reads a file.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DEFAULT_MPFS",
    "DEFAULT_MUE",
    "DEFAULT_PTP",
    "EXTRACT_MPFS",
    "EXTRACT_MUE",
    "MASTER_DIR",
    "MASTER_FILES",
    "MASTER_MODIFIERS",
]

_PACKAGE_DIR = Path(__file__).parent

#: The master lists (``master/README.md`` says what each holds and where it comes from).
MASTER_DIR = _PACKAGE_DIR / "master"

#: The master list files, in the order a build lists them among a bundle's sources (the order
#: is part of the bundle, hence of its version).
MASTER_FILES = (
    "modifiers.csv",
    "modifier_scope.csv",
    "taxonomy.csv",
    "icd10cm.csv",
    "cpt_codes.csv",
    "cpt_ranges.csv",
)

#: The modifier master list: the build lists it as the bundle's ``modifier-master`` source.
MASTER_MODIFIERS = MASTER_DIR / "modifiers.csv"

#: The shipped CMS tables (``cms/README.md``), the default when no CMS file is given: every row of
#: the CY2025 October physician fee schedule relative value file and of the 2026 Q2 practitioner
#: MUE table, gzipped (descriptors blank: CPT text is AMA copyright).
DEFAULT_MPFS = _PACKAGE_DIR / "cms" / "PPRRVU2025_Oct.csv.gz"
DEFAULT_MUE = _PACKAGE_DIR / "cms" / "MUE-practitioner-2026Q2.csv.gz"

#: Extracts of the same files (the seed codes and common E/M codes), byte for byte in CMS's
#: layout: small inputs for fast tests and the benchmark's synthetic fee schedule template.
EXTRACT_MPFS = _PACKAGE_DIR / "cms" / "PPRRVU2025_Oct-extract.csv"
EXTRACT_MUE = _PACKAGE_DIR / "cms" / "MUE-practitioner-2026Q2-extract.csv"

#: Real rows of the NCCI practitioner PTP table, 2026 Q3 (``ccipra-v322r0-f1.TXT``), in CMS's
#: own layout: the default until a deployment passes the four full parts with ``--ptp``.
DEFAULT_PTP = _PACKAGE_DIR / "cms" / "ccipra-v322r0-f1-extract.txt"
