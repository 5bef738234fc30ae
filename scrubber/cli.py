"""``scrubber``: the worker, the offline scrub, reference data and operator tools.

Entry points stay thin: each command parses its options, builds the objects from ``Settings``
and calls into the package, so every behaviour here is also reachable (and tested) as a function.
"""

from __future__ import annotations

import asyncio
import logging.config
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from scrubber.config import Settings
from scrubber.dlq import Selection
from scrubber.logs import logging_config
from scrubber.refdata.store import RefdataStore, VersionInfo, connect

if TYPE_CHECKING:
    from scrubber.refdata.model import ReferenceSnapshot

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
x12_app = typer.Typer(no_args_is_help=True, help="X12 837P interchanges: claim lines and acks.")
app.add_typer(x12_app, name="x12")

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
    from scrubber.kafka import TopicError, ensure_topics
    from scrubber.malloc import limit_arenas, limit_from_outside
    from scrubber.stream.app import Worker
    from scrubber.stream.faust_internals import UnsupportedVersionError, check_versions

    settings = _settings()
    # Before the first thread (scrubber/malloc.py); logged once logging is set up.
    arenas_limited = limit_arenas(settings.malloc_arenas)
    try:
        check_versions()  # Worker.run checks again: it is the one that changes Faust
        _run(lambda: ensure_topics(settings))
    except (TopicError, UnsupportedVersionError) as exc:
        console.print(f"[red]refusing to start:[/red] {exc}")
        raise typer.Exit(2) from exc
    worker = Worker(settings)
    logging.getLogger("scrubber.malloc").info(
        "malloc arenas",
        extra={
            "limit": settings.malloc_arenas if arenas_limited else None,
            "set_outside": limit_from_outside(),
        },
    )
    worker.run()


@topics_app.command("create")
def topics_create() -> None:
    """Create the input, result and dead-letter topics (idempotent; checks partition counts)."""
    from scrubber.kafka import TopicError, ensure_topics

    settings = _settings()
    try:
        found = _run(lambda: ensure_topics(settings))
    except TopicError as exc:
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
def usable_cpus() -> int:
    """The CPUs this process may run on, at least one: ``scrub --jobs 0``'s process count.

    Its affinity where the platform tells it (``sched_getaffinity``, Linux among others): a
    container or ``taskset`` may grant fewer CPUs than ``os.cpu_count`` counts. Elsewhere, the
    machine's count.
    """
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0)) or 1
    return os.cpu_count() or 1


@app.command()
def scrub(
    path: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="JSONL claim lines, or an X12 837P file"),
    ],
    refdata: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="bundle file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="results JSONL")],
    rejects: Annotated[Path, typer.Option(help="rejected input lines JSONL")],
    ack: Annotated[Path | None, typer.Option(help="837 input: write the 999s here")] = None,
    ack277: Annotated[
        Path | None, typer.Option("--ack277", help="837 input: write the 277CA here")
    ] = None,
    ack277_control: Annotated[
        int, typer.Option("--ack277-control", help="ISA13 of the (first) 277CA interchange")
    ] = 1,
    claims: Annotated[
        Path | None, typer.Option(help="837 input: write each claim's results (JSONL) here")
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            min=0,
            help="JSONL input: processes to scrub in, each holding its share of the patients "
            "(0: one per CPU this process may use); the output is the same, byte for byte",
        ),
    ] = 1,
) -> None:
    """Scrub a JSONL file (or an 837P file) offline with the worker's engine."""
    from rich.progress import BarColumn, Progress, TransferSpeedColumn

    from scrubber.offline import ScrubProcessError, scrub_lines
    from scrubber.refdata.model import Bundle, ReferenceSnapshot
    from scrubber.x12.envelope import looks_like_x12

    snapshot = ReferenceSnapshot(Bundle.from_json(refdata.read_bytes()))
    with path.open("rb") as head:
        is_x12 = looks_like_x12(head.read(4096))
    if is_x12 and jobs != 1:
        console.print("[red]error:[/red] --jobs needs a JSONL input (an 837 is scrubbed in one)")
        raise typer.Exit(2)
    if is_x12:
        _scrub_837(path, snapshot, output, rejects, ack, ack277, ack277_control, claims)
        return
    if ack or ack277 or claims:
        console.print("[red]error:[/red] --ack, --ack277 and --claims need an X12 837 input")
        raise typer.Exit(2)
    size = path.stat().st_size
    processes = jobs or usable_cpus()
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
            # No refresh thread while processes are forked (a lock it holds would be held in
            # the children for ever): the bar is redrawn from the reading instead.
            auto_refresh=processes == 1,
        ) as progress,
    ):
        task = progress.add_task("scrubbing", total=size)

        def advance(n: int) -> None:
            progress.advance(task, n)
            if processes > 1 and progress.tasks[0].completed % 1_048_576 < n:
                progress.refresh()

        try:
            summary = scrub_lines(
                (line.rstrip(b"\r\n") for line in src),
                snapshot,
                res,
                rej,
                path.name,
                progress=advance,
                jobs=processes,
            )
        except ScrubProcessError as exc:
            console.print(f"[red]error:[/red] {exc}; the output files are incomplete")
            raise typer.Exit(1) from exc
    out.print(
        f"lines {summary.lines_in}: accepted {summary.accepted}, flagged {summary.flagged}, "
        f"rejected {summary.rejected} (refdata {snapshot.version})"
    )
    for rule_id, n in sorted(summary.findings_by_rule.items()):
        out.print(f"  finding {rule_id}: {n}")
    for code, n in sorted(summary.rejects_by_code.items()):
        out.print(f"  reject {code}: {n}")


def _scrub_837(
    path: Path,
    snapshot: ReferenceSnapshot,
    output: Path,
    rejects: Path,
    ack: Path | None,
    ack277: Path | None,
    ack277_control: int,
    claims: Path | None,
) -> None:
    """``scrub`` on an 837: the X12 reading of ``x12 lines``, then the same scrub."""
    from contextlib import ExitStack

    from scrubber.x12.files import scrub_837

    with ExitStack() as files:
        res = files.enter_context(output.open("wb"))
        rej = files.enter_context(rejects.open("wb"))
        acks = files.enter_context(ack.open("wb")) if ack else None
        ca = files.enter_context(ack277.open("wb")) if ack277 else None
        cl = files.enter_context(claims.open("wb")) if claims else None
        summary = scrub_837(
            path.read_bytes(),
            snapshot,
            res,
            rej,
            path.name,
            acks=acks,
            claims=cl,
            ack277=ca,
            ack277_control=ack277_control,
        )
    # Plain writes: a console would wrap the summary lines that scripts and tests read.
    sys.stdout.write(summary.x12.text() + "\n")
    s = summary.scrub
    accepted = sum(1 for c in summary.claims if c.outcome.value == "accepted")
    sys.stdout.write(
        f"lines {s.lines_in}: accepted {s.accepted}, flagged {s.flagged}, rejected {s.rejected} "
        f"(refdata {snapshot.version}); claims {len(summary.claims)}: accepted {accepted}, "
        f"rejected {len(summary.claims) - accepted}\n"
    )
    for rule_id, n in sorted(s.findings_by_rule.items()):
        sys.stdout.write(f"  finding {rule_id}: {n}\n")


# ------------------------------------------------------------------------------- X12
@x12_app.command("serve")
def x12_serve() -> None:
    """Run the X12 intake until SIGTERM: the X12 topic's 837s to claim lines and 999s.

    A process of its own beside the worker (any number of them, one consumer group); creates
    missing topics first and serves its metrics on SCRUBBER_X12_WEB_PORT.
    """
    import signal

    from prometheus_client import start_http_server

    from scrubber.kafka import TopicError, ensure_topics
    from scrubber.metrics import IntakeMetrics
    from scrubber.stream.edge import run_x12_intake

    settings = _settings()
    try:
        _run(lambda: ensure_topics(settings))
    except TopicError as exc:
        console.print(f"[red]refusing to start:[/red] {exc}")
        raise typer.Exit(2) from exc
    metrics = IntakeMetrics()
    start_http_server(settings.x12_web_port, addr=settings.web_host, registry=metrics.registry)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_x12_intake(settings, metrics, stop)

    asyncio.run(main())


@x12_app.command("lines")
def x12_lines(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="X12 837P file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="claim lines JSONL")],
    rejects: Annotated[Path, typer.Option(help="rejected transaction sets JSONL")],
    ack: Annotated[Path | None, typer.Option(help="write the 999 (and TA1) here")] = None,
) -> None:
    """Turn an 837P file into claim lines; exit 1 when anything in it was rejected."""
    from scrubber.x12.files import convert

    data = path.read_bytes()
    with output.open("wb") as lines, rejects.open("wb") as rej:
        if ack is not None:
            with ack.open("wb") as acks:
                summary, _claims = convert(data, lines, rej, acks, datetime.now(UTC))
        else:
            summary, _claims = convert(data, lines, rej, None, datetime.now(UTC))
    sys.stdout.write(summary.text() + "\n")
    if summary.anything_rejected:
        raise typer.Exit(1)


# ------------------------------------------------------------------------------- refdata
@refdata_app.command("build")
def refdata_build(
    seeds: Annotated[Path, typer.Option(exists=True, file_okay=False)] = REPO_SEEDS,
    mpfs: Annotated[
        Path | None,
        typer.Option(
            help="PPRRVU CSV, or its gzip (default: the shipped full CY2025 October file)"
        ),
    ] = None,
    mue: Annotated[
        Path | None,
        typer.Option(
            help="NCCI practitioner MUE CSV, or its gzip (default: the shipped full 2026 Q2 table)"
        ),
    ] = None,
    ptp: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="NCCI practitioner PTP file (TXT, zip or gz); repeat for each part "
            "(default: the shipped extract)",
        ),
    ] = None,
    payers: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="payer profiles YAML (the shipped default: scrubber/refdata/payers/default.yaml); "
            "without it every payer is judged with every rule as catalogued",
        ),
    ] = None,
    icd10cm: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="CMS ICD-10-CM order file (TXT, gz or zip; the name dates it); repeat for each "
            "release (default: the shipped FY2026 April set)",
        ),
    ] = None,
    aoc: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="CMS NCCI add-on code edit workbook (xlsx or zip)"
        ),
    ] = None,
    no_cms: Annotated[bool, typer.Option("--no-cms", help="seeds only")] = False,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("build/refdata.json"),
) -> None:
    """Build a reference data bundle from the seed documents and CMS files."""
    from scrubber.refdata.build import build_bundle
    from scrubber.refdata.cms_icd10cm import default_code_set
    from scrubber.refdata.icd10cm import Icd10CodeSet
    from scrubber.refdata.inputs import DEFAULT_MPFS, DEFAULT_MUE, DEFAULT_PTP

    settings = Settings()
    code_sets: list[Path | Icd10CodeSet] = []
    if not no_cms:
        code_sets = list(icd10cm) if icd10cm else [default_code_set()]
    try:
        bundle = build_bundle(
            seeds,
            mpfs=None if no_cms else (mpfs or DEFAULT_MPFS),
            mue=None if no_cms else (mue or DEFAULT_MUE),
            ptp=() if no_cms else tuple(ptp or (DEFAULT_PTP,)),
            payers=payers,
            icd10cm=code_sets,
            aoc=aoc,
            lateness_days=settings.lateness_days,
        )
    except ValueError as exc:  # CmsFileError, PayerProfileError and file-level errors
        console.print(f"[red]refusing to build:[/red] {exc}")
        raise typer.Exit(2) from exc
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(bundle.to_json())
    edits = bundle.ptp.count if bundle.ptp else 0
    profiles = len(bundle.payers.profiles) if bundle.payers else 0
    sets = ", ".join(f"{s.name} from {s.effective_from}" for s in bundle.icd10cm) or "none"
    aoc_rows = len(bundle.aoc.rows) if bundle.aoc else 0
    out.print(
        f"bundle {bundle.version}: {len(bundle.codes)} codes, {len(bundle.modifiers)} modifiers, "
        f"{edits} NCCI PTP edits, {aoc_rows} add-on code edits, {profiles} payer profiles, "
        f"ICD-10-CM code sets: {sets}; {len(bundle.corrections)} corrections -> {output}"
    )


@refdata_app.command("lint")
def refdata_lint(
    seeds: Annotated[Path, typer.Option(exists=True, file_okay=False)] = REPO_SEEDS,
    mpfs: Annotated[
        Path | None, typer.Option(help="PPRRVU CSV (default: the shipped full file)")
    ] = None,
    mue: Annotated[
        Path | None, typer.Option(help="NCCI MUE CSV (default: the shipped full table)")
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
    for v in versions:
        if v.version == current and v.contents:
            _print_contents(v.version, v.contents)
    wt = Table(title="running workers")
    for col in ("worker", "version", "ready", "redis"):
        wt.add_column(col)
    for name, info in sorted(workers.items()):
        wt.add_row(
            name, str(info.get("version")), str(info.get("ready")), str(info.get("redis_ok"))
        )
    out.print(wt)


def _print_contents(version: str, contents: dict[str, Any]) -> None:
    """The current version's edit tables, payer profiles and ICD-10-CM code sets with dates."""
    profiles = ", ".join(contents.get("payer_profiles") or []) or "none (every rule as catalogued)"
    out.print(
        f"version {version}: {contents.get('ptp_edits', 0)} NCCI PTP edits, "
        f"{contents.get('aoc_rows', 0)} add-on code edit rows, payer profiles: {profiles}"
    )
    sets = Table(title="ICD-10-CM code sets (a line is judged by the newest in force)")
    for col in ("code set", "FY", "in force from", "until", "billable", "headers", "manif."):
        sets.add_column(col)
    for s in contents.get("icd10cm") or []:
        sets.add_row(
            str(s["name"]),
            str(s["fiscal_year"]),
            str(s["effective_from"]),
            str(s["in_force_until"] or "-"),
            f"{s['billable']:,}",
            f"{s['headers']:,}",
            f"{s['manifestation']:,}",
        )
    out.print(sets)


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
    allowed = report.selected - len(report.refused) - len(report.cut)
    out.print(
        f"selected {report.selected}; {verb} {allowed if report.dry_run else report.replayed}"
    )
    if report.refused:
        out.print(
            f"refused {len(report.refused)} that already failed {MAX_ATTEMPTS} times: "
            + ", ".join(f"{p}:{o}" for p, o in report.refused[:20])
        )
    if report.cut:
        out.print(
            f"refused {len(report.cut)} that hold only the first bytes of a message too large "
            "for the dead-letter topic (read it from its source offset): "
            + ", ".join(f"{p}:{o}" for p, o in report.cut[:20])
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
    payer: Annotated[
        str | None,
        typer.Option(help="show the rules as this payer id's profile applies them (see --refdata)"),
    ] = None,
    refdata: Annotated[
        Path, typer.Option(dir_okay=False, help="bundle whose payer profiles --payer uses")
    ] = Path("build/refdata.json"),
) -> None:
    """Print the rule catalogue: id, category, severity, CARC, description, source."""
    from scrubber.rules.catalogue import catalogue, render_markdown
    from scrubber.rules.library import default_rules

    if markdown:
        sys.stdout.write(render_markdown())
        return
    if payer is not None:
        _rules_for_payer(payer, refdata, as_json)
        return

    if as_json:
        sys.stdout.write(
            orjson.dumps(
                catalogue(),
                option=orjson.OPT_INDENT_2,
            ).decode()
            + "\n"
        )
        return
    table = Table(title="rule catalogue")
    for col in ("rule id", "category", "severity", "CARC", "description"):
        table.add_column(col)
    for r in default_rules():
        table.add_row(r.rule_id, r.category.value, r.severity.value, r.carc or "", r.description)
    out.print(table)


def _rules_for_payer(payer: str, refdata: Path, as_json: bool) -> None:
    """The catalogue as the payer's profile in a bundle applies it: on or off, and severity."""
    from scrubber.refdata.model import Bundle, ReferenceSnapshot
    from scrubber.rules.library import default_engine

    if not refdata.is_file():
        console.print(f"[red]error:[/red] no bundle at {refdata} (build one, or pass --refdata)")
        raise typer.Exit(2)
    snapshot = ReferenceSnapshot(Bundle.from_json(refdata.read_bytes()))
    engine = default_engine()
    profile = engine.profile_for(snapshot, payer)
    rows = []
    for r in engine.rules:
        disabled = profile is not None and r.rule_id in profile.disabled
        severity = profile.severity.get(r.rule_id, r.severity) if profile else r.severity
        rows.append(
            {
                "rule_id": r.rule_id,
                "category": r.category.value,
                "applies": not disabled,
                "severity": None if disabled else severity.value,
                "catalogued_severity": r.severity.value,
                "medicare_policy": r.medicare_policy,
            }
        )
    name = profile.name if profile is not None else None
    if as_json:
        doc = {"payer_id": payer, "profile": name, "refdata_version": snapshot.version}
        sys.stdout.write(orjson.dumps({**doc, "rules": rows}, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return
    title = f"rules for payer {payer}: profile {name or '(none: every rule as catalogued)'}"
    table = Table(title=title)
    for col in ("rule id", "category", "applies", "severity", "catalogued", "Medicare policy"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            str(row["rule_id"]),
            str(row["category"]),
            "yes" if row["applies"] else "no",
            str(row["severity"] or "-"),
            str(row["catalogued_severity"]),
            "yes" if row["medicare_policy"] else "",
        )
    out.print(table)


def main() -> None:
    """Console entry point."""
    app()
