"""``accessledger audit ...`` and ``accessledger bench replay``: independent verification.

``audit replay`` verifies a ledger from its genesis block to its tip --
from a home's engine store (``--home``), an export file (``--export``) or a
gateway's audit endpoint (``--gateway``) -- and prints a summary; ``--report``
writes the full JSON report. The exit status is 0 only when everything
verifies; otherwise the last line says what failed first. ``audit export``
replays the same way and writes the verified access events as a FHIR R4
Bundle of AuditEvent resources or as CSV.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Generator
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from audit.anomalies import AnomalySettings
from audit.bench import machine, replay_in_child
from audit.errors import AuditFailedError, AuditInputError
from audit.exports import csv_text, fhir_bundle
from audit.generate import LedgerSpec, generate_ledger
from audit.pipeline import default_workers
from audit.replay import ReplayConfig, ReplayOutcome, replay_ledger
from audit.sources import BlockSource, ExportSource, GatewaySource, HomeSource
from cli._common import (
    DEFAULT_HOME,
    console,
    progress_options,
    reporting_errors,
    writing_to,
)
from cli.bench import bench_app
from cli.main import app
from crypto.consortium import Consortium, create_demo_consortium
from crypto.identity import Identity
from gateway.auth import sign_request

audit_app = typer.Typer(
    name="audit",
    help="Replay and verify the ledger independently; export access events.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

HomeSourceOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Replay this home's engine ledger and compare its state "
        "(default when no source is given: $ACCESSLEDGER_HOME or ./.accessledger).",
        file_okay=False,
    ),
]
ExportOption = Annotated[
    Path | None,
    typer.Option(
        "--export", help="Replay a block file written by `ledger export`.", dir_okay=False
    ),
]
GatewayOption = Annotated[
    str | None,
    typer.Option("--gateway", help="Replay blocks streamed from a gateway (GET /v1/audit/blocks)."),
]
IdentityOption = Annotated[
    str | None,
    typer.Option("--as", help="With --gateway: sign requests as this identity (an auditor)."),
]
IdentityHomeOption = Annotated[
    Path | None,
    typer.Option(
        "--identity-home",
        help="Home holding the keys of the --as identity (default: the usual home).",
        file_okay=False,
    ),
]
ChaincodeOption = Annotated[
    str | None,
    typer.Option("--chaincode", help="AccessLedger's chaincode name (default: from network.yaml)."),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers", min=0, help="Signature-verification processes (default: one per CPU)."
    ),
]


def _default_home() -> Path:
    return Path(os.environ.get("ACCESSLEDGER_HOME") or DEFAULT_HOME)


class _SignedRequests(httpx.Auth):
    """Signs each request to the gateway as the auditor (RFC 9421, docs/authentication.md).

    Only the client half of the scheme is used: the auditor proves who asks;
    nothing the gateway returns is trusted beyond the blocks it streams.
    """

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        signed = sign_request(
            request.method,
            str(request.url),
            {},
            request.content,
            identity=self.identity,
            now=datetime.now(UTC),
        )
        request.headers.update(signed)
        yield request


def _source(
    home: Path | None,
    export: Path | None,
    gateway: str | None,
    identity: str | None = None,
    identity_home: Path | None = None,
) -> BlockSource:
    chosen = [s for s in (home, export, gateway) if s is not None]
    if len(chosen) > 1:
        raise AuditInputError("choose one of --home, --export and --gateway")
    if export is not None:
        return ExportSource(export)
    if gateway is not None:
        auth = None
        if identity is not None:
            consortium = Consortium.load(identity_home or _default_home())
            auth = _SignedRequests(consortium.identity(identity))
        return GatewaySource(gateway, auth=auth)
    home = home or _default_home()
    return HomeSource(home)


def _hours(text: str) -> tuple[time, time]:
    try:
        start, end = (time.fromisoformat(part) for part in text.split("-"))
    except ValueError:
        raise AuditInputError(f"--work-hours must look like 08:00-20:00, not {text!r}") from None
    if start >= end:
        raise AuditInputError("--work-hours must start before they end")
    return start, end


def _zone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows; an input error otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise AuditInputError(
            f"--timezone {name!r} is not a known IANA time zone, e.g. Asia/Shanghai"
        ) from None
    return name


def _run(source: BlockSource, config: ReplayConfig) -> ReplayOutcome:
    with contextlib.ExitStack() as stack:
        total = None
        if isinstance(source, HomeSource):
            total = stack.enter_context(source).height
        with Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[txs]:,} txs"),
            TimeElapsedColumn(),
            **progress_options(),
            transient=True,
        ) as progress:
            task = progress.add_task("verifying blocks", total=total, txs=0)

            def advance(blocks: int, transactions: int) -> None:
                progress.update(task, completed=blocks, txs=transactions)

            return replay_ledger(source, config, now=datetime.now(UTC), progress=advance)


def _config(
    chaincode: str | None,
    workers: int | None,
    stores: Path | None,
    key_releases: list[Path] | None,
    note_releases: list[Path] | None,
    expect_tip: str | None,
    timezone: str,
    work_hours: str,
    review_days: int,
) -> ReplayConfig:
    start, end = _hours(work_hours)
    return ReplayConfig(
        chaincode=chaincode,
        workers=default_workers() if workers is None else workers,
        stores=stores,
        key_releases=tuple(key_releases or ()),
        note_releases=tuple(note_releases or ()),
        expected_tip=expect_tip,
        anomalies=AnomalySettings(
            timezone=_zone(timezone), work_start=start, work_end=end, review_days=review_days
        ),
    )


StoresOption = Annotated[
    Path | None,
    typer.Option(
        "--stores", help="Directory of off-chain stores (<Org>.sqlite) to check.", file_okay=False
    ),
]
KeyReleaseOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--key-releases", help="Key-release log (JSON lines) to trace; repeatable.", dir_okay=False
    ),
]
NoteReleaseOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--note-releases",
        help="Note-release log (JSON lines) to trace; repeatable (default: those of --home).",
        dir_okay=False,
    ),
]
TipOption = Annotated[
    str | None,
    typer.Option("--expect-tip", help="Hex header hash the last block must have (from a peer)."),
]
TimezoneOption = Annotated[
    str, typer.Option("--timezone", help="Time zone of working hours for off-hours flags.")
]
HoursOption = Annotated[str, typer.Option("--work-hours", help="Working hours, e.g. 08:00-20:00.")]
ReviewDaysOption = Annotated[
    int,
    typer.Option("--review-days", min=1, help="Days within which break-glass must be reviewed."),
]


@audit_app.command("replay")
@reporting_errors
def replay_command(
    home: HomeSourceOption = None,
    export: ExportOption = None,
    gateway: GatewayOption = None,
    identity: IdentityOption = None,
    identity_home: IdentityHomeOption = None,
    stores: StoresOption = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the JSON report here.", dir_okay=False)
    ] = None,
    key_releases: KeyReleaseOption = None,
    note_releases: NoteReleaseOption = None,
    chaincode: ChaincodeOption = None,
    workers: WorkersOption = None,
    expect_tip: TipOption = None,
    timezone: TimezoneOption = "Asia/Shanghai",
    work_hours: HoursOption = "08:00-20:00",
    review_days: ReviewDaysOption = 7,
) -> None:
    """Verify the ledger from genesis to tip; exit 0 only if everything verifies."""
    config = _config(
        chaincode,
        workers,
        stores,
        key_releases,
        note_releases,
        expect_tip,
        timezone,
        work_hours,
        review_days,
    )
    outcome = _run(_source(home, export, gateway, identity, identity_home), config)
    if report is not None:
        with writing_to(report):
            outcome.report.write_json(report)
    outcome.report.render(console())
    if not outcome.report.ok:
        raise AuditFailedError(outcome.report.summary_line())


class ExportFormat(StrEnum):
    FHIR = "fhir"
    CSV = "csv"


@audit_app.command("export")
@reporting_errors
def export_command(
    export_format: Annotated[ExportFormat, typer.Option("--format", help="fhir or csv.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here (default: stdout).", dir_okay=False)
    ] = None,
    home: HomeSourceOption = None,
    export: ExportOption = None,
    gateway: GatewayOption = None,
    identity: IdentityOption = None,
    identity_home: IdentityHomeOption = None,
    chaincode: ChaincodeOption = None,
    workers: WorkersOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Export even if the ledger does not verify.")
    ] = False,
) -> None:
    """Write the ledger's access events as a FHIR R4 Bundle of AuditEvents, or as CSV."""
    source = _source(home, export, gateway, identity, identity_home)
    config = _config(chaincode, workers, None, None, None, None, "Asia/Shanghai", "08:00-20:00", 7)
    outcome = _run(source, config)
    if not outcome.report.ok and not force:
        raise AuditFailedError(
            "refusing to export events of a ledger that does not verify "
            f"(--force overrides): {outcome.report.summary_line()}"
        )
    if export_format is ExportFormat.FHIR:
        bundle = fhir_bundle(outcome.events, channel=outcome.channel, now=datetime.now(UTC))
        text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    else:
        text = csv_text(outcome.events)
    if out is None:
        sys.stdout.write(text)
    else:
        with writing_to(out):
            out.write_text(text, encoding="utf-8", newline="")
        Console(stderr=True).print(f"wrote {len(outcome.events)} access events to {out}")


@bench_app.command("replay")
@reporting_errors
def bench_replay(
    transactions: Annotated[
        int, typer.Option("--transactions", min=1, help="Transactions to generate.")
    ] = 100_000,
    per_block: Annotated[
        int, typer.Option("--per-block", min=1, help="Transactions per block.")
    ] = 500,
    ledger: Annotated[
        Path | None,
        typer.Option(
            "--ledger", help="Replay this block file instead of generating one.", dir_okay=False
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Keep the generated ledger here.", dir_okay=False),
    ] = None,
    workers: Annotated[
        list[int] | None, typer.Option("--workers", min=0, help="Worker counts to compare.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Generate a signed ledger and time `audit replay` of it (transactions/s, peak memory)."""
    counts = workers or sorted({0, default_workers()})
    generated = None
    with tempfile.TemporaryDirectory(prefix="accessledger-bench-") as scratch:
        path = ledger
        if path is None:
            path = out or Path(scratch) / "ledger.bin"
            home = Path(scratch) / "home"
            now = datetime.now(UTC).replace(microsecond=0)
            create_demo_consortium(home, now=now)
            spec = LedgerSpec(
                home, transactions, per_block, max(10_000, per_block), now + timedelta(minutes=1)
            )
            clock = datetime.now(UTC)
            with Progress(
                TextColumn("generating"),
                BarColumn(),
                TextColumn("{task.completed:,} txs"),
                TimeElapsedColumn(),
                **progress_options(),
                transient=True,
            ) as bar:
                task = bar.add_task("generate", total=transactions)
                with writing_to(path):
                    result = generate_ledger(
                        path,
                        spec,
                        workers=default_workers(),
                        on_block=lambda _n, txs: bar.update(task, completed=txs),
                    )
            generated = {
                "transactions": result.transactions,
                "blocks": result.blocks,
                "bytes": result.bytes,
                "seconds": round((datetime.now(UTC) - clock).total_seconds(), 1),
            }
        runs = [replay_in_child(path, count) for count in counts]
    about = machine()
    figures = {"machine": about, "generated": generated, "runs": [r.to_json() for r in runs]}
    if as_json:
        typer.echo(json.dumps(figures))
        return
    table = Table(title=f"bench replay ({runs[0].transactions:,} transactions)")
    for column in ("workers", "seconds", "tx/s", "signatures", "peak RSS MB", "workers RSS MB"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(
            str(run.workers),
            f"{run.seconds:,.1f}",
            f"{run.transactions_per_second:,.0f}",
            f"{run.signatures:,}",
            f"{run.peak_rss_mb:,.0f}",
            f"{run.workers_peak_rss_mb:,.0f}",
        )
    output = console()
    output.print(table)
    output.print(
        f"{about['cpu_model']}, {about['cpu_count']} CPUs, Python {about['python']}; "
        f"{about['measured_at']}",
        markup=False,
        highlight=False,
    )
