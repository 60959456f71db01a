"""``accessledger version``."""

from __future__ import annotations

from importlib.metadata import version as _dist_version

import typer

from cli.main import app


@app.command("version")
def version_command() -> None:
    """Print the installed AccessLedger version."""
    typer.echo(_dist_version("accessledger"))
