"""``accessledger init`` and ``accessledger identities``: create and list a consortium home.

Both read ``--home`` (default ``$ACCESSLEDGER_HOME``, else ``./.accessledger``).
``init`` uses the real clock; the library underneath takes ``now`` explicitly.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from cli._common import DEFAULT_HOME, HomeOption, console, fail
from cli.main import app
from crypto.consortium import NETWORK_FILE, SECRET_FILE, Consortium, create_demo_consortium
from crypto.errors import AccessLedgerError
from crypto.identity import Identity, IdentityKind

_NO_WRAP = frozenset({"name", "kind", "count", "identities", "organisation", "MSP ID"})
_ATTRIBUTE_ORDER = {"role": 0, "region": 1, "clearance": 2}


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in columns:
        wide = column == "attributes"
        table.add_column(
            column, no_wrap=column in _NO_WRAP, overflow="fold", min_width=24 if wide else None
        )
    return table


def _shown_attributes(identity: Identity) -> str:
    # hf.* are Fabric CA's bookkeeping (enrolment ID, type); the name column shows them.
    shown = [key for key in identity.attributes if not key.startswith("hf.")]
    shown.sort(key=lambda key: (_ATTRIBUTE_ORDER.get(key, len(_ATTRIBUTE_ORDER)), key))
    return " ".join(f"{key}={identity.attributes[key]}" for key in shown)


def _summary(consortium: Consortium, console: Console) -> None:
    home = consortium.home
    console.print(f"[bold green]Created the demo consortium[/] in [bold]{home}[/]")
    orgs = _table("Organisations (one root CA and MSP each)", "organisation", "MSP ID", "domain")
    orgs.add_column("identities", justify="right")
    for org in consortium.orgs():
        members = consortium.identities(org=org.name)
        orgs.add_row(org.name, org.msp_id, org.domain, str(len(members)))
    console.print(orgs)
    counts = Counter(identity.kind for identity in consortium.identities())
    kinds = _table("Identities by kind", "kind")
    kinds.add_column("count", justify="right")
    for kind in IdentityKind:
        kinds.add_row(kind.value, str(counts.get(kind, 0)))
    kinds.add_row("[bold]total[/]", f"[bold]{sum(counts.values())}[/]")
    console.print(kinds)
    paths = _table("Files", "what", "path")
    paths.add_row("topology", str(home / NETWORK_FILE))
    paths.add_row("consortium secret (0600)", str(home / SECRET_FILE))
    paths.add_row("CAs, MSPs, keys", str(home / "orgs"))
    console.print(paths)
    console.print(f"List the identities with: accessledger identities --home {home}", markup=False)


@app.command("init")
def init_command(
    home: HomeOption = DEFAULT_HOME,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing AccessLedger home.")
    ] = False,
) -> None:
    """Create a demo consortium home: department CAs, MSPs, identities, keys, network.yaml."""
    try:
        consortium = create_demo_consortium(home, now=datetime.now(UTC), force=force)
    except AccessLedgerError as exc:
        raise fail(exc) from None
    _summary(consortium, console())


def _as_json(identity: Identity, home: Path) -> dict[str, Any]:
    return {
        "name": identity.name,
        "kind": identity.kind.value,
        "org": identity.org,
        "msp_id": identity.msp_id,
        "attributes": dict(identity.attributes),
        "msp_dir": str(home / "orgs" / identity.org / "identities" / identity.name / "msp"),
    }


@app.command("identities")
def identities_command(
    home: HomeOption = DEFAULT_HOME,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list instead of a table.")
    ] = False,
) -> None:
    """List every identity of the home: name, kind, organisation, MSP ID, attributes."""
    try:
        consortium = Consortium.load(home, public_only=True)
    except AccessLedgerError as exc:
        raise fail(exc) from None
    identities = consortium.identities()
    if as_json:
        payload = [_as_json(identity, consortium.home) for identity in identities]
        typer.echo(json.dumps(payload, indent=2))
        return
    table = _table(
        f"{len(identities)} identities in {consortium.home}",
        "name",
        "kind",
        "organisation",
        "MSP ID",
        "attributes",
    )
    for identity in identities:
        table.add_row(
            identity.name,
            identity.kind.value,
            identity.org,
            identity.msp_id,
            _shown_attributes(identity),
        )
    console().print(table)
