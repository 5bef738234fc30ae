"""``scrubber``: the worker, the offline scrub, reference data and operator tools.

Entry points stay thin: each command parses its options, builds the objects from ``Settings``
and calls into the package, so every behaviour here is also reachable (and tested) as a function.
"""

from __future__ import annotations

import asyncio
import logging.config
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from scrubber.config import Settings
from scrubber.dlq import Selection
from scrubber.logs import logging_config
from scrubber.refdata.store import RefdataStore, VersionInfo, connect

# Tracebacks never show local variables: they would print claim lines (PHI) to a terminal or log.
app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_show_locals=False
)
refdata_app = typer.Typer(no_args_is_help=True, help="Build, check and serve reference data.")
topics_app = typer.Typer(no_args_is_help=True, help="The scrubber's Kafka topics.")
contracts_app = typer.Typer(no_args_is_help=True, help="JSON Schemas and AsyncAPI in contracts/.")
app.add_typer(refdata_app, name="refdata")
app.add_typer(topics_app, name="topics")
app.add_typer(contracts_app, name="contracts")
dlq_app = typer.Typer(no_args_is_help=True, help="Inspect and replay dead letters.")
app.add_typer(dlq_app, name="dlq")

console = Console(stderr=True)
out = Console()
T = TypeVar("T")

REPO_SEEDS = Path("seeds")


def _run(coro: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await coro()

    return asyncio.run(main())


def _settings() -> Settings:
    settings = Settings()
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    return settings


def _redis_store(settings: Settings) -> RefdataStore:
    return RefdataStore(connect(settings), settings.redis_prefix)


# ------------------------------------------------------------------------------- worker, topics
@app.command()
def worker() -> None:
    """Run the scrubbing worker (Faust) until SIGTERM; creates missing topics first."""
    from scrubber.kafka import TopicMismatchError, ensure_topics
    from scrubber.stream.app import Worker
    from scrubber.stream.faust_internals import UnsupportedVersionError, check_versions

    settings = _settings()
    try:
        check_versions()  # Worker.run checks again: it is the one that changes Faust
        _run(lambda: ensure_topics(settings))
    except (TopicMismatchError, UnsupportedVersionError) as exc:
        console.print(f"[red]refusing to start:[/red] {exc}")
        raise typer.Exit(2) from exc
    Worker(settings).run()


@topics_app.command("create")
def topics_create() -> None:
    """Create the input, result and dead-letter topics (idempotent; checks partition counts)."""
    from scrubber.kafka import TopicMismatchError, ensure_topics

    settings = _settings()
    try:
        found = _run(lambda: ensure_topics(settings))
    except TopicMismatchError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for name, parts in found.items():
        out.print(f"{name}\t{parts} partitions")


# ------------------------------------------------------------------------------- publish, demo
@app.command()
def produce(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL claim lines")],
) -> None:
    """Publish a JSONL file to the input topic, keyed by member id, and say where it landed."""
    from scrubber.accounting import key_of, publish, read_jsonl

    settings = _settings()
    records = [(key_of(raw), raw) for raw in read_jsonl(path)]
    positions = _run(lambda: publish(settings, records))
    out.print(f"published {len(positions)} records to {settings.input_topic}")


@app.command()
def demo(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL claim lines")],
    timeout: Annotated[float, typer.Option(help="seconds to wait for every result")] = 120.0,
) -> None:
    """Publish a JSONL file, wait until every line has a result or a dead letter, summarise."""
    from scrubber.accounting import run_file

    settings = _settings()
    ledger, seconds = _run(lambda: run_file(settings, path, timeout))
    s = ledger.summary()
    table = Table(title=f"claim-scrubber demo: {path}", show_header=False)
    table.add_row("lines in", str(s["lines_in"]))
    table.add_row("accepted", str(s["accepted"]))
    table.add_row("flagged", str(s["flagged"]))
    for rule_id, n in s["flagged_by_rule"].items():  # type: ignore[attr-defined]
        table.add_row(f"  by rule {rule_id}", str(n))
    table.add_row("dead-lettered", str(s["dead_lettered"]))
    for code, n in s["dead_letters_by_code"].items():  # type: ignore[attr-defined]
        table.add_row(f"  {code}", str(n))
    table.add_row("revisions", str(s["revisions"]))
    table.add_row("seconds taken", f"{seconds:.2f}")
    table.add_row("metrics", f"http://{settings.web_host}:{settings.web_port}/metrics")
    table.add_row("health", f"http://{settings.web_host}:{settings.web_port}/healthz  /readyz")
    out.print(table)
    if not ledger.complete():
        console.print(f"[red]{len(ledger.missing())} lines have no result after {timeout} s[/red]")
        raise typer.Exit(1)


@app.command()
def examples(
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("seeds/examples/claims.jsonl"),
    lines: Annotated[int, typer.Option(help="how many lines")] = 120,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same file")] = 7,
    refdata: Annotated[Path, typer.Option(exists=True, dir_okay=False)] = Path(
        "build/refdata.json"
    ),
) -> None:
    """Write synthetic claim lines (valid, flag-worthy, malformed) built from a bundle."""
    from scrubber.examples import generate
    from scrubber.refdata.model import Bundle

    bundle = Bundle.from_json(refdata.read_bytes())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(b"".join(raw + b"\n" for raw in generate(bundle, lines, seed=seed)))
    out.print(f"wrote {lines} lines to {output}")


# ------------------------------------------------------------------------------- offline scrub
@app.command()
def scrub(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL claim lines")],
    refdata: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="bundle file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="results JSONL")],
    rejects: Annotated[Path, typer.Option(help="rejected input lines JSONL")],
) -> None:
    """Scrub a JSONL file offline with the worker's engine: results and rejects to files."""
    from rich.progress import BarColumn, Progress, TransferSpeedColumn

    from scrubber.offline import scrub_lines
    from scrubber.refdata.model import Bundle, ReferenceSnapshot

    snapshot = ReferenceSnapshot(Bundle.from_json(refdata.read_bytes()))
    size = path.stat().st_size
    with (
        path.open("rb") as src,
        output.open("wb") as res,
        rejects.open("wb") as rej,
        Progress(
            *Progress.get_default_columns(),
            BarColumn(),
            TransferSpeedColumn(),
            console=console,
            disable=size < 5_000_000,
        ) as progress,
    ):
        task = progress.add_task("scrubbing", total=size)
        summary = scrub_lines(
            (line.rstrip(b"\r\n") for line in src),
            snapshot,
            res,
            rej,
            path.name,
            progress=lambda n: progress.advance(task, n),
        )
    out.print(
        f"lines {summary.lines_in}: accepted {summary.accepted}, flagged {summary.flagged}, "
        f"rejected {summary.rejected} (refdata {snapshot.version})"
    )
    for rule_id, n in sorted(summary.findings_by_rule.items()):
        out.print(f"  finding {rule_id}: {n}")
    for code, n in sorted(summary.rejects_by_code.items()):
        out.print(f"  reject {code}: {n}")


# ------------------------------------------------------------------------------- refdata
@refdata_app.command("build")
def refdata_build(
    seeds: Annotated[Path, typer.Option(exists=True, file_okay=False)] = REPO_SEEDS,
    mpfs: Annotated[
        Path | None, typer.Option(help="PPRRVU CSV (default: the shipped extract)")
    ] = None,
    mue: Annotated[
        Path | None, typer.Option(help="NCCI practitioner MUE CSV (default: shipped extract)")
    ] = None,
    no_cms: Annotated[bool, typer.Option("--no-cms", help="seeds only")] = False,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("build/refdata.json"),
) -> None:
    """Build a reference data bundle from the seed documents and CMS files."""
    from scrubber.refdata.build import DEFAULT_MPFS, DEFAULT_MUE, build_bundle

    bundle = build_bundle(
        seeds,
        mpfs=None if no_cms else (mpfs or DEFAULT_MPFS),
        mue=None if no_cms else (mue or DEFAULT_MUE),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(bundle.to_json())
    out.print(
        f"bundle {bundle.version}: {len(bundle.codes)} codes, {len(bundle.modifiers)} modifiers, "
        f"{len(bundle.corrections)} corrections -> {output}"
    )


@refdata_app.command("lint")
def refdata_lint(
    seeds: Annotated[Path, typer.Option(exists=True, file_okay=False)] = REPO_SEEDS,
    mpfs: Annotated[Path | None, typer.Option(help="PPRRVU CSV (default: shipped extract)")] = None,
    mue: Annotated[
        Path | None, typer.Option(help="NCCI MUE CSV (default: shipped extract)")
    ] = None,
    strict: Annotated[bool, typer.Option(help="exit 1 when there is any error")] = False,
) -> None:
    """Report what in the seed documents is wrong, with document and line."""
    from scrubber.refdata.lint import exit_status, render_text, run_lint

    findings = run_lint(seeds, mpfs, mue)
    sys.stdout.write(render_text(findings))
    raise typer.Exit(exit_status(findings, strict=strict))


@refdata_app.command("load")
def refdata_load(
    bundle: Annotated[Path, typer.Option(exists=True, dir_okay=False)] = Path("build/refdata.json"),
) -> None:
    """Store a bundle in Redis under its version and make it current (atomically)."""
    from scrubber.refdata.model import Bundle

    settings = _settings()
    data = Bundle.from_json(bundle.read_bytes())
    store = _redis_store(settings)

    async def load() -> str | None:
        try:
            return await store.load(data)
        finally:
            await store.redis.aclose()

    old = _run(load)
    out.print(f"current reference data version: {data.version} (was {old or 'none'})")


@refdata_app.command("rollback")
def refdata_rollback() -> None:
    """Make the previous version current again."""
    settings = _settings()
    store = _redis_store(settings)

    async def rollback() -> str | None:
        try:
            return await store.rollback()
        finally:
            await store.redis.aclose()

    restored = _run(rollback)
    if restored is None:
        console.print("[red]no previous version to roll back to[/red]")
        raise typer.Exit(1)
    out.print(f"current reference data version: {restored}")


@refdata_app.command("status")
def refdata_status() -> None:
    """Versions in Redis, their counts, and which version each running worker uses."""
    settings = _settings()
    store = _redis_store(settings)

    async def status() -> tuple[str | None, list[VersionInfo], dict[str, dict[str, object]]]:
        try:
            return (await store.current_version(), await store.versions(), await store.workers())
        finally:
            await store.redis.aclose()

    current, versions, workers = _run(status)
    table = Table(title="reference data versions (newest first)")
    for col in ("version", "current", "loaded at", "codes", "modifiers"):
        table.add_column(col)
    for v in versions:
        loaded = (
            datetime.fromtimestamp(v.loaded_at, UTC).isoformat(timespec="seconds")
            if v.loaded_at
            else "-"
        )
        table.add_row(
            v.version,
            "yes" if v.version == current else "",
            loaded,
            str(v.codes),
            str(v.modifiers),
        )
    out.print(table)
    wt = Table(title="running workers")
    for col in ("worker", "version", "ready", "redis"):
        wt.add_column(col)
    for name, info in sorted(workers.items()):
        wt.add_row(
            name, str(info.get("version")), str(info.get("ready")), str(info.get("redis_ok"))
        )
    out.print(wt)


# ------------------------------------------------------------------------------- dead letters
ErrorCodes = Annotated[
    list[str] | None, typer.Option("--error-code", help="only these error codes (repeatable)")
]
PartitionOpt = Annotated[int | None, typer.Option(help="only this DLQ partition")]
FromOffset = Annotated[int, typer.Option(help="first DLQ offset")]
ToOffset = Annotated[int | None, typer.Option(help="last DLQ offset (inclusive)")]


def _selection(
    error_code: list[str] | None, partition: int | None, from_offset: int, to_offset: int | None
) -> Selection:
    return Selection(frozenset(error_code or ()), partition, from_offset, to_offset)


@dlq_app.command("inspect")
def dlq_inspect(
    error_code: ErrorCodes = None,
    partition: PartitionOpt = None,
    from_offset: FromOffset = 0,
    to_offset: ToOffset = None,
    show_payload: Annotated[
        bool, typer.Option(help="print keys and values: they hold PHI, use with care")
    ] = False,
    limit: Annotated[int, typer.Option(help="records to list")] = 20,
) -> None:
    """Count dead letters by error code and list where they are (no payload unless asked)."""
    from scrubber.dlq import inspect

    settings = _settings()
    sel = _selection(error_code, partition, from_offset, to_offset)
    found = _run(lambda: inspect(settings, sel, show_payload=show_payload, limit=limit))
    out.print(f"{found.total} dead letters in {settings.dlq_topic}")
    for code, n in sorted(found.by_code.items()):
        out.print(f"  {code}: {n}")
    for rec in found.records:
        sys.stdout.write(orjson.dumps(rec).decode() + "\n")


@dlq_app.command("replay")
def dlq_replay(
    error_code: ErrorCodes = None,
    partition: PartitionOpt = None,
    from_offset: FromOffset = 0,
    to_offset: ToOffset = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="really publish; without it this is a dry run")
    ] = False,
) -> None:
    """Send selected dead letters back to the input topic (dry run unless --execute)."""
    from scrubber.dlq import MAX_ATTEMPTS, replay

    settings = _settings()
    sel = _selection(error_code, partition, from_offset, to_offset)
    report = _run(lambda: replay(settings, sel, dry_run=not execute))
    verb = "would replay" if report.dry_run else "replayed"
    allowed = report.selected - len(report.refused)
    out.print(
        f"selected {report.selected}; {verb} {allowed if report.dry_run else report.replayed}"
    )
    if report.refused:
        out.print(
            f"refused {len(report.refused)} that already failed {MAX_ATTEMPTS} times: "
            + ", ".join(f"{p}:{o}" for p, o in report.refused[:20])
        )


# ------------------------------------------------------------------------------- contracts, rules
@contracts_app.command("generate")
def contracts_generate(directory: Path = Path("contracts")) -> None:
    """Write the JSON Schemas and asyncapi.yaml from the models."""
    from scrubber.schema import render

    for path, data in render(directory).items():
        path.write_bytes(data)
        out.print(f"wrote {path}")


@contracts_app.command("check")
def contracts_check(directory: Path = Path("contracts")) -> None:
    """Fail when contracts/ differs from what the models generate."""
    from scrubber.schema import drift

    stale = drift(directory)
    for path in stale:
        console.print(f"[red]out of date:[/red] {path}")
    if stale:
        raise typer.Exit(1)
    out.print("contracts are up to date")


@app.command()
def rules(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="docs/rules.md")] = False,
) -> None:
    """Print the rule catalogue: id, category, severity, CARC, description, source."""
    from scrubber.rules.catalogue import render_markdown
    from scrubber.rules.engine import CATALOGUE

    if markdown:
        sys.stdout.write(render_markdown())
        return

    if as_json:
        sys.stdout.write(
            orjson.dumps(
                [
                    {
                        "rule_id": r.rule_id,
                        "category": r.category.value,
                        "severity": r.severity.value,
                        "carc": r.carc,
                        "description": r.description,
                        "source": r.source,
                    }
                    for r in CATALOGUE.values()
                ],
                option=orjson.OPT_INDENT_2,
            ).decode()
            + "\n"
        )
        return
    table = Table(title="rule catalogue")
    for col in ("rule id", "category", "severity", "CARC", "description"):
        table.add_column(col)
    for r in CATALOGUE.values():
        table.add_row(r.rule_id, r.category.value, r.severity.value, r.carc or "", r.description)
    out.print(table)


def main() -> None:
    """Console entry point."""
    app()
