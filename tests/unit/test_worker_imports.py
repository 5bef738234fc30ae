"""The worker loads only what it runs: no reference-data build, lint or benchmark code.

Build-time modules are large (the seed parser, the lint and its vocabulary, the CMS readers) and
change often; a worker that imported them would load them in every pod and could be broken by a
change to a tool it never runs. Each case imports an entry point in a fresh interpreter and lists
what came with it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Modules only the build, the lint, the CLI's tools, the demo or the benchmark use.
BUILD_TIME = frozenset(
    {
        "scrubber.refdata.build",
        "scrubber.refdata.cms",
        "scrubber.refdata.cms_aoc",
        "scrubber.refdata.cms_icd10cm",
        "scrubber.refdata.cms_ptp",
        "scrubber.refdata.inputs",
        "scrubber.refdata.lint",
        "scrubber.refdata.master",
        "scrubber.refdata.payers_file",
        "scrubber.refdata.seeds",
        "scrubber.refdata.vocabulary",
        "scrubber.accounting",
        "scrubber.examples",
    }
)


def _build_time(module: str) -> bool:
    return module in BUILD_TIME or module.split(".")[:2] == ["scrubber", "bench"]


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize(
    ("statement", "runs"),
    [
        # the worker itself: Faust app, runtime, processor, rules, reference holder
        ("import scrubber.stream.app", "scrubber.rules.engine"),
        # what `scrubber worker` loads before the command runs
        ("import scrubber.cli", "scrubber.refdata.store"),
    ],
)
def test_no_build_time_module_is_loaded(statement: str, runs: str) -> None:
    loaded = _loaded_after(statement)
    assert runs in loaded  # the import really happened
    assert sorted(m for m in loaded if _build_time(m)) == []


#: Third-party libraries only the file readers use: the AOC workbook's and the payer file's.
READER_LIBRARIES = frozenset({"openpyxl", "yaml"})


@pytest.mark.parametrize("statement", ["import scrubber.stream.app", "import scrubber.cli"])
def test_no_file_reader_library_is_loaded(statement: str) -> None:
    """The readers' libraries stay out of the worker with the readers themselves."""
    loaded = _loaded_after(statement)
    assert sorted(READER_LIBRARIES & loaded) == []


def test_the_list_names_real_modules() -> None:
    """A renamed module would make the check above pass vacuously."""
    every = sorted(BUILD_TIME | {"scrubber.bench"})
    loaded = _loaded_after("\n".join(f"import {m}" for m in every))
    assert BUILD_TIME | {"scrubber.bench"} <= loaded
    libraries = _loaded_after("\n".join(f"import {m}" for m in READER_LIBRARIES))
    assert libraries >= READER_LIBRARIES
