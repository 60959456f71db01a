"""``accessledger demo``: fill a home's ledger with synthetic migrants and their accesses.

By default the gateway runs in this process (its app over an in-memory ASGI
transport), so ``accessledger init`` + ``accessledger demo`` +
``accessledger serve`` give a newcomer a living system; every request still
goes through the SDK, the HTTP signatures and the whole API. With
``--gateway URL`` the same requests go to a running gateway instead (use
that while ``serve`` has the home open). Progress goes to stderr, the
summary to stdout.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from cli._common import DEFAULT_HOME, HomeOption, console, progress_options, reporting_errors
from cli.main import app
from cli.records import JsonOption, print_json, table
from crypto.consortium import Consortium

if TYPE_CHECKING:  # the SDK and the gateway app are imported when the command runs
    from gateway.demo.seed import DemoReport


class _Bar:
    """The seeding's phases as Rich progress tasks (one bar per phase)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def phase(self, name: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)
        self.task = self.progress.add_task(name, total=max(total, 1))

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, steps)

    def finish(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)


async def _seed(
    consortium: Consortium,
    *,
    gateway: str | None,
    people: int,
    seed: int,
    bar: _Bar,
) -> DemoReport:
    import httpx

    from gateway.client.client import DEFAULT_TIMEOUT
    from gateway.demo.inprocess import IN_PROCESS_URL, in_process_gateway
    from gateway.demo.seed import seed_demo

    options: dict[str, Any] = {
        "people": people,
        "seed": seed,
        "today": date.today(),
        "progress": bar,
    }
    if gateway is not None:
        async with httpx.AsyncClient(timeout=DEFAULT_TIMEOUT) as http:
            return await seed_demo(consortium, http, gateway.rstrip("/"), **options)
    # The operator's own seeding run: no per-identity rate limit in-process.
    async with in_process_gateway(consortium.home, rate_limit_per_minute=0) as http:
        return await seed_demo(consortium, http, IN_PROCESS_URL, **options)


def _summary(report: DemoReport, out: Console) -> None:
    data = report.to_dict()
    out.print(
        f"[bold green]Seeded[/] {report.people} people in {report.households} households"
        f" ({report.children} school-age children) in {report.elapsed_seconds:.1f} s",
        highlight=False,
    )
    records = table("Records registered", "record type", "count")
    for record_type, count in data["records"].items():
        records.add_row(record_type, str(count))
    out.print(records)
    scenarios = table("Access requests (all on the ledger)", "scenario", "decision", "count")
    for key, count in data["scenarios"].items():
        scenario, _, decision = key.partition(":")
        scenarios.add_row(scenario, decision, str(count))
    out.print(scenarios)
    people = table("Citizens (credential -> pseudonym)", "citizen", "subject")
    for name, subject in report.citizens.items():
        people.add_row(name, subject)
    out.print(people)
    out.print(
        f"Break-glass accesses open for review: {len(data['break_glass_open'])};"
        f" contested: {len(report.contested)}; consents granted: {len(report.consents)},"
        f" revoked: {len(report.revoked)}.",
        highlight=False,
    )
    out.print(
        "Next: accessledger serve, then e.g. accessledger citizen accesses --as citizen.c1",
        highlight=False,
    )


@app.command("demo")
@reporting_errors
def demo_command(
    home: HomeOption = DEFAULT_HOME,
    people: Annotated[
        int, typer.Option("--people", min=1, max=100_000, help="How many people to invent.")
    ] = 100,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: same seed, same people.")
    ] = 2024,
    gateway: Annotated[
        str | None,
        typer.Option(
            "--gateway",
            help="Seed through the gateway running at URL (default: run it in this process).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Seed synthetic migrants, their records and a realistic stream of accesses."""
    consortium = Consortium.load(home)
    with Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        **progress_options(),
    ) as progress:
        bar = _Bar(progress)
        report = asyncio.run(_seed(consortium, gateway=gateway, people=people, seed=seed, bar=bar))
        bar.finish()
    if as_json:
        print_json(report.to_dict())
    else:
        _summary(report, console())
