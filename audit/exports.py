"""Access events as an HL7 FHIR R4 ``Bundle`` of ``AuditEvent`` resources, or as CSV.

FHIR mapping (one ``AuditEvent`` per access event; docs/audit.md has the table):

* ``type`` DICOM ``110110`` *Patient Record*; ``subtype`` the REST interaction
  ``read`` plus AccessLedger's action (``read`` / ``emergency_read``);
* ``action`` ``R`` (read); ``recorded`` the decision time (transaction time);
* ``outcome`` ``0`` granted, ``4`` partly granted, ``8`` denied, with the
  reasons in ``outcomeDesc``;
* ``purposeOfEvent`` the stated purpose (AccessLedger's code system, plus the
  HL7 v3 ActReason code where one clearly applies);
* ``agent`` the officer (``requestor: true``, identified by MSP ID and
  certificate fingerprint, with role and policy version) and the officer's
  department (``requestor: false``);
* ``source`` the ledger channel as observer (application server);
* ``entity`` the subject pseudonym (role *Patient*, with purpose and case
  reference as details), then each record asked for (role *Domain Resource*,
  with tier, decision and released tiers as details).

Nothing in either format is personal data beyond what the ledger holds:
subjects appear only as pseudonyms (I1).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from audit.events import AccessEvent, RecordDecision

DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
REST_INTERACTION: Final = "http://hl7.org/fhir/restful-interaction"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
ACTION_SYSTEM: Final = "urn:accessledger:action"
PURPOSE_SYSTEM: Final = "urn:accessledger:purpose"
OFFICER_SYSTEM: Final = "urn:accessledger:officer"
MSP_SYSTEM: Final = "urn:accessledger:msp"
SUBJECT_SYSTEM: Final = "urn:accessledger:subject-pseudonym"
RECORD_SYSTEM: Final = "urn:accessledger:record"
CHANNEL_SYSTEM: Final = "urn:accessledger:channel"
#: FHIR ``AuditEvent.outcome`` for each AccessLedger decision.
OUTCOMES: Final = {"granted": "0", "partial": "4", "denied": "8"}
#: Purposes with an unambiguous HL7 v3 ActReason equivalent.
ACT_REASONS: Final = {
    "emergency_care": ("ETREAT", "Emergency Treatment"),
    "medical_settlement": ("HPAYMT", "healthcare payment"),
}
_NAMESPACE: Final = uuid.UUID("8f1d3c52-5a4e-4f0e-9b7a-6c2f4e1d0a93")


def _instant(moment: datetime) -> str:
    """A FHIR ``instant``: seconds, optional fraction, and a zone (always ``Z`` here)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _detail(kind: str, value: str) -> dict[str, str]:
    return {"type": kind, "valueString": value}


def _record_entity(record: RecordDecision) -> dict[str, Any]:
    details = [
        _detail("tier", record.tier),
        _detail("decision", "granted" if record.granted else "denied"),
    ]
    if record.granted:
        details.append(_detail("released_tiers", ",".join(record.tiers) or "none"))
        description = f"granted {', '.join(record.tiers)}"
    else:
        description = f"denied: {record.reason}"
        details.append(_detail("reason", record.reason or ""))
    if record.version is not None:
        details.append(_detail("record_version", str(record.version)))
    if record.policy_ids:
        details.append(_detail("policy_ids", ",".join(record.policy_ids)))
    entity: dict[str, Any] = {
        "what": {"identifier": {"system": RECORD_SYSTEM, "value": record.record_id}},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
        "description": description,
        "detail": details,
    }
    if record.record_type:
        entity["name"] = record.record_type
    return entity


def audit_event(event: AccessEvent, *, channel: str) -> dict[str, Any]:
    """One FHIR R4 ``AuditEvent`` resource for an access event."""
    officer = event.officer
    purpose: dict[str, Any] = {
        "coding": [{"system": PURPOSE_SYSTEM, "code": event.purpose}],
        "text": event.purpose,
    }
    if event.purpose in ACT_REASONS:
        code, display = ACT_REASONS[event.purpose]
        purpose["coding"].append({"system": ACT_REASON, "code": code, "display": display})
    reasons = sorted({r.reason or "" for r in event.denied})
    outcome_desc = event.decision + (f": denied {', '.join(reasons)}" if reasons else "")
    subject_details = [_detail("purpose", event.purpose)]
    if event.case_ref:
        subject_details.append(_detail("case_ref", event.case_ref))
    subject_details += [
        _detail("emergency", "true" if event.emergency else "false"),
        _detail("tx_id", event.tx_id),
        _detail("review_status", event.review.status),
    ]
    if event.block is not None:
        subject_details.append(_detail("block", str(event.block)))
    return {
        "resourceType": "AuditEvent",
        "id": event.event_id[:64],
        "type": {"system": DCM, "code": "110110", "display": "Patient Record"},
        "subtype": [
            {"system": REST_INTERACTION, "code": "read", "display": "read"},
            {"system": ACTION_SYSTEM, "code": event.action},
        ],
        "action": "R",
        "recorded": _instant(event.decided_at),
        "outcome": OUTCOMES[event.decision],
        "outcomeDesc": outcome_desc,
        "purposeOfEvent": [purpose],
        "agent": [
            {
                "type": {"text": "officer"},
                "role": [{"text": officer.role}],
                "who": {
                    "identifier": {"system": OFFICER_SYSTEM, "value": officer.key},
                    "display": officer.name or officer.key,
                },
                "altId": officer.cert_fingerprint,
                "name": officer.name or officer.key,
                "requestor": True,
                "policy": [f"urn:accessledger:policy:v{event.policy_version}:{event.bundle_hash}"],
                "purposeOfUse": [purpose],
            },
            {
                "type": {"text": "department"},
                "who": {
                    "identifier": {"system": MSP_SYSTEM, "value": officer.msp_id},
                    "display": officer.org,
                },
                "requestor": False,
            },
        ],
        "source": {
            "site": channel,
            "observer": {
                "identifier": {"system": CHANNEL_SYSTEM, "value": channel},
                "display": f"AccessLedger ledger, channel {channel}",
            },
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": [
            {
                "what": {"identifier": {"system": SUBJECT_SYSTEM, "value": event.subject}},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
                "detail": subject_details,
            },
            *(_record_entity(r) for r in event.records),
        ],
    }


def fhir_bundle(events: Iterable[AccessEvent], *, channel: str, now: datetime) -> dict[str, Any]:
    """A FHIR R4 ``Bundle`` (type ``collection``) of the events' ``AuditEvent`` resources."""
    entries = []
    for event in events:
        resource = audit_event(event, channel=channel)
        full_url = f"urn:uuid:{uuid.uuid5(_NAMESPACE, event.event_id)}"
        entries.append({"fullUrl": full_url, "resource": resource})
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": _instant(now),
        "entry": entries,
    }


CSV_COLUMNS: Final = (
    "event_id", "block", "tx_index", "decided_at", "officer_msp_id", "officer_fingerprint",
    "officer_name", "officer_org", "officer_role", "subject", "action", "purpose", "case_ref",
    "emergency", "decision", "record_id", "record_type", "owner_org", "record_version", "tier",
    "record_decision", "released_tiers", "reason", "policy_version", "bundle_hash",
    "review_status", "contests",
)  # fmt: skip


def _cell(value: object) -> str:
    """Text of a CSV cell; formula-like text is quoted so spreadsheets do not run it."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(events: Iterable[AccessEvent]) -> Iterable[Sequence[str]]:
    """One row per record decision (one row with empty record columns for an event with none)."""
    for event in events:
        officer = event.officer
        common = [
            event.event_id, event.block, event.tx_index, _instant(event.decided_at),
            officer.msp_id, officer.cert_fingerprint, officer.name, officer.org, officer.role,
            event.subject, event.action, event.purpose, event.case_ref,
            "true" if event.emergency else "false", event.decision,
        ]  # fmt: skip
        tail = [
            event.policy_version,
            event.bundle_hash,
            event.review.status,
            len(event.review.contests),
        ]
        records: Sequence[RecordDecision | None] = event.records or (None,)
        for record in records:
            if record is None:
                middle: list[object] = [""] * 8
            else:
                middle = [
                    record.record_id, record.record_type, record.owner_org, record.version,
                    record.tier, "granted" if record.granted else "denied",
                    ",".join(record.tiers), record.reason,
                ]  # fmt: skip
            yield [_cell(v) for v in [*common, *middle, *tail]]


def csv_text(events: Iterable[AccessEvent]) -> str:
    """The CSV export (header row first, RFC 4180 quoting, ``\\r\\n`` line ends)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(events))
    return out.getvalue()
