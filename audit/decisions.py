"""Re-decide an access event from the ledger alone, under the policy anchored at its height.

Invariant I4: a decision is a deterministic function of the signed request,
the ledger state it read and the anchored policy version. The auditor
therefore rebuilds every input from sources the event cannot vouch for
itself, and compares:

* the transaction: the event's id and time are the transaction's, and its
  officer is the transaction's creator (MSP ID and certificate fingerprint),
  with the role, region and clearance of that certificate's attributes;
* the request: the event carries exactly the document and signature of the
  transaction argument, the signature verifies with the creator's key over
  the canonical JSON (I3), and the request hash is its SHA-256;
* the policy: the version and bundle hash recorded are the ones anchored on
  the ledger at that height (not merely some installed version);
* the records: the set of records the request matches, recomputed from the
  replayed record state, with their type, owner, region and version;
* consent: recomputed from the subject's consents at the decision time;
* erasure: a record erased before the request must be denied
  ``record_erased`` and not evaluated (no determining policies);
* the decision: the anchored Cedar policy set evaluated on all of that
  (:meth:`policies.engine.PolicySet.evaluate_batch`), compared record by
  record with what was recorded -- granted or denied, determining policies,
  obligations, denial reason, released tiers -- and the event's overall
  decision and obligations.

The matching and consent rules are the documented contract (docs/chaincode.md,
docs/policies.md), implemented here independently of the chaincode package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from audit.events import AccessEvent, EventFormatError, RecordDecision, parse_ledger_time
from audit.findings import FindingKind
from crypto.certificates import certificate_fingerprint, read_attributes
from crypto.errors import AccessLedgerError, VerificationError
from crypto.signing import verify
from network.fabric.transactions import ParsedTransaction
from policies.canonical import canonical_json
from policies.engine import REVIEW_REQUIRED, Decision
from policies.requests import AccessContext, Action, Principal, RecordResource
from policies.vocabulary import tier_rank, tiers_up_to

if TYPE_CHECKING:
    from audit.namespace import AnchoredBundle

Problem = tuple[FindingKind, str]
NOT_FOUND = "record_not_found"
#: The denial of a record erased before the request (docs/chaincode.md, EraseRecord).
ERASED = "record_erased"


def erased(record: Mapping[str, Any]) -> bool:
    """Whether the replayed record state carries a committed erasure marker."""
    return isinstance(record.get("erased"), Mapping)


@dataclass(frozen=True)
class DecisionInputs:
    """What the ledger held when the event was decided (state before its transaction)."""

    tx: ParsedTransaction
    argument: Any
    anchored: AnchoredBundle | None
    departments: Mapping[str, str]
    records: Mapping[str, Mapping[str, Any]]
    subject_records: Mapping[str, Mapping[str, Any]]
    consents: Mapping[str, Mapping[str, Any]]


def consent_covers(
    consent: Mapping[str, Any],
    *,
    org: str,
    purpose: str,
    record_type: str,
    tier: str,
    now: datetime,
) -> bool:
    """The documented consent rule: active, same grantee and purpose, type listed, tier, expiry."""
    try:
        return (
            consent.get("status") == "active"
            and consent.get("grantee_org") == org
            and consent.get("purpose") == purpose
            and record_type in consent.get("record_types", ())
            and tier_rank(tier) <= tier_rank(str(consent.get("max_tier")))
            and now < parse_ledger_time(consent.get("expires_at"), "consent.expires_at")
        )
    except (AccessLedgerError, EventFormatError, TypeError):
        return False


def matching_records(
    document: Mapping[str, Any],
    records: Mapping[str, Mapping[str, Any]],
    subject_records: Mapping[str, Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """Records a request covers (sorted by id) and the requested ids that match none.

    ``records`` are all records by id, ``subject_records`` the request subject's.
    """
    about = document.get("subject")
    found: dict[str, Mapping[str, Any]] = {}
    missing = []
    for record_id in sorted(document.get("record_ids", []) or []):
        record = records.get(record_id)
        if record is None or record.get("subject") != about:
            missing.append(record_id)
        else:
            found[record_id] = record
    wanted = set(document.get("record_types", []) or [])
    if wanted:
        for record_id, record in subject_records.items():
            if record.get("subject") == about and record.get("record_type") in wanted:
                found.setdefault(record_id, record)
    return [found[k] for k in sorted(found)], missing


def _creator(tx: ParsedTransaction) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(tx.creator_id_bytes)
    except ValueError:
        return None


def _check_officer(
    event: AccessEvent, inputs: DecisionInputs, cert: x509.Certificate
) -> tuple[Principal | None, list[Problem]]:
    tx, officer = inputs.tx, event.officer
    fingerprint = certificate_fingerprint(cert)
    if officer.msp_id != tx.creator_msp_id or officer.cert_fingerprint != fingerprint:
        return None, [(FindingKind.ACCESS_EVENT, "the officer is not the transaction's creator")]
    org = inputs.departments.get(tx.creator_msp_id)
    if org is None:
        return None, [(FindingKind.ACCESS_EVENT, f"{tx.creator_msp_id} is not a department")]
    try:
        principal = Principal.from_attributes(officer.key, org, read_attributes(cert))
    except AccessLedgerError as exc:
        return None, [(FindingKind.ACCESS_EVENT, f"creator attributes unusable: {exc.message}")]
    recorded = (officer.org, officer.role, officer.region, officer.clearance)
    actual = (principal.org, principal.role, principal.region, principal.clearance)
    if recorded != actual:
        return principal, [
            (
                FindingKind.DECISION,
                f"officer recorded as {recorded}, the creator's certificate says {actual}",
            )
        ]
    return principal, []


def _check_request(
    event: AccessEvent, inputs: DecisionInputs, cert: x509.Certificate
) -> list[Problem]:
    argument = inputs.argument
    if not isinstance(argument, Mapping) or not isinstance(argument.get("document"), Mapping):
        return [(FindingKind.ACCESS_EVENT, "the transaction carries no signed request")]
    document = argument["document"]
    problems: list[Problem] = []
    if (
        dict(document) != dict(event.request)
        or argument.get("signature") != event.request_signature
    ):
        problems.append(
            (FindingKind.ACCESS_EVENT, "the event's request is not the one the transaction carried")
        )
    signed = canonical_json(dict(document))
    if hashlib.sha256(signed).hexdigest() != event.request_hash:
        problems.append((FindingKind.ACCESS_EVENT, "request_hash is not SHA-256 of the request"))
    key = cert.public_key()
    try:
        signature = base64.b64decode(str(argument.get("signature")), validate=True)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise VerificationError("creator key is not ECDSA")
        verify(key, signed, signature)
    except (binascii.Error, ValueError, VerificationError):
        problems.append(
            (FindingKind.ACCESS_EVENT, "the request is not signed by the transaction's creator")
        )
    for name in ("subject", "purpose", "tier"):
        if document.get(name) != getattr(event, name):
            problems.append((FindingKind.ACCESS_EVENT, f"event {name} differs from the request"))
    if bool(document.get("emergency", False)) != event.emergency:
        problems.append((FindingKind.ACCESS_EVENT, "event emergency flag differs from the request"))
    return problems


def _compare(
    entry: RecordDecision,
    record: Mapping[str, Any],
    decision: Decision,
    has_consent: bool,
    tier: str,
    version: int,
) -> list[Problem]:
    """How one recorded record decision differs from the re-evaluated one."""
    rid = entry.record_id
    problems: list[Problem] = []

    def add(kind: FindingKind, text: str) -> None:
        problems.append((kind, f"record {rid}: {text}"))

    facts = (entry.record_type, entry.owner_org, entry.region, entry.version)
    expected = tuple(record.get(k) for k in ("record_type", "owner_org", "region", "version"))
    if facts != expected:
        add(FindingKind.ACCESS_EVENT, f"recorded facts {facts}, ledger has {expected}")
    if entry.has_consent != has_consent:
        add(
            FindingKind.DECISION,
            f"has_consent recorded {entry.has_consent}, the ledger's consents give {has_consent}",
        )
    recorded = "granted" if entry.granted else f"denied ({entry.reason})"
    effect = "permit" if decision.allowed else "deny"
    verdict = f"policy v{version} gives {effect} ({decision.reason})"
    if entry.granted != decision.allowed:
        add(FindingKind.DECISION, f"recorded {recorded}, {verdict}")
        return problems
    if tuple(entry.policy_ids) != decision.determining_policy_ids:
        add(FindingKind.DECISION, f"determining policies {list(entry.policy_ids)}, {verdict}")
    if entry.granted:
        tiers = tuple(t for t in tiers_up_to(tier) if t in (record.get("tiers") or {}))
        if entry.tiers != tiers:
            add(FindingKind.DECISION, f"released {list(entry.tiers)}, policy allows {list(tiers)}")
        if entry.obligations != decision.obligations:
            add(
                FindingKind.DECISION,
                f"obligations {list(entry.obligations)}, policy gives {list(decision.obligations)}",
            )
    elif entry.reason != decision.reason:
        add(FindingKind.DECISION, f"recorded {recorded}, {verdict}")
    return problems


def _compare_erased(
    entry: RecordDecision, record: Mapping[str, Any], has_consent: bool
) -> list[Problem]:
    """A record erased before the request must be denied ``record_erased``, unevaluated."""
    rid = entry.record_id
    problems: list[Problem] = []
    facts = (entry.record_type, entry.owner_org, entry.region, entry.version)
    expected = tuple(record.get(k) for k in ("record_type", "owner_org", "region", "version"))
    if facts != expected:
        problems.append(
            (
                FindingKind.ACCESS_EVENT,
                f"record {rid}: recorded facts {facts}, ledger has {expected}",
            )
        )
    if entry.has_consent != has_consent:
        problems.append(
            (FindingKind.DECISION, f"record {rid}: has_consent recorded {entry.has_consent}")
        )
    if entry.granted or entry.reason != ERASED or entry.policy_ids:
        recorded = "granted" if entry.granted else f"denied ({entry.reason})"
        problems.append(
            (
                FindingKind.DECISION,
                f"record {rid}: recorded {recorded}, but the record was erased before the request"
                f" (expected denied ({ERASED}) without evaluation)",
            )
        )
    return problems


def recheck_access(event: AccessEvent, inputs: DecisionInputs) -> list[Problem]:
    """Every way ``event`` disagrees with its inputs; empty when it re-decides identically."""
    tx = inputs.tx
    problems: list[Problem] = []
    if event.event_id != tx.tx_id or event.tx_id != tx.tx_id:
        problems.append((FindingKind.ACCESS_EVENT, "event id is not the transaction id"))
    if tx.timestamp is not None and event.decided_at != tx.timestamp:
        problems.append((FindingKind.ACCESS_EVENT, "decided_at is not the transaction time"))
    cert = _creator(tx)
    if cert is None:
        return [*problems, (FindingKind.ACCESS_EVENT, "the creator has no certificate")]
    principal, officer_problems = _check_officer(event, inputs, cert)
    problems += officer_problems + _check_request(event, inputs, cert)
    anchored = inputs.anchored
    if anchored is None:
        return [*problems, (FindingKind.DECISION, "decided before any policy was anchored")]
    if (event.policy_version, event.bundle_hash) != (anchored.version, anchored.bundle_hash):
        problems.append(
            (
                FindingKind.DECISION,
                f"decided under policy v{event.policy_version} ({event.bundle_hash[:12]}…), but "
                f"v{anchored.version} ({anchored.bundle_hash[:12]}…) was anchored at this height",
            )
        )
    if principal is None:
        return problems
    return problems + _recheck_records(event, inputs, principal, anchored)


def _recheck_records(
    event: AccessEvent, inputs: DecisionInputs, principal: Principal, anchored: AnchoredBundle
) -> list[Problem]:
    problems: list[Problem] = []
    document = event.request
    found, missing = matching_records(document, inputs.records, inputs.subject_records)
    entries = {r.record_id: r for r in event.records if r.found}
    missed = {r.record_id for r in event.records if not r.found}
    if set(entries) != {str(r["record_id"]) for r in found} or missed != set(missing):
        problems.append(
            (
                FindingKind.DECISION,
                f"the request matches records {sorted(str(r['record_id']) for r in found)} "
                f"(missing {sorted(missing)}); the event decided {sorted(entries)} "
                f"(missing {sorted(missed)})",
            )
        )
    for entry in event.records:
        if not entry.found and (entry.granted or entry.reason != NOT_FOUND):
            problems.append(
                (FindingKind.DECISION, f"record {entry.record_id}: not found yet decided")
            )
    tier = event.tier
    action = Action.EMERGENCY_READ if event.emergency else Action.READ
    if event.action != action.value:
        problems.append(
            (FindingKind.DECISION, f"action {event.action!r}, the request implies {action.value!r}")
        )
    checked = [r for r in found if str(r["record_id"]) in entries]
    if not checked:
        return problems + _overall(event)
    consents = [
        any(
            consent_covers(
                c,
                org=principal.org,
                purpose=event.purpose,
                record_type=str(r.get("record_type")),
                tier=tier,
                now=event.decided_at,
            )
            for c in inputs.consents.values()
        )
        for r in checked
    ]
    live = [(r, c) for r, c in zip(checked, consents, strict=True) if not erased(r)]
    for record, has_consent in zip(checked, consents, strict=True):
        if erased(record):
            entry = entries[str(record["record_id"])]
            problems += _compare_erased(entry, record, has_consent)
    try:
        resources = [
            RecordResource(
                str(r["record_id"]),
                str(r["owner_org"]),
                str(r["record_type"]),
                tier,
                str(r["region"]),
            )
            for r, _ in live
        ]
        contexts = [
            AccessContext(
                purpose=event.purpose,
                case_ref=document.get("case_ref"),
                has_consent=c,
                emergency=event.emergency,
            )
            for _, c in live
        ]
        decisions = anchored.bundle.policy_set.evaluate_batch(
            principal, action, resources, contexts
        )
    except (AccessLedgerError, KeyError) as exc:
        return [*problems, (FindingKind.DECISION, f"the request cannot be re-evaluated: {exc}")]
    for (record, has_consent), decision in zip(live, decisions, strict=True):
        entry = entries[str(record["record_id"])]
        problems += _compare(entry, record, decision, has_consent, tier, anchored.version)
    return problems + _overall(event)


def _overall(event: AccessEvent) -> list[Problem]:
    granted, denied = event.granted, event.denied
    expected = "granted" if granted and not denied else "partial" if granted else "denied"
    problems: list[Problem] = []
    if event.decision != expected:
        problems.append(
            (
                FindingKind.DECISION,
                f"overall decision {event.decision!r}, records give {expected!r}",
            )
        )
    obligations = tuple(sorted({o for r in granted for o in r.obligations}))
    if event.obligations != obligations:
        problems.append(
            (
                FindingKind.DECISION,
                f"obligations {list(event.obligations)}, records give {list(obligations)}",
            )
        )
    if event.review.required != (REVIEW_REQUIRED in obligations):
        problems.append((FindingKind.DECISION, "review.required does not follow the obligations"))
    return problems
