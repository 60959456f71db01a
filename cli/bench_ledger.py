"""``accessledger bench ledger``: committed transactions per second of the embedded engine.

Registered on the ``bench`` group of :mod:`cli.bench`; the workload and what
is measured are described in :mod:`network.bench`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from cli._common import reporting_errors
from cli.bench import bench_app
from network.bench import run_ledger_bench


@bench_app.command("ledger")
@reporting_errors
def bench_ledger(
    txs: Annotated[
        int, typer.Option("--txs", min=1, max=1_000_000, help="Transactions to measure.")
    ] = 5000,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=10_000, help="Orderer MaxMessageCount.")
    ] = 100,
    profile_txs: Annotated[
        int | None,
        typer.Option(
            "--profile-txs", min=0, help="Transactions in the profiled run (0: no profile)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object of named figures.")
    ] = False,
) -> None:
    """Committed tx/s and commit latency of put-state transactions with two endorsements."""
    err = Console(stderr=True)
    result = run_ledger_bench(
        txs=txs,
        batch=batch,
        profile_txs=profile_txs,
        on_phase=None if as_json else (lambda text: err.print(f"[dim]{text}...[/]")),
    )
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    out = Console()
    figures = Table(title="bench ledger", title_justify="left", box=box.SIMPLE_HEAD)
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    for label, value in (
        ("committed transactions", f"{result.txs:,}"),
        ("committed tx/s", f"{result.tx_per_s:,.0f}"),
        ("commit latency p50", f"{result.p50_ms:,.1f} ms"),
        ("commit latency p99", f"{result.p99_ms:,.1f} ms"),
        ("blocks", f"{result.blocks:,} (mean {result.mean_block_txs:g} tx)"),
        ("endorsements per tx", str(result.endorsements)),
        ("concurrent clients", str(result.concurrency)),
    ):
        figures.add_row(label, value)
    out.print(figures)
    if result.phases:
        phases = Table(
            title="where the time goes (share of profiled time)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        phases.add_column("phase")
        phases.add_column("share", justify="right")
        for label, share in result.phases.items():
            phases.add_row(label, f"{share:.0%}")
        out.print(phases)
        top = Table(
            title="profile: top functions by own time", title_justify="left", box=box.SIMPLE_HEAD
        )
        top.add_column("function", overflow="fold")
        top.add_column("calls", justify="right")
        top.add_column("own s", justify="right")
        top.add_column("share", justify="right")
        for item in result.profile_top:
            top.add_row(item.function, f"{item.calls:,}", f"{item.self_s:.3f}", f"{item.share:.0%}")
        out.print(top)
    machine = result.machine
    out.print(
        f"{machine['cpu_model']}, {machine['cpu_count']} CPUs, Python {machine['python']}, "
        f"cryptography {machine['cryptography']}; {machine['measured_at']}",
        markup=False,
        highlight=False,
    )
