"""`scrubber refdata build` and `lint` as commands: exit codes and outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
