"""An independent re-decision of every access event, from the blocks alone (I4 oracle).

:class:`Redecider` walks a ledger's transactions in order, keeping only what
valid transactions wrote (records, consents, the anchored policy bundle, the
department list of ``InitLedger``). At each valid ``RequestAccess`` it rebuilds
the decision's inputs from that state -- never from the event -- and asks the
anchored Cedar policy set about each record **one request at a time**
(:meth:`PolicySet.evaluate`; the chaincode and the audit module both use the
batch call), then compares with the event the transaction wrote.

The matching and consent rules are the documented contract (docs/chaincode.md,
"Matching", "Consent", "Decision"), written again here on purpose: a second,
simpler implementation that would disagree if the chaincode's drifted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from crypto.certificates import read_attributes
from policies.bundle import PolicyBundle
from policies.engine import Decision
from policies.requests import AccessContext, AccessRequest, Action, Principal, RecordResource
from policies.vocabulary import TIERS, tier_rank
from tests.invariants.ledger import LedgerTx, composite, composite_kind


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Anchored:
    """The policy version in force: its number, hash and bundle."""

    version: int
    bundle_hash: str
    bundle: PolicyBundle


@dataclass
class Redecision:
    """The outcome of re-deciding one event."""

    tx_id: str
    block: int
    decision: str
    mismatches: list[str]


def consent_covers(
    consent: Mapping[str, Any], *, org: str, purpose: str, record_type: str, tier: str, at: datetime
) -> bool:
    """docs/chaincode.md "Consent": active, same grantee and purpose, type listed, tier, expiry."""
    return (
        consent.get("status") == "active"
        and consent.get("grantee_org") == org
        and consent.get("purpose") == purpose
        and record_type in consent.get("record_types", [])
        and tier_rank(tier) <= tier_rank(str(consent.get("max_tier")))
        and at < _time(str(consent["expires_at"]))
    )


@dataclass
class Redecider:
    """Ledger state from valid writes, and every access event re-decided against it.

    ``override`` replaces every anchored bundle by another one (to show that
    a decision not made under the anchored policy is caught).
    """

    override: PolicyBundle | None = None
    departments: dict[str, str] = field(default_factory=dict)  # msp id -> org
    anchored: Anchored | None = None
    bundles: dict[int, bytes] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    consents: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[Redecision] = field(default_factory=list)

    def run(self, transactions: Iterable[LedgerTx]) -> list[Redecision]:
        for ltx in transactions:
            if not ltx.valid or ltx.tx.action is None:
                continue
            if ltx.function == "RequestAccess":
                self.results.append(self._redecide(ltx))
            self._apply(ltx.writes())
        return self.results

    # -- state -----------------------------------------------------------------------------

    def _apply(self, writes: Mapping[str, bytes | None]) -> None:
        for key, value in writes.items():
            if value is None:
                continue
            kind = composite_kind(key)
            if key == "config":
                for department in json.loads(value)["departments"]:
                    self.departments[department["msp_id"]] = department["org"]
            elif kind == "policy_bundle":
                self.bundles[int(key.split("\x00")[2])] = value
            elif kind == "record":
                record = json.loads(value)
                self.records[record["record_id"]] = record
            elif kind == "consent":
                self.consents[key] = json.loads(value)
        meta = writes.get("policy")
        if meta is not None:
            pointer = json.loads(meta)
            data = self.bundles[int(pointer["version"])]
            assert hashlib.sha256(data).hexdigest() == pointer["bundle_hash"], "bundle vs anchor"
            bundle = PolicyBundle.from_dict(json.loads(data))
            self.anchored = Anchored(int(pointer["version"]), pointer["bundle_hash"], bundle)

    # -- one event -------------------------------------------------------------------------

    def _principal(self, ltx: LedgerTx) -> Principal:
        cert = x509.load_pem_x509_certificate(ltx.tx.creator_id_bytes)
        fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
        msp = ltx.tx.creator_msp_id
        return Principal.from_attributes(
            f"{msp}:{fingerprint}", self.departments[msp], read_attributes(cert)
        )

    def _matching(self, document: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        subject = document["subject"]
        found: dict[str, dict[str, Any]] = {}
        missing = []
        for record_id in document.get("record_ids") or []:
            record = self.records.get(record_id)
            if record is None or record["subject"] != subject:
                missing.append(record_id)
            else:
                found[record_id] = record
        wanted = set(document.get("record_types") or [])
        for record_id, record in self.records.items():
            if record["subject"] == subject and record["record_type"] in wanted:
                found[record_id] = record
        return [found[k] for k in sorted(found)], sorted(missing)

    def _redecide(self, ltx: LedgerTx) -> Redecision:
        argument = ltx.argument()
        document = argument["document"]
        event = json.loads(ltx.writes()[composite("access", ltx.tx.tx_id)] or b"null")
        problems: list[str] = []
        if ltx.event() != event:
            problems.append("chaincode event differs from the stored event")
        if event["request"] != document or event["request_signature"] != argument["signature"]:
            problems.append("event request is not the transaction's signed request")
        anchored = self.anchored
        assert anchored is not None, "access decided before any policy was anchored"
        if (event["policy"]["version"], event["policy"]["bundle_hash"]) != (
            anchored.version,
            anchored.bundle_hash,
        ):
            problems.append(f"policy {event['policy']} is not the anchored v{anchored.version}")
        policy_set = (self.override or anchored.bundle).policy_set
        principal = self._principal(ltx)
        decided_at = _time(event["decided_at"])
        tier = document["tier"]
        emergency = bool(document.get("emergency", False))
        action = Action.EMERGENCY_READ if emergency else Action.READ
        found, missing = self._matching(document)
        granted = {e["record_id"]: e for e in event["granted"]}
        denied = {e["record_id"]: e for e in event["denied"]}
        expected_ids = {r["record_id"] for r in found} | set(missing)
        if set(granted) | set(denied) != expected_ids:
            problems.append(f"decided {sorted(granted) + sorted(denied)}, matches {expected_ids}")
        for record_id in missing:
            if denied.get(record_id, {}).get("reason") != "record_not_found":
                problems.append(f"{record_id}: not found on the ledger yet not denied as such")
        for record in found:
            record_id = record["record_id"]
            has_consent = any(
                consent_covers(
                    c,
                    org=principal.org,
                    purpose=document["purpose"],
                    record_type=record["record_type"],
                    tier=tier,
                    at=decided_at,
                )
                for c in self.consents.values()
                if c.get("subject") == document["subject"]
            )
            decision = policy_set.evaluate(
                AccessRequest(
                    principal,
                    action,
                    RecordResource(
                        record_id,
                        record["owner_org"],
                        record["record_type"],
                        tier,
                        record["region"],
                    ),
                    AccessContext(
                        purpose=document["purpose"],
                        case_ref=document.get("case_ref"),
                        has_consent=has_consent,
                        emergency=emergency,
                    ),
                )
            )
            entry = granted.get(record_id) or denied.get(record_id)
            if entry is not None:
                problems += _compare(record, entry, record_id in granted, decision, has_consent)
        expected = "denied" if not granted else "granted" if not denied else "partial"
        if event["decision"] != expected:
            problems.append(f"overall decision {event['decision']}, records give {expected}")
        obligations = sorted({o for e in granted.values() for o in e["obligations"]})
        if event["obligations"] != obligations:
            problems.append(f"obligations {event['obligations']}, records give {obligations}")
        return Redecision(ltx.tx.tx_id, ltx.block, event["decision"], problems)


def _compare(
    record: Mapping[str, Any],
    entry: Mapping[str, Any],
    was_granted: bool,
    decision: Decision,
    has_consent: bool,
) -> list[str]:
    rid = record["record_id"]
    problems = []
    facts = ("record_type", "owner_org", "region")
    if any(entry[k] != record[k] for k in facts) or entry["version"] != record["version"]:
        problems.append(f"{rid}: recorded facts differ from the ledger's record")
    if entry["has_consent"] != has_consent:
        problems.append(f"{rid}: has_consent {entry['has_consent']}, consents give {has_consent}")
    if was_granted != decision.allowed:
        problems.append(f"{rid}: recorded granted={was_granted}, policy says {decision.reason}")
        return problems
    if tuple(entry["policy_ids"]) != decision.determining_policy_ids:
        problems.append(f"{rid}: policies {entry['policy_ids']}, {decision.determining_policy_ids}")
    if was_granted:
        tiers = [t for t in TIERS[: tier_rank(entry["tier"]) + 1] if t in record["tiers"]]
        if entry["tiers"] != tiers:
            problems.append(f"{rid}: released {entry['tiers']}, allowed {tiers}")
        if tuple(entry["obligations"]) != decision.obligations:
            problems.append(f"{rid}: obligations {entry['obligations']}, {decision.obligations}")
    elif entry["reason"] != decision.reason:
        problems.append(f"{rid}: reason {entry['reason']}, policy says {decision.reason}")
    return problems
