"""`scrubber refdata build` and `lint` as commands: exit codes and outputs."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from scrubber.refdata.model import Bundle

REPO = Path(__file__).resolve().parents[2]


def _scrubber(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrubber", *args], cwd=REPO, capture_output=True, text=True
    )


def test_lint_reports_the_seed_errors_and_fails_only_when_strict() -> None:
    relaxed = _scrubber("refdata", "lint")
    assert relaxed.returncode == 0, relaxed.stderr
    assert "000_62d55b151c6621bc.txt:19: error modifier.not_real 11" in relaxed.stdout
    strict = _scrubber("refdata", "lint", "--strict")
    assert strict.returncode == 1
    assert strict.stdout == relaxed.stdout


def test_build_writes_a_versioned_bundle_with_its_corrections(tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    done = _scrubber("refdata", "build", "--seeds", "seeds", "-o", str(out))
    assert done.returncode == 0, done.stderr
    bundle = Bundle.from_json(out.read_bytes())
    assert bundle.version in done.stdout
    assert {"11960", "99213", "11008"} <= bundle.codes.keys()
    assert "11" not in bundle.modifiers and "LT" in bundle.modifiers
    assert any(c.subject == "modifier 11" and c.action == "excluded" for c in bundle.corrections)
    seeds_only = tmp_path / "seeds-only.json"
    assert _scrubber("refdata", "build", "--no-cms", "-o", str(seeds_only)).returncode == 0
    # Seeds only: 11004's global days come from the coding reference page; with CMS, from PPRRVU.
    alone = Bundle.from_json(seeds_only.read_bytes()).codes["11004"]
    assert alone.sources["global_days"].startswith("004_f39bc7b80f4060ac.txt:")
    assert bundle.codes["11004"].sources["global_days"].startswith("PPRRVU2025_Oct.csv.gz:")
    # The defaults are the full CMS tables, the NCCI PTP extract and the shipped ICD-10-CM set.
    assert len(bundle.codes) > 15_000
    assert bundle.codes["11004"].sources["mue_value"].startswith("MUE-practitioner-2026Q2.csv.gz:")
    assert bundle.ptp is not None and bundle.ptp.count > 0
    assert [s.fiscal_year for s in bundle.icd10cm] == [2026]


def _bad_ptp(tmp_path: Path) -> Path:
    """The shipped PTP extract with one row's modifier indicator damaged."""
    source = REPO / "tests/unit/data/ptp/ccipra-extract.txt"
    lines = source.read_bytes().decode("latin-1").split("\r\n")
    cells = lines[9].split("\t")
    cells[5] = "7"  # indicators are 0, 1 or 9
    lines[9] = "\t".join(cells)
    bad = tmp_path / "ccipra-bad.txt"
    bad.write_bytes("\r\n".join(lines).encode("latin-1"))
    return bad


def _bad_icd10cm(tmp_path: Path) -> Path:
    """The shipped order file's first line, then a line that is not one."""
    with gzip.open(REPO / "scrubber/refdata/cms/icd10cm-order-april-2026.txt.gz", "rt") as f:
        first = f.readline()
    bad = tmp_path / "icd10cm-order-2026.txt"
    bad.write_text(first + "this is not an order line\n")
    return bad


def _bad_payers(tmp_path: Path) -> Path:
    bad = tmp_path / "payers.yaml"
    bad.write_text("profiles:\n  - name: x\n    match: ['*']\n    disable: [no.such_rule]\n")
    return bad


@pytest.mark.parametrize(
    ("option", "make", "where"),
    [
        ("--ptp", _bad_ptp, "ccipra-bad.txt:10"),
        ("--icd10cm", _bad_icd10cm, "icd10cm-order-2026.txt:2"),
        ("--payers", _bad_payers, "payers.yaml:"),
    ],
)
def test_a_bad_input_file_stops_the_build_with_its_line_and_writes_nothing(
    tmp_path: Path, option: str, make: Callable[[Path], Path], where: str
) -> None:
    out = tmp_path / "bundle.json"
    done = _scrubber("refdata", "build", option, str(make(tmp_path)), "-o", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert where in " ".join((done.stdout + done.stderr).split())
    assert not out.exists()


def test_rules_for_a_payer_show_its_profile_applied(tmp_path: Path) -> None:
    """The shipped profiles: Medicare keeps every rule, a commercial payer turns some off."""
    out = tmp_path / "bundle.json"
    payers = REPO / "scrubber/refdata/payers/default.yaml"
    built = _scrubber("refdata", "build", "--payers", str(payers), "-o", str(out))
    assert built.returncode == 0, built.stderr
    views = {}
    for payer in ("MCR-J15", "AETNA-60054"):
        done = _scrubber("rules", "--payer", payer, "--refdata", str(out), "--json")
        assert done.returncode == 0, done.stderr
        views[payer] = orjson.loads(done.stdout)
    medicare, commercial = views["MCR-J15"], views["AETNA-60054"]
    assert (medicare["profile"], commercial["profile"]) == ("medicare", "commercial")
    assert medicare["refdata_version"] == Bundle.from_json(out.read_bytes()).version
    assert all(rule["applies"] for rule in medicare["rules"])
    off = {rule["rule_id"] for rule in commercial["rules"] if not rule["applies"]}
    assert off and all(
        rule["medicare_policy"] for rule in commercial["rules"] if rule["rule_id"] in off
    )
    assert all(rule["severity"] is None for rule in commercial["rules"] if not rule["applies"])
    missing = _scrubber("rules", "--payer", "X", "--refdata", str(tmp_path / "none.json"))
    assert missing.returncode == 2
