"""Example answers of the read endpoints, for the OpenAPI document.

Request bodies carry their examples on their models (:mod:`gateway.schemas`);
the answers below are larger and nested, so they live here, one per response
model, and :func:`gateway.app.create_app` adds them to the document's
component schemas. ``tests/gateway/test_examples.py`` validates every one
against its model, so an example cannot drift from what the gateway answers.
The values are shaped like a demo ledger's (hex ids, ``ps1:`` pseudonyms,
ledger times); none is a real person's.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from pydantic import BaseModel

from gateway.routes.custodians import CustodianKeyRotation
from gateway.schemas import (
    AccessesPage,
    AccessResult,
    ConsentList,
    EventList,
    Health,
    LedgerInfo,
    PolicyView,
    TransactionStatus,
)
from gateway.service.notes import NoteList

_TX = hashlib.sha256(b"example transaction").hexdigest()
_HASH = hashlib.sha256(b"example content").hexdigest()
_FINGERPRINT = hashlib.sha256(b"example certificate").hexdigest()
_SUBJECT = "ps1:" + "k" * 52
_POLICY = {"version": 1, "bundle_hash": _HASH}
_SEALED = "AQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="

#: Response model -> one example answer.
RESPONSE_EXAMPLES: Final[dict[type[BaseModel], dict[str, Any]]] = {
    Health: {"status": "ok", "height": 42, "channel": "accessledger"},
    LedgerInfo: {
        "channel": "accessledger",
        "chaincode": "accessledger",
        "height": 42,
        "tip_hash": _HASH,
        "policy": _POLICY,
        "grant_ttl_seconds": 900,
        "max_clock_skew_seconds": 300,
        "pending_ttl_seconds": 120,
    },
    TransactionStatus: {"tx_id": _TX, "block_number": 41, "validation_code": "VALID"},
    AccessResult: {
        "tx_id": _TX,
        "event_id": _TX,
        "block_number": 41,
        "decided_at": "2026-11-29T09:30:00.123456Z",
        "decision": "partial",
        "policy": _POLICY,
        "emergency": False,
        "obligations": [],
        "expires_at": "2026-11-29T09:45:00.123456Z",
        "recipient": {
            "msp_id": "EducationMSP",
            "cert_fingerprint": _FINGERPRINT,
            "public_key": "oH4f1zJZ6yB0kQe3mR9v2uX8sT5nC7wD1aE0gL4hK6I=",
            "public_key_sha256": _HASH,
        },
        "grants": [
            {
                "record_id": "rp-4403-000123",
                "record_type": "residence_permit",
                "owner_org": "PublicSecurity",
                "version": 1,
                "schema_version": 1,
                "policy_ids": ["school_enrolment.read_basic"],
                "obligations": [],
                "tiers": [
                    {
                        "tier": "T1",
                        "content_address": _HASH,
                        "size": 212,
                        "sealed_key": _SEALED,
                        "blob_url": f"/v1/blobs/{_HASH}",
                        "ciphertext": None,
                    }
                ],
            }
        ],
        "denials": [
            {
                "record_id": "hr-4403-000077",
                "record_type": "health_record",
                "owner_org": "Health",
                "reason": "no policy permits this access (default deny)",
                "policy_ids": [],
            }
        ],
    },
    AccessesPage: {
        "subject": _SUBJECT,
        "accesses": [
            {
                "event_id": _TX,
                "decided_at": "2026-11-29T09:30:00.123456Z",
                "officer": {
                    "org": "Education",
                    "msp_id": "EducationMSP",
                    "name": "officer.education.sz1",
                    "role": "enrolment_officer",
                    "cert_fingerprint": _FINGERPRINT,
                },
                "purpose": "school_enrolment",
                "case_ref": None,
                "tier": "T1",
                "emergency": False,
                "decision": "granted",
                "policy": _POLICY,
                "records": [
                    {
                        "record_id": "rp-4403-000123",
                        "record_type": "residence_permit",
                        "owner_org": "PublicSecurity",
                        "granted": True,
                        "tiers": ["T0", "T1"],
                        "reason": None,
                    }
                ],
                "review": {"status": "none", "reasons": [], "contests": 0},
            }
        ],
        "next_cursor": None,
    },
    ConsentList: {
        "subject": _SUBJECT,
        "consents": [
            {
                "consent_id": _TX,
                "subject": _SUBJECT,
                "grantee_org": "PublicSecurity",
                "purpose": "points_hukou",
                "record_types": ["social_insurance", "tax_record"],
                "max_tier": "T2",
                "expires_at": "2027-05-29T00:00:00.000000Z",
                "status": "active",
                "granted_by": {"msp_id": "CivilAffairsMSP", "cert_fingerprint": _FINGERPRINT},
                "granted_at": "2026-11-29T09:00:00.000000Z",
                "document": {"format": "accessledger-consent/1", "...": "the signed document"},
                "signature": "MEUCIQD...",
                "revoked": None,
            }
        ],
    },
    NoteList: {
        "event_id": _TX,
        "subject": _SUBJECT,
        "notes": [
            {
                "kind": "contest_reason",
                "tx_id": _TX,
                "note_hash": _HASH,
                "content_address": _HASH,
                "ciphertext": "AXNvbWUgY2lwaGVydGV4dA==",
                "sealed_key": _SEALED,
                "recipient_public_key": "oH4f1zJZ6yB0kQe3mR9v2uX8sT5nC7wD1aE0gL4hK6I=",
            }
        ],
        "withheld": 0,
    },
    EventList: {
        "events": [
            {
                "format": "accessledger-access-event/1",
                "event_id": _TX,
                "tx_id": _TX,
                "decided_at": "2026-11-29T09:30:00.123456Z",
                "officer": {
                    "msp_id": "HealthMSP",
                    "cert_fingerprint": _FINGERPRINT,
                    "role": "emergency_physician",
                    "region": "440300",
                    "clearance": 3,
                },
                "subject": _SUBJECT,
                "action": "emergency_read",
                "purpose": "emergency_care",
                "tier": "T3",
                "emergency": True,
                "request": {"format": "accessledger-access-request/1", "...": "signed"},
                "request_signature": "MEQCIF...",
                "request_hash": _HASH,
                "policy": _POLICY,
                "decision": "granted",
                "granted": [{"record_id": "hr-4403-000077", "version": 1, "tiers": ["T0", "T1"]}],
                "denied": [],
                "obligations": ["audit_review"],
                "review": {"status": "open", "reasons": ["break_glass"], "contests": 0},
            }
        ],
        "truncated": False,
    },
    PolicyView: {
        "version": 2,
        "bundle_hash": _HASH,
        "bundle": {
            "format": "accessledger-policy-bundle/1",
            "version": 2,
            "cedar_schema": "entity Officer { org: String, role: String, ... };",
            "policies": {"school_enrolment.cedar": "permit (principal, ...) when { ... };"},
            "catalogue": {"types": {"residence_permit": {"1": {"...": "JSON Schema"}}}},
        },
    },
    CustodianKeyRotation: {
        "org": "Housing",
        "old_key_id": "71e9378e267d09b1",
        "new_key_id": "792822fbdb314825",
        "resealed": 148,
        "resumed": False,
        "started_at": "2026-11-29T16:03:23.512004Z",
        "finished_at": "2026-11-29T16:03:23.955325Z",
    },
}


def add_response_examples(components: dict[str, Any]) -> None:
    """Put each example on its model's component schema (``examples``, OpenAPI 3.1)."""
    schemas = components.get("schemas", {})
    for model, example in RESPONSE_EXAMPLES.items():
        schema = schemas.get(model.__name__)
        if schema is not None:
            schema.setdefault("examples", [example])
