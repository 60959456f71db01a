"""``accessledger ledger ...``: inspect and export the embedded engine's ledger.

``ledger export`` writes every committed block as length-delimited
``common.Block`` messages -- the framing of Fabric's own block streams and of
the Fabric fixture ``ledger.bin`` -- for auditors to replay independently.
``ledger info`` shows the height and the tip. Both verify the stored hash
chain first and refuse a ledger that does not verify.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from cli._common import DEFAULT_HOME, HomeOption, console, reporting_errors
from cli.main import app
from network.engine.network import export_ledger, open_ledger
from network.engine.statedb import StateDB
from network.fabric.blocks import last_config_index, parse_block, transactions_filter
from network.fabric.transactions import parse_envelope
from network.fabric.validator import code_name

ledger_app = typer.Typer(
    name="ledger",
    help="The embedded ledger: its height and tip, and export for independent audit.",
    no_args_is_help=True,
)
app.add_typer(ledger_app, name="ledger")


def ledger_info(store: StateDB) -> dict[str, Any]:
    """Height, tip hash and a summary of the tip block."""
    height = store.height
    tip_number = height - 1
    tip = parse_block(store.get_block(tip_number) or b"")
    codes = [code_name(c) for c in transactions_filter(tip)]
    first = parse_envelope(bytes(tip.data.data[0])) if tip.data.data else None
    return {
        "path": str(store.path),
        "channel": first.channel_id if first else "",
        "height": height,
        "tip_block": tip_number,
        "tip_hash": store.tip_hash.hex(),
        "tip_data_hash": bytes(tip.header.data_hash).hex(),
        "tip_transactions": len(tip.data.data),
        "tip_validation_codes": {code: codes.count(code) for code in sorted(set(codes))},
        "tip_time": first.timestamp.isoformat() if first and first.timestamp else None,
        "last_config_block": last_config_index(tip),
    }


@ledger_app.command("info")
@reporting_errors
def info_command(
    home: HomeOption = DEFAULT_HOME,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the ledger's height and tip block (after verifying the hash chain)."""
    with open_ledger(home) as store:
        info = ledger_info(store)
    if as_json:
        typer.echo(json.dumps(info))
        return
    table = Table(title="Ledger", title_justify="left", box=box.SIMPLE_HEAD, show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    codes = ", ".join(f"{n} {code}" for code, n in info["tip_validation_codes"].items())
    for field, value in (
        ("channel", info["channel"]),
        ("height", str(info["height"])),
        ("tip block", str(info["tip_block"])),
        ("tip hash", info["tip_hash"]),
        ("tip transactions", f"{info['tip_transactions']} ({codes})"),
        ("tip time", info["tip_time"] or "-"),
        ("last config block", str(info["last_config_block"])),
        ("file", info["path"]),
    ):
        table.add_row(field, value)
    console().print(table)


@ledger_app.command("export")
@reporting_errors
def export_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="File to write (length-delimited common.Block messages).", dir_okay=False
        ),
    ],
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """Export every committed block for independent replay (Fabric block-stream framing)."""
    with open_ledger(home) as store:
        count = export_ledger(store, out)
        tip = store.tip_hash.hex()
    typer.echo(f"exported {count} blocks to {out} (height {count}, tip hash {tip})")
