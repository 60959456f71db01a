"""``accessledger keys rotate-encryption|rotate-custodian``: the operator job "rotate keys".

``rotate-encryption --as NAME`` gives an officer, auditor or citizen a new
X25519 key: generated locally, registered on the ledger through the gateway
(``RegisterEncryptionKey``, signed by NAME), and only after the commit
written over ``x25519.key``; the old key is kept as ``x25519.key.previous``
(:mod:`gateway.client.keys` says why and how a crash is recovered).

``rotate-custodian --as ADMIN`` asks the gateway to rotate the custodian key
of the admin's department (or ``--org``): a new key, every stored tier key
re-sealed to it, the old key retired. Running either again after a failure
resumes it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from cli._common import DEFAULT_HOME, HomeOption, console, reporting_errors
from cli.main import app
from cli.records import AsOption, GatewayOption, JsonOption, open_client, print_json

keys_app = typer.Typer(
    name="keys",
    help="Rotate an identity's encryption key or a department's custodian key.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

OrgOption = Annotated[
    str | None,
    typer.Option(
        "--org",
        help="Department whose custodian key to rotate (default: the admin's own).",
        show_default=False,
    ),
]
BatchOption = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        max=10_000,
        help="Sealed keys re-sealed per store transaction (default: the gateway's).",
        show_default=False,
    ),
]


@keys_app.command("rotate-encryption")
@reporting_errors
def rotate_encryption(
    name: AsOption,
    home: HomeOption = DEFAULT_HOME,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Generate a new X25519 key for NAME, register it on the ledger, then switch to it."""
    from gateway.client import rotate_encryption_key

    with open_client(home, name, gateway) as client:
        rotation = rotate_encryption_key(home, name, client)
    if as_json:
        out = asdict(rotation)
        out["previous_key_file"] = str(rotation.previous_key_file)
        print_json(out)
        return
    console().print(
        f"{name}: encryption key {rotation.old_key_id} -> {rotation.new_key_id}, registered in"
        f" block {rotation.block_number} (tx {rotation.tx_id[:16]}...); previous key kept in"
        f" {rotation.previous_key_file}",
        markup=False,
        highlight=False,
    )


@keys_app.command("rotate-custodian")
@reporting_errors
def rotate_custodian(
    name: AsOption,
    home: HomeOption = DEFAULT_HOME,
    org: OrgOption = None,
    batch_size: BatchOption = None,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rotate the custodian key of a department (signed by its admin NAME) via the gateway."""
    with open_client(home, name, gateway) as client:
        department = org or client.operations.identity.org
        rotation = client.rotate_custodian_key(department, batch_size=batch_size)
    if as_json:
        out = asdict(rotation)
        del out["raw"]
        print_json(out)
        return
    resumed = " (finished an interrupted rotation)" if rotation.resumed else ""
    console().print(
        f"{rotation.org}: custodian key {rotation.old_key_id} -> {rotation.new_key_id},"
        f" {rotation.resealed} sealed key(s) re-sealed{resumed}, finished {rotation.finished_at}",
        markup=False,
        highlight=False,
    )


__all__ = ["keys_app", "rotate_custodian", "rotate_encryption"]
