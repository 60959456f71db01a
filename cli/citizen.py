"""``accessledger citizen accesses|consent|contest|notes``: a citizen's view of their data.

A citizen acts with their CivilAffairs credential (``--as citizen.c1``),
bound on the ledger to their pseudonym. ``accesses`` lists every access
event about them -- who, when, why, which records, granted or denied;
``consent`` grants, revokes or lists consents; ``contest`` disputes an
access, which reopens its review for the auditors; ``notes`` shows the free
text about one access to them -- a break-glass justification, their contest
reasons, the auditors' review notes -- decrypted locally and checked against
the hashes the ledger holds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Console

from cli._common import DEFAULT_HOME, HomeOption, console, reporting_errors
from cli.main import app
from cli.records import (
    AsOption,
    GatewayOption,
    JsonOption,
    open_client,
    parse_tier,
    print_json,
    table,
)
from crypto.errors import AccessLedgerError

citizen_app = typer.Typer(
    name="citizen",
    help="What a citizen can do: see every access to their data, consent, contest.",
    no_args_is_help=True,
)
app.add_typer(citizen_app, name="citizen")


def _records(access: dict[str, Any]) -> str:
    parts = []
    for record in access.get("records", []):
        kind = record.get("record_type") or record.get("record_id")
        if record.get("granted"):
            parts.append(f"{kind}: granted {'/'.join(record.get('tiers') or [])}")
        else:
            parts.append(f"{kind}: denied ({record.get('reason')})")
    return "\n".join(parts)


def _print_accesses(subject: str, accesses: list[dict[str, Any]], out: Console) -> None:
    out.print(f"{len(accesses)} access(es) to the data of [bold]{subject}[/]", highlight=False)
    listing = table("", "when", "who", "purpose", "tier", "decision", "records", "review", "event")
    for access in accesses:
        officer = access.get("officer", {})
        who = f"{officer.get('org')}: {officer.get('name')}"
        if officer.get("role"):
            who += f" ({officer['role']})"
        purpose = access.get("purpose", "")
        if access.get("case_ref"):
            purpose += f" [{access['case_ref']}]"
        if access.get("emergency"):
            purpose += " BREAK-GLASS"
        review = access.get("review", {})
        status = review.get("status", "none")
        if review.get("contests"):
            status += f", contested x{review['contests']}"
        when = str(access.get("decided_at", ""))
        listing.add_row(
            when[:19].replace("T", " ") + ("Z" if when else ""),
            who,
            purpose,
            access.get("tier", ""),
            access.get("decision", ""),
            _records(access),
            status,
            access.get("event_id", ""),
        )
    out.print(listing)


@citizen_app.command("accesses")
@reporting_errors
def accesses_command(
    as_name: AsOption,
    start: Annotated[
        str | None, typer.Option("--from", help="Only from this time (RFC 3339).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Only before this time.")] = None,
    department: Annotated[
        str | None, typer.Option("--department", help="Only accesses by this department.")
    ] = None,
    home: HomeOption = DEFAULT_HOME,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every access to my data: who, when, why, which records, granted or denied."""
    with open_client(home, as_name, gateway) as client:
        accesses = client.all_my_accesses(start=start, end=end, department=department)
        subject = client.my_subject()
    if as_json:
        print_json({"subject": subject, "accesses": accesses})
    else:
        _print_accesses(subject, accesses, console())


def _print_consents(answer: dict[str, Any], out: Console) -> None:
    listing = table(
        f"Consents of {answer.get('subject')}",
        "consent",
        "status",
        "grantee",
        "purpose",
        "record types",
        "max tier",
        "expires",
    )
    for consent in answer.get("consents", []):
        listing.add_row(
            consent.get("consent_id", ""),
            consent.get("status", ""),
            consent.get("grantee_org", ""),
            consent.get("purpose", ""),
            ", ".join(consent.get("record_types", [])),
            consent.get("max_tier", ""),
            consent.get("expires_at", ""),
        )
    out.print(listing)


@citizen_app.command("consent")
@reporting_errors
def consent_command(
    as_name: AsOption,
    grantee: Annotated[
        str | None,
        typer.Option("--grantee", help="Department to consent to, e.g. PublicSecurity."),
    ] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="Purpose consented to, e.g. points_hukou.")
    ] = None,
    record_type: Annotated[
        list[str] | None, typer.Option("--type", help="Record type covered (repeatable).")
    ] = None,
    max_tier: Annotated[str, typer.Option("--max-tier", help="Highest tier covered: 0-3.")] = "2",
    days: Annotated[
        int, typer.Option("--days", min=1, max=1826, help="Days until the consent expires.")
    ] = 365,
    revoke: Annotated[
        str | None, typer.Option("--revoke", help="Revoke this consent id instead.")
    ] = None,
    home: HomeOption = DEFAULT_HOME,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Grant a consent (--grantee --purpose --type ...), revoke one (--revoke ID), or list them."""
    granting = grantee is not None or purpose is not None or bool(record_type)
    if revoke is not None and granting:
        raise AccessLedgerError(
            "--revoke cannot be combined with --grantee/--purpose/--type", code="request_invalid"
        )
    if granting and not (grantee and purpose and record_type):
        raise AccessLedgerError(
            "a consent needs --grantee, --purpose and at least one --type", code="request_invalid"
        )
    grant = (grantee, purpose, record_type) if grantee and purpose and record_type else None
    tier = parse_tier(max_tier)
    out = console()
    with open_client(home, as_name, gateway) as client:
        if revoke is not None:
            committed = client.revoke_consent(revoke)
            message = f"Revoked consent {revoke} (block {committed.block_number})."
        elif grant is not None:
            grantee, purpose, types = grant
            committed = client.grant_consent(
                grantee, purpose, types, max_tier=tier, valid_for=timedelta(days=days)
            )
            message = (
                f"Consent {committed.result.get('consent_id')} granted to {grantee} for"
                f" {purpose} (block {committed.block_number})."
            )
        else:
            answer = client.my_consents()
            if as_json:
                print_json(answer)
            else:
                _print_consents(answer, out)
            return
    if as_json:
        print_json(
            {"tx_id": committed.tx_id, "block_number": committed.block_number, **committed.result}
        )
    else:
        out.print(message, highlight=False)


@citizen_app.command("contest")
@reporting_errors
def contest_command(
    as_name: AsOption,
    event: Annotated[
        str, typer.Option("--event", help="Event id of the access to contest.", show_default=False)
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why (kept off the ledger, encrypted for auditors).",
            show_default=False,
        ),
    ],
    home: HomeOption = DEFAULT_HOME,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Contest an access to my data: the auditors must review it."""
    if not reason.strip():
        raise AccessLedgerError("--reason must say why", code="request_invalid")
    with open_client(home, as_name, gateway) as client:
        committed = client.contest(event, reason)
    if as_json:
        print_json(
            {"tx_id": committed.tx_id, "block_number": committed.block_number, **committed.result}
        )
    else:
        console().print(
            f"Contested access {event}; its review is open again (block {committed.block_number}).",
            highlight=False,
        )


@citizen_app.command("notes")
@reporting_errors
def notes_command(
    as_name: AsOption,
    event: Annotated[
        str, typer.Option("--event", help="Event id of the access.", show_default=False)
    ],
    home: HomeOption = DEFAULT_HOME,
    gateway: GatewayOption = None,
    as_json: JsonOption = False,
) -> None:
    """The justification, contest reasons and review notes of an access to my data."""
    from gateway.client.notes import my_notes

    with open_client(home, as_name, gateway) as client:
        notes = client.run(my_notes(client.operations, event))
    if as_json:
        print_json({"event_id": event, "notes": [note.to_dict() for note in notes]})
        return
    listing = table(f"Notes about access {event}", "kind", "text", "transaction", "ledger hash")
    for note in notes:
        listing.add_row(note.kind, note.text, note.tx_id, note.note_hash)
    console().print(listing)
