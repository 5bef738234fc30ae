"""X12 acknowledgement code values the scrubber writes, with their meanings.

The meanings are those of the X12 code lists named on each table (005010X231A1 for the 999,
X12.5 for the TA1). They are used to describe rejects in words without ever quoting input:
a reject record carries a code and this text, never the data that caused it.
"""

from __future__ import annotations

#: IK304, Implementation Segment Syntax Error Code (X12 620).
SEGMENT_ERRORS = {
    "1": "unrecognized segment id",
    "2": "unexpected segment",
    "3": "required segment missing",
    "4": "loop occurs over maximum times",
    "5": "segment exceeds maximum use",
    "6": "segment not in defined transaction set",
    "7": "segment not in proper sequence",
    "8": "segment has data element errors",
    "I4": "implementation 'not used' segment present",
    "I6": "implementation dependent segment missing",
    "I7": "implementation loop occurs under minimum times",
    "I8": "implementation segment below minimum use",
    "I9": "implementation dependent 'not used' segment present",
}

#: IK403, Implementation Data Element Syntax Error Code (X12 723).
ELEMENT_ERRORS = {
    "1": "required data element missing",
    "2": "conditional required data element missing",
    "3": "too many data elements",
    "4": "data element too short",
    "5": "data element too long",
    "6": "invalid character in data element",
    "7": "invalid code value",
    "8": "invalid date",
    "9": "invalid time",
    "10": "exclusion condition violated",
    "12": "too many repetitions",
    "13": "too many components",
    "I10": "implementation 'not used' data element present",
    "I11": "implementation too few repetitions",
    "I12": "implementation pattern match failure",
    "I13": "implementation dependent 'not used' data element present",
    "I6": "code value not used in implementation",
    "I9": "implementation dependent data element missing",
}

#: IK502..IK506, Implementation Transaction Set Syntax Error Code (X12 718).
SET_ERRORS = {
    "1": "transaction set not supported",
    "2": "transaction set trailer missing",
    "3": "transaction set control number in header and trailer do not match",
    "4": "number of included segments does not match actual count",
    "5": "one or more segments in error",
    "6": "missing or invalid transaction set identifier",
    "7": "missing or invalid transaction set control number",
    "23": "transaction set control number not unique within the functional group",
    "I5": "implementation one or more segments in error",
    "I6": "implementation convention not supported",
}

#: AK905..AK909, Functional Group Syntax Error Code (X12 716).
GROUP_ERRORS = {
    "1": "functional group not supported",
    "2": "functional group version not supported",
    "3": "functional group trailer missing",
    "4": "group control number in the functional group header and trailer do not agree",
    "5": "number of included transaction sets does not match actual count",
    "6": "group control number violates syntax",
}

#: TA105, Interchange Note Code (X12 I18).
INTERCHANGE_NOTES = {
    "000": "no error",
    "001": "interchange control number in header and trailer do not match",
    "004": "segment terminator is invalid",
    "014": "invalid interchange date value",
    "015": "invalid interchange time value",
    "017": "invalid interchange control version id value",
    "018": "invalid interchange control number value",
    "021": "invalid number of included groups value",
    "022": "invalid control structure",
    "023": "improper (premature) end-of-file (transmission)",
    "024": "invalid interchange content (e.g. invalid GS segment)",
    "025": "duplicate interchange control number",
    "026": "invalid data element separator",
    "027": "invalid component element separator",
}

#: Codes pyx12's reader gives to structure errors it finds itself; the 999 reports them as a
#: segment in error (IK5 code 5) without an IK3 of their own.
READER_CHECKS = {
    "HL1": "HL01 is not the next hierarchical id number",
    "HL2": "HL02 names no open parent level",
    "LX": "LX01 is not the next service line number",
    "SEG1": "segment ends with an element separator",
}


def describe(table: dict[str, str], code: str) -> str:
    """The meaning of a code, or a plain statement that it has none here."""
    return table.get(code) or READER_CHECKS.get(code) or "code without a description"
