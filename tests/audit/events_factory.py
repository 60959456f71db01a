"""Build access events in the chaincode's documented format, for detector and export tests."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from audit.events import AccessEvent


def officer(name: str, role: str = "enrolment_officer", org: str = "Education") -> dict[str, Any]:
    return {
        "msp_id": f"{org}MSP",
        "org": org,
        "cert_fingerprint": hashlib.sha256(name.encode()).hexdigest(),
        "name": name,
        "role": role,
        "region": "440300",
        "clearance": 1,
    }


def event(
    at: datetime,
    *,
    who: dict[str, Any] | None = None,
    subject: str = "ps1:subjecta",
    decision: str = "granted",
    purpose: str = "school_enrolment",
    emergency: bool = False,
    review: dict[str, Any] | None = None,
    records: tuple[str, ...] = ("rp-1",),
    case_ref: str | None = None,
) -> AccessEvent:
    """An event at ``at``; ``decision`` decides whether its records are granted or denied."""
    tx_id = hashlib.sha256(f"{at.isoformat()}{subject}{who}{purpose}".encode()).hexdigest()
    entries = [
        {
            "record_id": rid,
            "record_type": "residence_permit",
            "owner_org": "PublicSecurity",
            "region": "440300",
            "version": 1,
            "tier": "T1",
            "has_consent": False,
            "policy_ids": ["school_enrolment.read_basic"] if decision != "denied" else [],
            **(
                {"tiers": ["T0", "T1"], "obligations": []}
                if decision != "denied"
                else {"reason": "default_deny", "errors": []}
            ),
        }
        for rid in records
    ]
    document = {
        "format": "accessledger-access-event/1",
        "event_id": tx_id,
        "tx_id": tx_id,
        "decided_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "officer": who or officer("officer.education.sz1"),
        "subject": subject,
        "action": "emergency_read" if emergency else "read",
        "purpose": purpose,
        "tier": "T1",
        "emergency": emergency,
        "request": {"subject": subject, "case_ref": case_ref, "purpose": purpose},
        "request_signature": "c2ln",
        "request_hash": "00" * 32,
        "policy": {"version": 1, "bundle_hash": "ab" * 32},
        "decision": decision,
        "granted": entries if decision != "denied" else [],
        "denied": entries if decision == "denied" else [],
        "obligations": ["review_required"] if emergency else [],
        "review": review
        or {
            "required": emergency,
            "status": "open" if emergency else "none",
            "reasons": ["review_required"] if emergency else [],
            "contests": [],
            "outcomes": [],
        },
    }
    return AccessEvent.from_dict(document, block=1, tx_index=0)
