"""Citizens: RegisterCitizen, GrantConsent, RevokeConsent, ContestAccess.

A citizen authenticates with a credential (an X.509 client certificate with
role ``citizen``) issued by the CivilAffairs department. ``RegisterCitizen``,
called by a CivilAffairs registrar who has verified the person, binds that
credential -- by MSP ID and certificate fingerprint -- to the person's
pseudonym. From then on the citizen acts for that pseudonym only.

Consents are signed documents (:mod:`chaincode.signed`) of the citizen::

    {"format": "accessledger-consent/1", "subject": "ps1:...",
     "grantee_org": "PublicSecurity", "purpose": "points_hukou",
     "record_types": ["tax_record", ...], "max_tier": "T2",
     "expires_at": "2027-01-31T00:00:00Z", "nonce": "...", "timestamp": "..."}

A consent *covers* a read when it is active (not revoked), unexpired at the
transaction time, for the officer's department and the declared purpose,
lists the record's type, and the requested tier is at most ``max_tier``
(:func:`consent_covers`). ``RequestAccess`` sets the Cedar context
``has_consent`` per record from exactly this rule.

``ContestAccess`` lets a citizen dispute an access event about them; the
reason is stored only as a hash (the text is kept off-chain, encrypted for
the auditors and the subject) and the event's review is (re)opened.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Final

from chaincode import authz
from chaincode.caller import Caller, identify_certificate, load_certificate
from chaincode.codec import (
    HEX_DIGEST,
    IDENTIFIER,
    ORG,
    SNAKE,
    check_fields,
    parse_time,
    string_list,
    subject,
    text,
)
from chaincode.context import Tx
from chaincode.errors import Conflict, Forbidden, InvalidArgument, NotFound
from chaincode.governance import anchored_policy
from chaincode.ledger import ACCESS, CITIZEN, CONSENT, MARKER, SUBJECT_CITIZEN
from chaincode.reviews import open_review
from chaincode.signed import (
    CONSENT_FORMAT,
    CONSENT_REVOCATION_FORMAT,
    parse_signed,
    verify_signed,
)
from crypto.identity import IdentityKind
from policies.vocabulary import PURPOSES, TIERS, tier_rank

_MAX_CONSENT_DURATION: Final = timedelta(days=5 * 366)
_CONSENT_FIELDS: Final = {
    "format",
    "subject",
    "grantee_org",
    "purpose",
    "record_types",
    "max_tier",
    "expires_at",
    "nonce",
    "timestamp",
}


async def citizen_subject(tx: Tx, caller: Caller) -> str | None:
    """The pseudonym ``caller``'s credential is bound to, or ``None``."""
    binding = await tx.ledger.get_json(tx.ledger.key(CITIZEN, caller.msp_id, caller.fingerprint))
    return None if binding is None else str(binding["subject"])


async def require_own_subject(tx: Tx, caller: Caller) -> str:
    """The citizen's bound pseudonym; raises if the caller is not a bound citizen."""
    authz.require_citizen(caller)
    bound = await citizen_subject(tx, caller)
    if bound is None:
        raise Forbidden(
            "this citizen credential is not bound to a subject (RegisterCitizen)",
            code="citizen_not_registered",
        )
    return bound


async def register_citizen(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Bind a CivilAffairs citizen credential to a pseudonym (CivilAffairs registrars only)."""
    check_fields(arg, "RegisterCitizen argument", {"certificate", "subject"})
    about = subject(arg)
    pem = text(arg, "certificate", max_length=8192)
    config = await tx.config()
    caller = await tx.caller()
    authz.require_citizen_registrar(caller)
    credential = identify_certificate(
        config,
        load_certificate(pem.encode("ascii", "replace")),
        now=tx.ledger.now,
        what="citizen credential",
    )
    if credential.kind != IdentityKind.CITIZEN or credential.org != authz.CIVIL_AFFAIRS_ORG:
        raise InvalidArgument(
            f"the credential must be a citizen certificate issued by {authz.CIVIL_AFFAIRS_ORG}",
            code="not_citizen_credential",
        )
    key = tx.ledger.key(CITIZEN, credential.msp_id, credential.fingerprint)
    if await tx.ledger.get(key) is not None:
        raise Conflict("this credential is already bound to a subject", code="citizen_exists")
    binding = {
        "subject": about,
        "msp_id": credential.msp_id,
        "cert_fingerprint": credential.fingerprint,
        "bound_by": caller.ref(),
        "bound_at": tx.ledger.now_text,
        "tx_id": tx.ledger.tx_id,
    }
    await tx.ledger.put_json(key, binding)
    await tx.ledger.put(
        tx.ledger.key(SUBJECT_CITIZEN, about, credential.msp_id, credential.fingerprint), MARKER
    )
    tx.ledger.set_event("CitizenRegistered", binding)
    return binding


def consent_covers(
    consent: dict[str, Any], *, org: str, purpose: str, record_type: str, tier: str, now: datetime
) -> bool:
    """Whether one stored consent covers reading ``record_type`` at ``tier`` (module docstring)."""
    return (
        consent.get("status") == "active"
        and consent["grantee_org"] == org
        and consent["purpose"] == purpose
        and record_type in consent["record_types"]
        and tier_rank(tier) <= tier_rank(consent["max_tier"])
        and now < parse_time(consent["expires_at"], what="consent.expires_at")
    )


async def consents_of(tx: Tx, about: str) -> list[dict[str, Any]]:
    """Every consent a subject has granted (active, revoked and expired)."""
    return [json.loads(value) for _, value in await tx.ledger.scan(CONSENT, [about])]


async def grant_consent(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Record a consent signed by the subject's citizen; its id is the transaction id."""
    signed = parse_signed(arg, CONSENT_FORMAT)
    document = signed.document
    check_fields(document, "consent", _CONSENT_FIELDS)
    about = subject(document, what="consent")
    grantee = text(document, "grantee_org", ORG, what="consent")
    purpose = text(document, "purpose", SNAKE, what="consent")
    record_types = string_list(document, "record_types", SNAKE, what="consent", max_items=20)
    max_tier = text(document, "max_tier", what="consent")
    expires_at = parse_time(document.get("expires_at"), what="consent.expires_at")
    if max_tier not in TIERS:
        raise InvalidArgument(f"consent.max_tier must be one of {', '.join(TIERS)}")
    if purpose not in PURPOSES:
        raise InvalidArgument(f"consent.purpose {purpose!r} is not a known purpose")

    config = await tx.config()
    config.department(grantee)
    caller = await tx.caller()
    if await require_own_subject(tx, caller) != about:
        raise Forbidden("a citizen may grant consent only for themselves")
    catalogue = (await anchored_policy(tx)).bundle.catalogue
    unknown = sorted(set(record_types) - set(catalogue.record_types()))
    if unknown:
        raise InvalidArgument(f"consent.record_types has unknown type(s) {', '.join(unknown)}")
    if not tx.ledger.now < expires_at <= tx.ledger.now + _MAX_CONSENT_DURATION:
        raise InvalidArgument("consent.expires_at must be in the future and within five years")
    await verify_signed(tx, caller, signed)

    consent = {
        "consent_id": tx.ledger.tx_id,
        "subject": about,
        "grantee_org": grantee,
        "purpose": purpose,
        "record_types": sorted(record_types),
        "max_tier": max_tier,
        "expires_at": document["expires_at"],
        "status": "active",
        "granted_by": caller.ref(),
        "granted_at": tx.ledger.now_text,
        "document": document,
        "signature": signed.signature_b64(),
        "revoked": None,
    }
    await tx.ledger.put_json(tx.ledger.key(CONSENT, about, tx.ledger.tx_id), consent)
    tx.ledger.set_event("ConsentGranted", _summary(consent))
    return consent


async def revoke_consent(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Revoke one of the citizen's own consents (a signed revocation document)."""
    signed = parse_signed(arg, CONSENT_REVOCATION_FORMAT)
    check_fields(
        signed.document, "consent revocation", {"format", "consent_id", "nonce", "timestamp"}
    )
    consent_id = text(signed.document, "consent_id", IDENTIFIER, what="consent revocation")
    caller = await tx.caller()
    about = await require_own_subject(tx, caller)
    key = tx.ledger.key(CONSENT, about, consent_id)
    consent = await tx.ledger.get_json(key)
    if consent is None:
        raise NotFound(f"consent {consent_id} does not exist for this subject")
    if consent["status"] != "active":
        raise Conflict(f"consent {consent_id} is already revoked", code="consent_revoked")
    await verify_signed(tx, caller, signed)
    consent["status"] = "revoked"
    consent["revoked"] = {
        "at": tx.ledger.now_text,
        "tx_id": tx.ledger.tx_id,
        "document": signed.document,
        "signature": signed.signature_b64(),
    }
    await tx.ledger.put_json(key, consent)
    tx.ledger.set_event("ConsentRevoked", _summary(consent))
    return consent


def _summary(consent: dict[str, Any]) -> dict[str, Any]:
    return {
        key: consent[key]
        for key in (
            "consent_id",
            "subject",
            "grantee_org",
            "purpose",
            "record_types",
            "max_tier",
            "expires_at",
            "status",
        )
    }


async def list_consents(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """A subject's consents: for the subject's citizen and for auditors."""
    check_fields(arg, "ListConsents argument", {"subject"})
    about = subject(arg)
    caller = await tx.caller()
    if authz.is_citizen(caller):
        if await require_own_subject(tx, caller) != about:
            raise Forbidden("a citizen may list only their own consents")
    elif not authz.is_auditor(caller):
        raise Forbidden("consents are visible to their subject and to auditors")
    return {"subject": about, "consents": await consents_of(tx, about)}


async def contest_access(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """A citizen disputes an access event about them; the event's review is (re)opened."""
    check_fields(arg, "ContestAccess argument", {"event_id", "reason_hash"})
    event_id = text(arg, "event_id", IDENTIFIER)
    reason_hash = text(arg, "reason_hash", HEX_DIGEST)
    caller = await tx.caller()
    about = await require_own_subject(tx, caller)
    key = tx.ledger.key(ACCESS, event_id)
    event = await tx.ledger.get_json(key)
    if event is None or event["subject"] != about:
        # The same answer whether the event does not exist or is about someone else.
        raise NotFound(f"no access event {event_id} about this subject")
    contest = {
        "contest_id": tx.ledger.tx_id,
        "reason_hash": reason_hash,
        "by": caller.ref(),
        "at": tx.ledger.now_text,
    }
    event["review"]["contests"].append(contest)
    await open_review(tx, event, "contested")
    await tx.ledger.put_json(key, event)
    tx.ledger.set_event("AccessContested", {"event_id": event_id, "subject": about, **contest})
    return {"event_id": event_id, "contest": contest, "review": event["review"]}


__all__ = [
    "citizen_subject",
    "consent_covers",
    "consents_of",
    "contest_access",
    "grant_consent",
    "list_consents",
    "register_citizen",
    "require_own_subject",
    "revoke_consent",
]
