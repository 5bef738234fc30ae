"""What the public standards say: code shapes and the documented values of the CMS indicators.

This module owns the facts the scrubber takes from published code sets and file layouts rather
than from reference data, so that the rules, the reference-data lint and the CMS readers state
each of them once:

* the shape of each kind of code a claim line carries: HCPCS/CPT procedure codes, modifiers,
  ICD-10-CM diagnoses, NUCC taxonomy codes (the code sets, and X12 837P, which carries them);
* for every MPFS indicator the scrubber reads, its column in the PPRRVU file, each value the
  RVU25D record layout documents and what it means (the layout and its Attachment A, CY2025
  October release), and, where a CMS publication says so, which modifiers a value admits;
* the NCCI MUE adjudication indicators.

Each value set is derived from its meanings table (``STATUS_CODES = frozenset(STATUS_MEANINGS)``):
the CMS reader refuses a value the table does not explain, so a rule never meets a value it has
no meaning to print for. A meaning is the layout's, shortened; where it goes beyond the layout the
comment says where from.

The worker imports this module through the rules: it imports nothing but ``re``.
"""

from __future__ import annotations

import re

__all__ = [
    "ADD_ON_GLOBAL_DAYS",
    "ASSISTANT_DOCUMENTATION",
    "ASSISTANT_MEANINGS",
    "ASSISTANT_MODIFIERS",
    "ASSISTANT_NOT_PAID",
    "ASSISTANT_VALUES",
    "BILATERAL_MEANINGS",
    "BILATERAL_VALUES",
    "CPT_NUMERIC_SHAPE",
    "GLOBAL_DAYS_MEANINGS",
    "GLOBAL_DAYS_VALUES",
    "GLOBAL_SPLIT_MODIFIERS",
    "HCPCS_CODE_PATTERN",
    "HCPCS_CODE_SHAPE",
    "ICD10CM_SHAPE",
    "MODIFIER_SHAPE",
    "MPFS_COLUMNS",
    "MUE_DATE_INDICATORS",
    "MUE_INDICATORS",
    "MUE_INDICATOR_LABELS",
    "MUE_LINE_INDICATOR",
    "MULT_PROC_MEANINGS",
    "MULT_PROC_VALUES",
    "PCTC_ALLOWED",
    "PCTC_MEANINGS",
    "PCTC_VALUES",
    "POSTOP_DAYS",
    "SPLIT_GLOBAL_DAYS",
    "STATUS_CODES",
    "STATUS_MEANINGS",
    "SURGEONS_DOCUMENTATION",
    "SURGEONS_MEANINGS",
    "SURGEONS_NOT_PERMITTED",
    "SURGEONS_VALUES",
    "TAXONOMY_SHAPE",
]

# ------------------------------------------------------------------------------- code shapes

#: A HCPCS procedure code is five characters: level I (CPT) codes are five digits (Category I)
#: or four digits and a letter (F Category II, T Category III, U proprietary laboratory
#: analyses); level II codes are a letter and four digits (X12 837P SV101-2). Upper case. Kept
#: as a pattern too, for parsers that find codes inside longer text.
HCPCS_CODE_PATTERN = r"[0-9A-Z][0-9]{3}[0-9A-Z]"
HCPCS_CODE_SHAPE = re.compile(HCPCS_CODE_PATTERN)

#: A CPT Category I code: five digits. Code ranges (E/M 99202-99499, the ranges of the master
#: lists) are ranges of these.
CPT_NUMERIC_SHAPE = re.compile(r"[0-9]{5}")

#: A CPT or HCPCS level II modifier is exactly two characters, digits or upper-case letters
#: (837P SV101-3..6). Lower case is malformed: X12 modifiers are upper case.
MODIFIER_SHAPE = re.compile(r"[0-9A-Z]{2}")

#: ICD-10-CM code shape: 3 to 7 characters, a letter, then letters or digits; a dot is allowed
#: only after the third character (X12 HI segments carry none, many producers add it). Upper
#: case only: X12 carries diagnosis codes in upper case. The first character may be any letter
#: (U is reserved by WHO for emergency use, but ICD-10-CM assigns codes in it: U07.1), and the
#: second need not be a digit: the FY2026 April release adds category QA0.
ICD10CM_SHAPE = re.compile(r"[A-Z][A-Z0-9]{2}(?:\.?[A-Z0-9]{1,4})?")

#: NUCC health care provider taxonomy code: 10 characters, three digits, six letters or digits,
#: and a final X (207X00000X, 2086S0122X). Upper case, as X12 PRV03 carries it.
TAXONOMY_SHAPE = re.compile(r"[0-9]{3}[0-9A-Z]{6}X")

# ------------------------------------------------------------------------ MPFS indicators

#: The PPRRVU CSV columns of the indicators, by the name the bundle gives each field (the
#: header cells span two rows in the file: "CO-" over "SURG" is "CO-SURG").
MPFS_COLUMNS: dict[str, str] = {
    "status": "STATUS CODE",
    "pctc": "PCTC IND",
    "global_days": "GLOB DAYS",
    "mult_proc": "MULT PROC",
    "bilateral": "BILAT SURG",
    "assistant": "ASST SURG",
    "co_surgeons": "CO-SURG",
    "team_surgery": "TEAM SURG",
}

#: MPFS status codes and their meanings (RVU25D layout, STATUS CODE col. 58, Attachment A).
STATUS_MEANINGS: dict[str, str] = {
    "A": "active code, paid separately under the fee schedule",
    "B": "bundled code: payment is always bundled into payment for other services",
    "C": "contractors price the code, generally case by case after review of documentation",
    "D": "deleted code",
    "E": "excluded from the physician fee schedule by regulation",
    "F": "deleted/discontinued code (no 90-day grace period)",
    "G": "not valid for Medicare purposes: Medicare uses another code (90-day grace period)",
    "H": "deleted modifier: the TC or 26 component of this code was deleted",
    "I": "not valid for Medicare purposes: Medicare uses another code",
    # The payment by base and time units is CMS Claims Processing Manual ch. 12 §50; the layout
    # says only that the file has no RVUs and no payment amounts for these codes.
    "J": "anesthesia service (no RVUs; paid by anesthesia base and time units)",
    "M": "measurement code, used for reporting purposes only",
    "N": "non-covered service: not covered by Medicare",
    "P": "bundled/excluded code: no separate payment under the fee schedule",
    "R": "restricted coverage: special coverage instructions apply; contractor priced if covered",
    "T": "injection: paid only if the same provider bills no other fee schedule service that day",
    "X": "statutory exclusion: not a physician service for fee schedule payment",
}
STATUS_CODES = frozenset(STATUS_MEANINGS)

#: PC/TC indicator (RVU25D layout, PCTC IND col. 103, Attachment A) and the modifiers it admits.
PCTC_MEANINGS: dict[str, str] = {
    "0": "physician service: modifiers 26 and TC cannot be used",
    "1": "diagnostic test: 26 and TC can be used",
    "2": "professional component only code: 26 and TC cannot be used",
    "3": "technical component only code: 26 and TC cannot be used",
    "4": "global test only code: 26 and TC cannot be used",
    "5": "incident-to code: 26 and TC cannot be used",
    "6": "laboratory physician interpretation code: TC cannot be used",
    # The layout says payment may not be made when an independently practicing therapist
    # treats a hospital patient; it names no modifier for 7, so neither 26 nor TC is admitted.
    "7": "physical therapy service: the PC/TC split does not apply",
    "8": "physician interpretation of a clinical laboratory code: no TC billing",
    "9": "the PC/TC concept does not apply",
}
PCTC_VALUES = frozenset(PCTC_MEANINGS)
#: The component modifiers each PC/TC indicator admits: only what Attachment A allows.
PCTC_ALLOWED: dict[str, frozenset[str]] = {
    "0": frozenset(),
    "1": frozenset({"26", "TC"}),
    "2": frozenset(),
    "3": frozenset(),
    "4": frozenset(),
    "5": frozenset(),
    "6": frozenset({"26"}),
    "7": frozenset(),
    "8": frozenset(),
    "9": frozenset(),
}

#: Global surgery period (RVU25D layout, GLOB DAYS col. 104-106).
GLOBAL_DAYS_MEANINGS: dict[str, str] = {
    "000": "day of the procedure only",
    "010": "day of the procedure and 10 days after",
    "090": "the day before, the day of and 90 days after",
    "MMM": "maternity: the usual global period does not apply",
    "XXX": "the global concept does not apply",
    "YYY": "the contractor sets the global period",
    "ZZZ": "add-on: inside the primary code's global period",
}
GLOBAL_DAYS_VALUES = frozenset(GLOBAL_DAYS_MEANINGS)
#: The global days values that define a package, with the post-operative days they cover (the
#: 090 package also covers the day before).
POSTOP_DAYS: dict[str, int] = {"000": 0, "010": 10, "090": 90}
#: The packages split care (modifiers 54, 55, 56) divides: those with post-operative days
#: (CMS Claims Processing Manual ch. 12 §40.2).
SPLIT_GLOBAL_DAYS = frozenset(days for days, postop in POSTOP_DAYS.items() if postop)
GLOBAL_SPLIT_MODIFIERS = ("54", "55", "56")
#: The global days of an add-on code: "the code is related to another service and is always
#: included in the global period of the other service".
ADD_ON_GLOBAL_DAYS = "ZZZ"

#: Multiple procedure indicator, modifier 51 (RVU25D layout, MULT PROC col. 116).
MULT_PROC_MEANINGS: dict[str, str] = {
    "0": "no multiple procedure adjustment: the lower of the charge and the fee schedule amount",
    "1": "standard multiple procedure rules in effect before 1995 (100%, 50%, 25%, 25%, 25%)",
    "2": "standard multiple procedure rules (100%, 50%, 50%, 50%, 50%, then by report)",
    "3": "special rules for multiple endoscopies of one family (the same ENDO BASE)",
    "4": "diagnostic imaging: the reduction within an imaging family applies",
    "5": "50% reduction of the practice expense of certain therapy services",
    "6": "25% reduction of the TC of a second and later diagnostic cardiovascular service",
    "7": "20% reduction of the TC of a second and later diagnostic ophthalmology service",
    "9": "the multiple procedure concept does not apply",
}
MULT_PROC_VALUES = frozenset(MULT_PROC_MEANINGS)

#: Bilateral surgery indicator, modifier 50 (RVU25D layout, BILAT SURG col. 117). Modifier 50
#: goes only with indicator 1 (CMS Claims Processing Manual ch. 12 §40.7).
BILATERAL_MEANINGS: dict[str, str] = {
    "0": "150% bilateral adjustment does not apply (unilateral or anatomically single)",
    "1": "150% bilateral adjustment applies",
    "2": "already bilateral: the RVUs assume both sides",
    "3": "each side paid at 100% (radiology and other diagnostic tests)",
    "9": "the bilateral concept does not apply",
}
BILATERAL_VALUES = frozenset(BILATERAL_MEANINGS)

#: Assistant at surgery indicator (RVU25D layout, ASST SURG col. 118) and the modifiers that
#: report an assistant (CMS Claims Processing Manual ch. 12 §20.4.3).
ASSISTANT_MODIFIERS = ("80", "81", "82", "AS")
ASSISTANT_MEANINGS: dict[str, str] = {
    "0": "payment restriction applies unless documentation establishes medical necessity",
    "1": "statutory payment restriction: an assistant at surgery may not be paid",
    "2": "no payment restriction: an assistant at surgery may be paid",
    "9": "the assistant at surgery concept does not apply",
}
ASSISTANT_VALUES = frozenset(ASSISTANT_MEANINGS)
#: The values under which an assistant is never paid: never (1), or no such concept (9).
ASSISTANT_NOT_PAID = frozenset({"1", "9"})
#: The value under which an assistant is paid only with documentation of medical necessity.
ASSISTANT_DOCUMENTATION = "0"

#: Co-surgeons, modifier 62 (CO-SURG col. 119), and team surgery, modifier 66 (TEAM SURG
#: col. 120), share one scale (RVU25D layout).
SURGEONS_MEANINGS: dict[str, str] = {
    "0": "not permitted for this procedure",
    "1": "may be paid with documentation of medical necessity",
    "2": "permitted",
    "9": "the concept does not apply",
}
SURGEONS_VALUES = frozenset(SURGEONS_MEANINGS)
#: The values under which co-surgeons or a team are not paid: not permitted (0), no concept (9).
SURGEONS_NOT_PERMITTED = frozenset({"0", "9"})
#: The value under which they are paid only with documentation of medical necessity.
SURGEONS_DOCUMENTATION = "1"

# ------------------------------------------------------------------------ MUE indicators

#: NCCI MUE adjudication indicators (MAI) and the words CMS writes after the digit in the
#: practitioner table's "MUE Adjudication Indicator" column.
MUE_INDICATOR_LABELS: dict[str, str] = {
    "1": "Line Edit",
    "2": "Date of Service Edit: Policy",
    "3": "Date of Service Edit: Clinical",
}
MUE_INDICATORS = frozenset(MUE_INDICATOR_LABELS)
#: MAI 1: the units of one claim line are counted.
MUE_LINE_INDICATOR = "1"
#: MAI 2 and 3: the units of the patient's lines of the code on one date of service are summed;
#: a policy limit (2) is absolute, a clinical one (3) can be appealed with documentation (CMS,
#: NCCI MUE questions and answers).
MUE_DATE_INDICATORS: dict[str, str] = {
    indicator: f"{MUE_INDICATOR_LABELS[indicator].lower()}, {appeal}"
    for indicator, appeal in (("2", "absolute"), ("3", "appealable"))
}
