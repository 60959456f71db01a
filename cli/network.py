"""``accessledger network ...``: the network topology and the Fabric artefacts derived from it.

``network artefacts`` writes what an operator needs to run the same
consortium on Hyperledger Fabric (configtx.yaml, connection profiles, the
channel genesis block), derived from the home's ``network.yaml``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cli._common import DEFAULT_HOME, HomeOption, reporting_errors, writing_to
from cli.main import app
from network.artefacts import write_artefacts
from network.topology import Topology

network_app = typer.Typer(
    name="network",
    help="The network topology and the Fabric artefacts generated from it.",
    no_args_is_help=True,
)
app.add_typer(network_app, name="network")


@network_app.command("artefacts")
@reporting_errors
def artefacts_command(
    out: Annotated[
        Path,
        typer.Option("--out", help="Directory to write the artefacts into.", file_okay=False),
    ],
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """Write configtx.yaml, per-department connection profiles and the channel genesis block."""
    topology = Topology.load(home / "network.yaml")
    with writing_to(out):
        written = write_artefacts(topology, home, out, now=datetime.now(UTC))
    for path in written:
        typer.echo(str(path))
