"""``accessledger bench policy``: Cedar decisions per second, single and batched.

Registered on the ``bench`` group of :mod:`cli.bench`; the workload is
described in :mod:`policies.bench`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from cli._common import console, reporting_errors
from cli.bench import bench_app
from policies.bench import run_policy_bench


@bench_app.command("policy")
@reporting_errors
def bench_policy(
    decisions: Annotated[
        int, typer.Option("--decisions", min=1, max=1_000_000, help="Decisions per mode.")
    ] = 2000,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=10_000, help="Records per batched call.")
    ] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object of named figures.")
    ] = False,
) -> None:
    """Policy decisions per second for single and batched Cedar evaluation."""
    result = run_policy_bench(decisions=decisions, batch=batch)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table(title="bench policy", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("mode")
    table.add_column("decisions/s", justify="right")
    table.add_row("single (one Cedar call per record)", f"{result.single_per_s:,.0f}")
    table.add_row(f"batched ({result.batch} records per call)", f"{result.batched_per_s:,.0f}")
    out = console()
    out.print(table)
    out.print(f"{result.decisions:,} decisions per mode, {result.allowed_share:.0%} permitted")
