"""Operator commands: ``department add``, ``certificate revoke``, ``policy show|install``.

Each talks to a running gateway with the home's admin keys and prints a
readable summary, or one JSON object with ``--json``. The work itself is
:mod:`gateway.client.operator`; see it for the exact sequence of signed
transactions each job submits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._common import DEFAULT_HOME, HomeOption, console, reporting_errors, writing_to
from cli.main import app
from cli.records import AsOption, GatewayOption, JsonOption, print_json, table
from crypto.errors import AccessLedgerError
from policies.bundle import PolicyBundle

ApproverOption = Annotated[
    list[str] | None,
    typer.Option(
        "--approver",
        help="Admin identity that approves (repeat; default: every department admin of the home).",
        show_default=False,
    ),
]

department_app = typer.Typer(
    name="department", help="Onboard departments onto the network.", no_args_is_help=True
)
certificate_app = typer.Typer(
    name="certificate", help="Revoke certificates on the channel.", no_args_is_help=True
)
policy_app = typer.Typer(
    name="policy",
    help="Show and change the anchored policy through governance.",
    no_args_is_help=True,
)
app.add_typer(department_app, name="department")
app.add_typer(certificate_app, name="certificate")
app.add_typer(policy_app, name="policy")


@department_app.command("add")
@reporting_errors
def department_add(
    org: Annotated[
        str, typer.Option("--org", help="Organisation name, e.g. Transport.", show_default=False)
    ],
    region: Annotated[
        str,
        typer.Option(
            "--region", help="Region code of its first officer, e.g. 440300.", show_default=False
        ),
    ],
    officer_role: Annotated[
        str, typer.Option("--officer-role", help="Role attribute of its first officer.")
    ] = "officer",
    approvers: ApproverOption = None,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """Create a department's CA and identities, add its MSP to the channel, approve it."""
    from gateway.client.operator import onboard_department

    report = onboard_department(
        home,
        org=org,
        region=region,
        officer_role=officer_role,
        approvers=approvers or (),
        gateway_url=gateway,
    )
    if as_json:
        print_json(report.to_dict())
        return
    out = console()
    update = report.config_update
    channel = (
        f"config update in block {update.block_number} (config sequence {update.sequence})"
        if update is not None
        else "already a channel member"
    )
    contract = (
        f"AddDepartment {report.add_department_tx[:16]}..."
        if report.add_department_tx
        else "already in the contract"
    )
    out.print(
        f"[bold green]Onboarded[/] {report.org} ({report.msp_id}): {channel}, {contract}",
        highlight=False,
    )
    out.print(f"Approved by: {', '.join(report.approved_by)}", highlight=False)
    identities = table("New identities", "name", "X25519 key registered")
    for name in report.identities:
        identities.add_row(name, "yes" if name in report.keys_registered else "")
    out.print(identities)


@certificate_app.command("revoke")
@reporting_errors
def certificate_revoke(
    identity: Annotated[
        str,
        typer.Option(
            "--identity", help="Identity whose certificate to revoke.", show_default=False
        ),
    ],
    as_name: AsOption,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """Revoke a certificate: its org's CA signs a CRL, its org's admin the config update."""
    from gateway.client.operator import revoke_certificate

    committed = revoke_certificate(
        home, identity_name=identity, admin_name=as_name, gateway_url=gateway
    )
    if as_json:
        print_json(
            {
                "revoked": identity,
                "tx_id": committed.tx_id,
                "block_number": committed.block_number,
                "sequence": committed.sequence,
            }
        )
        return
    console().print(
        f"[bold green]Revoked[/] the certificate of {identity}: config update in block"
        f" {committed.block_number} (config sequence {committed.sequence})",
        highlight=False,
    )


@certificate_app.command("renew")
@reporting_errors
def certificate_renew(
    identity: Annotated[
        str,
        typer.Option(
            "--identity", help="Identity whose signing key to rotate.", show_default=False
        ),
    ],
    as_name: AsOption,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """Rotate a signing key: issue a new key and certificate, then revoke the old certificate."""
    from gateway.client.operator import renew_certificate

    report = renew_certificate(
        home, identity_name=identity, admin_name=as_name, gateway_url=gateway
    )
    if as_json:
        print_json(report.to_dict())
        return
    console().print(
        f"[bold green]Renewed[/] {report.identity}: new certificate {report.new_serial:x},"
        f" old {report.old_serial:x} revoked in block {report.revocation.block_number}",
        highlight=False,
    )


@policy_app.command("show")
@reporting_errors
def policy_show(
    as_name: AsOption,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also write the anchored Cedar files into this directory.",
            file_okay=False,
        ),
    ] = None,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """The anchored policy version; ``--out DIR`` writes its Cedar files, to edit and install."""
    from cli.records import open_client
    from gateway.client import governance

    with open_client(home, as_name, gateway) as client:
        anchored = client.run(governance.anchored_policy(client.operations))
    summary: dict[str, object] = {
        "version": anchored.version,
        "bundle_hash": anchored.bundle_hash,
        "policies": sorted(anchored.bundle.policies),
        "record_types": sorted(anchored.bundle.catalogue.to_dict().get("types", {})),
    }
    if out_dir is not None:
        write_policy_files(anchored.bundle, out_dir)
        summary["written_to"] = str(out_dir)
    if as_json:
        print_json(summary)
        return
    out = console()
    out.print(f"Policy version {anchored.version} (bundle {anchored.bundle_hash})", highlight=False)
    files = table("Cedar policy files", "file")
    for name in summary["policies"]:  # type: ignore[attr-defined]
        files.add_row(name)
    out.print(files)


@policy_app.command("install")
@reporting_errors
def policy_install(
    policies_dir: Annotated[
        Path,
        typer.Option(
            "--policies",
            help="Directory of *.cedar files (and optionally accessledger.cedarschema).",
            file_okay=False,
            show_default=False,
        ),
    ],
    as_name: AsOption,
    approvers: ApproverOption = None,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """Anchor the next policy version: the given Cedar files, approved by a majority of admins."""
    from cli.records import open_client
    from gateway.client import governance
    from gateway.client.operator import install_policy

    with open_client(home, as_name, gateway) as client:
        anchored = client.run(governance.anchored_policy(client.operations))
    bundle = bundle_from_directory(policies_dir, base=anchored.bundle)
    result = install_policy(
        home,
        bundle=bundle.with_version(anchored.version + 1),
        approvers=[as_name, *(a for a in approvers or () if a != as_name)] if approvers else (),
        gateway_url=gateway,
    )
    if as_json:
        print_json(result)
        return
    console().print(
        f"[bold green]Installed[/] policy version {result.get('version')} in block"
        f" {result['block_number']}, approved by {', '.join(result.get('approved_by', []))}",
        highlight=False,
    )


SCHEMA_FILE = "accessledger.cedarschema"


def write_policy_files(bundle: PolicyBundle, directory: Path) -> None:
    """The bundle's Cedar schema and policy files, one file each, into ``directory``.

    A directory that cannot be made or written is one ``output_unwritable`` error naming it.
    """
    with writing_to(directory):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SCHEMA_FILE).write_text(bundle.cedar_schema, "utf-8")
        for name, text in bundle.policies.items():
            (directory / name).write_text(text, "utf-8")


def bundle_from_directory(directory: Path, *, base: PolicyBundle) -> PolicyBundle:
    """``base`` with its policies (and schema, if present) replaced by ``directory``'s files."""
    if not directory.is_dir():
        raise AccessLedgerError(f"{directory} is not a directory", code="policies_unreadable")
    files = sorted(directory.glob("*.cedar"))
    if not files:
        raise AccessLedgerError(f"{directory} holds no *.cedar file", code="policies_unreadable")
    schema_file = directory / SCHEMA_FILE
    try:
        schema = schema_file.read_text("utf-8") if schema_file.exists() else base.cedar_schema
        policies = {f.name: f.read_text("utf-8") for f in files}
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessLedgerError(
            f"cannot read the policy files in {directory}: {exc}", code="policies_unreadable"
        ) from None
    return PolicyBundle(
        version=base.version, cedar_schema=schema, policies=policies, catalogue=base.catalogue
    )
