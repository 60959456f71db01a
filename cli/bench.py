"""``accessledger bench``: measure this machine.

:data:`bench_app` is the ``bench`` command group. Other modules add their own
benchmarks to it (``from cli.bench import bench_app``; ``@bench_app.command(...)``),
so this module only defines the group and the ``crypto`` command.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

# Defined before importing cli.main: importing cli.main auto-imports every command
# module, and a module that does `from cli.bench import bench_app` must find it
# even while this module is still half-initialised.
bench_app = typer.Typer(
    help="Measure how fast this machine runs AccessLedger's building blocks.",
    no_args_is_help=True,
)

from cli._common import progress_options  # noqa: E402
from cli.main import app  # noqa: E402
from crypto.bench import OPERATIONS, run_crypto_bench  # noqa: E402

app.add_typer(bench_app, name="bench")


@bench_app.command("crypto")
def bench_crypto(
    seconds: Annotated[
        float,
        typer.Option("--seconds", min=0.001, max=600.0, help="Seconds to run each operation for."),
    ] = 1.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object of named figures.")
    ] = False,
) -> None:
    """Operations per second: sign, verify, encrypt/decrypt a 1 KiB tier, seal, open, re-seal."""
    if as_json:
        result = run_crypto_bench(seconds=seconds)
        typer.echo(json.dumps(result.to_json(), sort_keys=False))
        return

    console = Console()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        **progress_options(),
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=len(OPERATIONS))

        def _advance(label: str) -> None:
            progress.update(task, description=f"measuring {label}")
            progress.advance(task)

        result = run_crypto_bench(seconds=seconds, on_operation=_advance)

    table = Table(title=f"bench crypto ({seconds:g} s per operation)")
    table.add_column("operation")
    table.add_column("ops/s", justify="right")
    table.add_column("µs/op", justify="right")
    for op in result.operations:
        table.add_row(op.label, f"{op.per_second:,.0f}", f"{1e6 / op.per_second:,.1f}")
    console.print(table)
    machine = result.machine
    console.print(
        f"{machine['cpu_model']}, {machine['cpu_count']} CPUs, Python {machine['python']}, "
        f"cryptography {machine['cryptography']} ({machine['openssl']}), "
        f"PyNaCl {machine['pynacl']}; {machine['measured_at']}",
        markup=False,
        highlight=False,
    )
