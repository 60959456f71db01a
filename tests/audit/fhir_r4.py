"""A small structural validator for FHIR R4 ``Bundle`` and ``AuditEvent`` JSON.

Written from the R4 (4.0.1) definitions of the two resources: every element
of AuditEvent and its backbone elements with its cardinality and data type,
the required bindings (``action`` C/R/U/D/E, ``outcome`` 0/4/8/12,
``agent.network.type`` 1-5, ``Bundle.type``), the invariant ``sev-1`` (an
entity has a name or a query, not both), and the JSON rules every resource
follows (``resourceType`` first-class, no unknown elements, no empty arrays or
objects, primitive formats of ``instant``, ``uri``, ``id``, ``code``). It
returns a list of error strings, empty when the document conforms.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any, str, list[str]], None]

_INSTANT = re.compile(
    r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$"
)
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_CODE = re.compile(r"^[^\s]+( [^\s]+)*$")
_URI = re.compile(r"^\S+$")

ACTION_CODES = {"C", "R", "U", "D", "E"}
OUTCOME_CODES = {"0", "4", "8", "12"}
NETWORK_TYPES = {"1", "2", "3", "4", "5"}
BUNDLE_TYPES = {
    "document", "message", "transaction", "transaction-response", "batch", "batch-response",
    "history", "searchset", "collection",
}  # fmt: skip


def _string(value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{path}: must be a non-empty string")


def _code(value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, str) or not _CODE.match(value):
        errors.append(f"{path}: must be a code")


def _uri(value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, str) or not _URI.match(value):
        errors.append(f"{path}: must be a uri")


def _instant(value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, str) or not _INSTANT.match(value):
        errors.append(f"{path}: must be an instant (with seconds and a time zone)")


def _boolean(value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, bool):
        errors.append(f"{path}: must be a boolean")


def _unsigned(value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        errors.append(f"{path}: must be an unsignedInt")


def _one_of(codes: set[str]) -> Check:
    def check(value: Any, path: str, errors: list[str]) -> None:
        if value not in codes:
            errors.append(f"{path}: {value!r} is not one of {sorted(codes)}")

    return check


def _complex(elements: Mapping[str, tuple[str, Check]]) -> Check:
    """An element with children: ``{name: (cardinality, check)}``."""

    def check(value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, dict) or not value:
            errors.append(f"{path}: must be a non-empty object")
            return
        for name in value:
            if name not in elements and name not in ("id", "extension", "modifierExtension"):
                errors.append(f"{path}.{name}: unknown element")
        for name, (cardinality, child) in elements.items():
            low, high = cardinality.split("..")
            present = name in value
            if not present:
                if low == "1":
                    errors.append(f"{path}.{name}: required (cardinality {cardinality})")
                continue
            item = value[name]
            if high == "*":
                if not isinstance(item, list) or not item:
                    errors.append(f"{path}.{name}: must be a non-empty array")
                    continue
                for index, entry in enumerate(item):
                    child(entry, f"{path}.{name}[{index}]", errors)
            else:
                if isinstance(item, list):
                    errors.append(f"{path}.{name}: must not be an array (max 1)")
                    continue
                child(item, f"{path}.{name}", errors)

    return check


CODING = _complex(
    {
        "system": ("0..1", _uri),
        "version": ("0..1", _string),
        "code": ("0..1", _code),
        "display": ("0..1", _string),
        "userSelected": ("0..1", _boolean),
    }
)
CODEABLE_CONCEPT = _complex({"coding": ("0..*", CODING), "text": ("0..1", _string)})
IDENTIFIER = _complex(
    {
        "use": ("0..1", _one_of({"usual", "official", "temp", "secondary", "old"})),
        "type": ("0..1", CODEABLE_CONCEPT),
        "system": ("0..1", _uri),
        "value": ("0..1", _string),
    }
)
REFERENCE = _complex(
    {
        "reference": ("0..1", _string),
        "type": ("0..1", _uri),
        "identifier": ("0..1", IDENTIFIER),
        "display": ("0..1", _string),
    }
)
PERIOD = _complex({"start": ("0..1", _instant), "end": ("0..1", _instant)})


def _detail(value: Any, path: str, errors: list[str]) -> None:
    base = _complex(
        {
            "type": ("1..1", _string),
            "valueString": ("0..1", _string),
            "valueBase64Binary": ("0..1", _string),
        }
    )
    base(value, path, errors)
    if isinstance(value, dict) and ("valueString" in value) == ("valueBase64Binary" in value):
        errors.append(f"{path}: value[x] is required, exactly one of valueString/valueBase64Binary")


def _entity(value: Any, path: str, errors: list[str]) -> None:
    _complex(
        {
            "what": ("0..1", REFERENCE),
            "type": ("0..1", CODING),
            "role": ("0..1", CODING),
            "lifecycle": ("0..1", CODING),
            "securityLabel": ("0..*", CODING),
            "name": ("0..1", _string),
            "description": ("0..1", _string),
            "query": ("0..1", _string),
            "detail": ("0..*", _detail),
        }
    )(value, path, errors)
    if isinstance(value, dict) and "name" in value and "query" in value:
        errors.append(f"{path}: sev-1 violated (either a name or a query, not both)")


AGENT = _complex(
    {
        "type": ("0..1", CODEABLE_CONCEPT),
        "role": ("0..*", CODEABLE_CONCEPT),
        "who": ("0..1", REFERENCE),
        "altId": ("0..1", _string),
        "name": ("0..1", _string),
        "requestor": ("1..1", _boolean),
        "location": ("0..1", REFERENCE),
        "policy": ("0..*", _uri),
        "media": ("0..1", CODING),
        "network": ("0..1", _complex({"address": ("0..1", _string),
                                      "type": ("0..1", _one_of(NETWORK_TYPES))})),
        "purposeOfUse": ("0..*", CODEABLE_CONCEPT),
    }
)  # fmt: skip
SOURCE = _complex(
    {"site": ("0..1", _string), "observer": ("1..1", REFERENCE), "type": ("0..*", CODING)}
)
AUDIT_EVENT_ELEMENTS: dict[str, tuple[str, Check]] = {
    "resourceType": ("1..1", _one_of({"AuditEvent"})),
    "id": ("0..1", lambda v, p, e: None if isinstance(v, str) and _ID.match(v) else e.append(
        f"{p}: must be a FHIR id")),
    "meta": ("0..1", lambda v, p, e: None),
    "text": ("0..1", lambda v, p, e: None),
    "type": ("1..1", CODING),
    "subtype": ("0..*", CODING),
    "action": ("0..1", _one_of(ACTION_CODES)),
    "period": ("0..1", PERIOD),
    "recorded": ("1..1", _instant),
    "outcome": ("0..1", _one_of(OUTCOME_CODES)),
    "outcomeDesc": ("0..1", _string),
    "purposeOfEvent": ("0..*", CODEABLE_CONCEPT),
    "agent": ("1..*", AGENT),
    "source": ("1..1", SOURCE),
    "entity": ("0..*", _entity),
}  # fmt: skip


def validate_audit_event(resource: Any, path: str = "AuditEvent") -> list[str]:
    errors: list[str] = []
    _complex(AUDIT_EVENT_ELEMENTS)(resource, path, errors)
    agents = resource.get("agent") if isinstance(resource, dict) else None
    if isinstance(agents, list) and not any(
        isinstance(a, dict) and a.get("requestor") is True for a in agents
    ):
        errors.append(f"{path}.agent: no agent is the requestor")
    return errors


def validate_bundle(bundle: Any) -> list[str]:
    """Errors of a Bundle whose entries are AuditEvents (``[]`` when it conforms)."""
    errors: list[str] = []

    def entry(value: Any, path: str, errs: list[str]) -> None:
        _complex({"fullUrl": ("0..1", _uri), "resource": ("0..1", lambda *a: None)})(
            value, path, errs
        )
        if isinstance(value, dict) and "resource" in value:
            errs.extend(validate_audit_event(value["resource"], f"{path}.resource"))

    _complex(
        {
            "resourceType": ("1..1", _one_of({"Bundle"})),
            "type": ("1..1", _one_of(BUNDLE_TYPES)),
            "timestamp": ("0..1", _instant),
            "total": ("0..1", _unsigned),
            "entry": ("0..*", entry),
        }
    )(bundle, "Bundle", errors)
    if (
        isinstance(bundle, dict)
        and "total" in bundle
        and bundle.get("type") not in ("searchset", "history")
    ):
        errors.append("Bundle.total: only for searchset or history bundles (bdl-1)")
    urls = [e.get("fullUrl") for e in bundle.get("entry", []) if isinstance(e, dict)]
    if len([u for u in urls if u]) != len({u for u in urls if u}):
        errors.append("Bundle.entry.fullUrl: must be unique (bdl-7)")
    return errors
