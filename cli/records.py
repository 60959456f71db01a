"""``accessledger record put|get|erase``: register, ask for or erase a record, as an identity.

All talk to a running gateway (``--gateway URL``, default the home's
``network.yaml`` ``gateway.url``) through the Python SDK, signing as the
identity named by ``--as`` from the home. ``record get`` puts the signed
request on the ledger whatever the decision, then prints the decision and
the granted fields, decrypted locally. ``record erase`` commits ``EraseRecord``
and the gateway crypto-shreds the record; a ``--reason`` goes on the ledger
only as its SHA-256. ``--json`` prints one JSON object.

The helpers at the top are shared with ``cli/citizen.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from cli._common import DEFAULT_HOME, HomeOption, console, reporting_errors
from cli.main import app
from crypto.errors import AccessLedgerError
from policies.strictjson import DuplicateMember, loads_strict
from policies.vocabulary import TIERS

if TYPE_CHECKING:  # the SDK is imported when a command runs, not at CLI start-up
    from gateway.client import AccessResult, Client, ErasureReceipt, RecordReceipt
    from policies.catalogue import Catalogue

AsOption = Annotated[
    str,
    typer.Option(
        "--as",
        help="Identity to act as (a name from `accessledger identities`).",
        show_default=False,
    ),
]
GatewayOption = Annotated[
    str | None,
    typer.Option(
        "--gateway",
        envvar="ACCESSLEDGER_GATEWAY_URL",
        help="Gateway URL (default: the home's network.yaml gateway.url).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]

record_app = typer.Typer(
    name="record",
    help="Register records and request access to them through the gateway, as an identity.",
    no_args_is_help=True,
)
app.add_typer(record_app, name="record")


def open_client(home: Path, name: str, gateway: str | None) -> Client:
    """The SDK client of identity ``name`` of ``home``, for ``gateway`` or the configured one."""
    from gateway.client import Client

    return Client.from_home(home, name, gateway_url=gateway)


def print_json(value: Any) -> None:
    """One JSON document on stdout, UTF-8 (names stay readable)."""
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False))


def shown(value: Any) -> str:
    """A field value as one table cell."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def table(title: str, *columns: str) -> Table:
    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in columns:
        out.add_column(column, overflow="fold")
    return out


def parse_tier(text: str) -> str:
    """``2`` or ``T2`` -> ``T2``; anything else is one readable error."""
    tier = text.strip().upper()
    tier = tier if tier.startswith("T") else f"T{tier}"
    if tier not in TIERS:
        raise AccessLedgerError(
            f"--tier must be 0, 1, 2 or 3 (or T0..T3), not {text!r}", code="tier_invalid"
        )
    return tier


class _NotJSONConstant(Exception):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, JSON has no such thing."""

    def __init__(self, constant: str) -> None:
        super().__init__(constant)
        self.constant = constant


def _no_constant(constant: str) -> Any:
    raise _NotJSONConstant(constant)


def read_payload(path: Path) -> dict[str, Any]:
    """The record's fields from a JSON file (``-`` reads standard input).

    The file must be one strict JSON object: no member named twice, no
    ``NaN``/``Infinity``, and nested no deeper than the parser can follow;
    anything else is one readable error naming the file.
    """
    try:
        text = (
            typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text("utf-8")
        )
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise AccessLedgerError(
            f"cannot read {path}: {reason}", code="payload_unreadable"
        ) from None
    try:
        # The contract's parser refuses repeated members (chaincode.codec); "last one wins"
        # would silently register a value the author may not have meant.
        payload = loads_strict(text, parse_constant=_no_constant)
    except DuplicateMember as exc:
        where = ".".join(str(part) for part in exc.path[:-1])
        place = f" (in {where})" if where else ""
        raise AccessLedgerError(
            f"{path} names the member {exc.path[-1]!r} twice in one object{place}",
            code="payload_duplicate_member",
        ) from None
    except _NotJSONConstant as exc:
        raise AccessLedgerError(
            f"{path} is not JSON: {exc.constant} is not a JSON number", code="payload_not_json"
        ) from None
    except RecursionError:
        raise AccessLedgerError(
            f"{path} is nested too deeply to read", code="payload_too_deep"
        ) from None
    except ValueError as exc:
        raise AccessLedgerError(
            f"{path} is not JSON (line {getattr(exc, 'lineno', '?')}): {exc}",
            code="payload_not_json",
        ) from None
    if not isinstance(payload, dict):
        raise AccessLedgerError(
            f"{path} must hold one JSON object: the record's fields", code="payload_not_object"
        )
    return payload


def _print_receipt(receipt: RecordReceipt, out: Console) -> None:
    out.print(
        f"[bold green]Registered[/] {receipt.record_type} [bold]{receipt.record_id}[/]"
        f" v{receipt.version} in block {receipt.block_number}",
        highlight=False,
    )
    facts = table("", "", "")
    facts.show_header = False
    for key in ("owner_org", "region", "subject", "schema_version", "tx_id"):
        facts.add_row(key, str(getattr(receipt, key)))
    for tier, ref in receipt.tiers.items():
        facts.add_row(f"{tier} ciphertext", f"{ref['content_address']} ({ref['size']} bytes)")
    out.print(facts)


def print_access(result: AccessResult, out: Console, catalogue: Catalogue | None = None) -> None:
    """The decision, then each record's outcome, then each granted record's fields."""
    colour = {"granted": "green", "partial": "yellow", "denied": "red"}.get(result.decision, "")
    out.print(
        f"Decision: [bold {colour}]{result.decision}[/] (policy v{result.policy_version},"
        f" block {result.block_number}, event {result.event_id})",
        highlight=False,
    )
    if result.obligations:
        out.print(f"Obligations: {', '.join(result.obligations)}", highlight=False)
    outcome = table("Records", "record", "type", "owner", "outcome", "tiers / reason")
    for record in result.records:
        detail = " ".join(record.tiers) if record.granted else (record.reason or "")
        outcome.add_row(
            record.record_id,
            record.record_type or "",
            record.owner_org or "",
            "granted" if record.granted else "denied",
            detail,
        )
    out.print(outcome)
    if catalogue is None:
        from policies.catalogue import Catalogue

        catalogue = Catalogue.load_default()
    for record in result.granted:
        tiers: dict[str, str] = {}
        if record.record_type:
            try:
                version = catalogue.latest_version(record.record_type)
                tiers = catalogue.field_tiers(record.record_type, version)
            except AccessLedgerError:
                tiers = {}
        fields = table(
            f"{record.record_type} {record.record_id} (decrypted)", "field", "tier", "value"
        )
        for name in sorted(record.fields, key=lambda n: (tiers.get(n, "T9"), n)):
            fields.add_row(name, tiers.get(name, ""), shown(record.fields[name]))
        out.print(fields)
    if result.granted:
        out.print(f"The grant expires at {result.expires_at}.", highlight=False)


@record_app.command("put")
@reporting_errors
def put_command(
    as_name: AsOption,
    record_type: Annotated[
        str, typer.Option("--type", help="Record type, e.g. residence_permit.", show_default=False)
    ],
    subject: Annotated[
        str,
        typer.Option(
            "--subject",
            help="The person's 18-character resident identity number (or a ps1: pseudonym).",
            show_default=False,
        ),
    ],
    file: Annotated[
        Path,
        typer.Option(
            "--file", help="JSON file with the record's fields ('-' for stdin).", show_default=False
        ),
    ],
    record_id: Annotated[
        str | None, typer.Option("--record-id", help="Record id (default: generated).")
    ] = None,
    home: HomeOption = DEFAULT_HOME,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a record: the gateway validates, encrypts and stores it; you sign it in."""
    fields = read_payload(file)
    with open_client(home, as_name, gateway) as client:
        receipt = client.put_record(record_type, subject, fields, record_id=record_id)
    if as_json:
        print_json(receipt.to_dict())
    else:
        _print_receipt(receipt, console())


@record_app.command("get")
@reporting_errors
def get_command(
    as_name: AsOption,
    subject: Annotated[
        str,
        typer.Option(
            "--subject",
            help="The person's identity number (pseudonymised locally) or ps1: pseudonym.",
            show_default=False,
        ),
    ],
    tier: Annotated[str, typer.Option("--tier", help="Highest tier wanted: 0-3.")],
    purpose: Annotated[
        str, typer.Option("--purpose", help="Purpose, e.g. school_enrolment.", show_default=False)
    ],
    record_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="Record type to ask for (repeatable).", show_default=False),
    ] = None,
    record_id: Annotated[
        list[str] | None,
        typer.Option("--record-id", help="A specific record (repeatable).", show_default=False),
    ] = None,
    case_ref: Annotated[
        str | None, typer.Option("--case-ref", help="Case reference, where the purpose needs one.")
    ] = None,
    emergency: Annotated[
        bool, typer.Option("--emergency", help="Break-glass: permitted, flagged, reviewed.")
    ] = False,
    justification: Annotated[
        str | None,
        typer.Option(
            "--justification",
            help="Why break-glass (stored encrypted for auditors; the ledger holds its hash).",
        ),
    ] = None,
    home: HomeOption = DEFAULT_HOME,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask for a person's records at a tier for a purpose; print the decision and granted fields."""
    if not record_type and not record_id:
        raise AccessLedgerError("name at least one --type or --record-id", code="request_invalid")
    if emergency and not justification:
        raise AccessLedgerError(
            "--emergency needs --justification TEXT", code="justification_required"
        )
    if justification and not emergency:
        raise AccessLedgerError(
            "--justification is only for --emergency requests", code="request_invalid"
        )
    wanted = parse_tier(tier)
    with open_client(home, as_name, gateway) as client:
        result = client.request_access(
            subject,
            record_type or None,
            wanted,
            purpose,
            record_ids=record_id or None,
            case_ref=case_ref,
            emergency=emergency,
            justification=justification,
        )
    if as_json:
        print_json(result.to_dict())
    else:
        print_access(result, console())


def _print_erasure(receipt: ErasureReceipt, out: Console) -> None:
    out.print(
        f"[bold red]Erased[/] record [bold]{receipt.record_id}[/] ({receipt.owner_org},"
        f" v{receipt.version}) in block {receipt.block_number}; its keys and ciphertexts are"
        " destroyed, the ledger keeps its hashes and access history.",
        highlight=False,
    )
    facts = table("", "", "")
    facts.show_header = False
    for key in ("erased_at", "tx_id", "reason_hash"):
        facts.add_row(key, str(getattr(receipt, key) or "-"))
    out.print(facts)


@record_app.command("erase")
@reporting_errors
def erase_command(
    as_name: AsOption,
    record_id: Annotated[
        str, typer.Option("--record-id", help="The record to erase.", show_default=False)
    ],
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Why (only its SHA-256 goes on the ledger; the text is kept nowhere).",
            show_default=False,
        ),
    ] = None,
    home: HomeOption = DEFAULT_HOME,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Erase a record (PIPL Art. 47): a registrar or admin of its owning department."""
    if reason is not None and not reason.strip():
        raise AccessLedgerError("--reason must not be empty", code="request_invalid")
    with open_client(home, as_name, gateway) as client:
        receipt = client.erase_record(record_id, reason)
    if as_json:
        print_json(receipt.to_dict())
    else:
        _print_erasure(receipt, console())
