"""The rule engine and its rules.

Importing any module of this package first imports the engine, which imports every rule module
in its ``RULE_MODULES`` order: rules register in that order whichever module a caller imports
first, so the catalogue and the order of findings never depend on import order elsewhere.
"""

from scrubber.rules import engine as engine
