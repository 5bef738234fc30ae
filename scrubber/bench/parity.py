"""Verdict parity between two revisions of the code: the same input must give the same bytes.

A restructuring of the engine, the processor or the history must not change a single verdict.
This script checks that on a generated stream: it builds one reference bundle and one input
file (``scrubber examples``, 100,000 lines by default) with the *base* revision, then runs the
offline scrub of each revision over them in a subprocess whose ``PYTHONPATH`` is that
revision's tree (a temporary ``git worktree``), with a fixed clock, and compares the results
and rejects byte for byte.

    python -m scrubber.bench.parity BASE [HEAD] [--lines N] [--seed S]

``HEAD`` defaults to the working tree itself (uncommitted changes included). Exit status 0
when both files are identical, 1 with the first differing line otherwise. The runner only uses
``scrubber.offline.scrub_lines`` and ``scrubber.refdata.model``, which every revision has.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Runs inside each revision's tree: scrub the input with a fixed clock, write results/rejects.
_RUNNER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from scrubber.offline import scrub_lines
from scrubber.refdata.model import Bundle, ReferenceSnapshot

bundle, source, results, rejects = (Path(p) for p in sys.argv[1:5])
snapshot = ReferenceSnapshot(Bundle.from_json(bundle.read_bytes()))
fixed = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
with source.open("rb") as src, results.open("wb") as res, rejects.open("wb") as rej:
    scrub_lines((l.rstrip(b"\\r\\n") for l in src), snapshot, res, rej, source.name,
                clock=lambda: fixed)
"""


def _tree(rev: str, scratch: Path) -> Path:
    """A checkout of ``rev`` (a temporary worktree), or the working tree itself for ``.``."""
    if rev == ".":
        return REPO
    where = scratch / f"tree-{hashlib.sha1(rev.encode()).hexdigest()[:8]}"  # noqa: S324
    subprocess.run(  # noqa: S603 - git with our own arguments
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where), rev],  # noqa: S607
        check=True,
    )
    return where


def _run(tree: Path, args: list[str], *, code: str | None = None) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", *args]
    subprocess.run(command, check=True, env=env, cwd=tree)  # noqa: S603 - our own interpreter


def _first_difference(a: Path, b: Path) -> str | None:
    with a.open("rb") as fa, b.open("rb") as fb:
        for number, (la, lb) in enumerate(zip(fa, fb, strict=False), start=1):
            if la != lb:
                return f"line {number} differs:\n  base: {la[:300]!r}\n  head: {lb[:300]!r}"
    sa, sb = a.stat().st_size, b.stat().st_size
    return None if sa == sb else f"sizes differ: {sa} and {sb} bytes"


def main(argv: list[str] | None = None) -> int:
    """Compare the offline scrub of two revisions on one generated stream."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git revision to compare against")
    parser.add_argument("head", nargs="?", default=".", help="revision, or . for the work tree")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        scratch = Path(tmp)
        trees: list[Path] = []
        try:
            base = _tree(args.base, scratch)
            trees.append(base)
            head = _tree(args.head, scratch)
            trees.append(head)
            bundle, lines = scratch / "refdata.json", scratch / "lines.jsonl"
            _run(base, ["scrubber", "refdata", "build", "--seeds", "seeds", "-o", str(bundle)])
            _run(
                base,
                [
                    *("scrubber", "examples", "-o", str(lines), "--lines", str(args.lines)),
                    *("--seed", str(args.seed), "--refdata", str(bundle)),
                ],
            )
            outputs = {}
            for name, tree in (("base", base), ("head", head)):
                results, rejects = scratch / f"{name}.results", scratch / f"{name}.rejects"
                _run(tree, [str(bundle), str(lines), str(results), str(rejects)], code=_RUNNER)
                outputs[name] = (results, rejects)
            failures = [
                f"{kind}: {difference}"
                for kind, index in (("results", 0), ("rejects", 1))
                if (difference := _first_difference(outputs["base"][index], outputs["head"][index]))
            ]
            count = sum(1 for _ in outputs["head"][0].open("rb"))
            if failures:
                print("\n".join(failures))
                return 1
            print(
                f"identical: {args.lines} lines, {count} results ({args.base} against {args.head})"
            )
            return 0
        finally:
            for tree in trees:
                if tree != REPO:
                    subprocess.run(  # noqa: S603 - git with our own arguments
                        ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],  # noqa: S607
                        check=False,
                    )


if __name__ == "__main__":
    raise SystemExit(main())
