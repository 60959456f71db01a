"""Typed authorisation requests: who (Principal), does what (Action), to what, and why.

These dataclasses are the only way requests reach the Cedar engine, so their
validation is the engine's input validation: a malformed request raises
:class:`~policies.errors.PolicyRequestError` here, before evaluation, and a
well-formed one always evaluates without Cedar errors. ``to_dict``/``from_dict``
give the plain-JSON form the chaincode and the audit replay store and re-read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from policies.errors import PolicyRequestError
from policies.vocabulary import TIERS, tier_rank

_ORG = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_SNAKE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_REGION = re.compile(r"^[1-8][0-9]{5}$")
_MAX_ID = 256
_MAX_CASE_REF = 128

#: AccessLog department meaning "the events of every department".
ALL_DEPARTMENTS: Final = "*"


class Action(StrEnum):
    """Cedar actions (``Action::"<value>"``)."""

    REGISTER = "register"
    READ = "read"
    EMERGENCY_READ = "emergency_read"
    READ_EVENTS = "read_events"

    def uid(self) -> dict[str, str]:
        return {"type": "Action", "id": self.value}


def _text(name: str, value: Any, pattern: re.Pattern[str] | None = None, limit: int = 64) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise PolicyRequestError(f"{name} must be a non-empty string of at most {limit} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise PolicyRequestError(f"{name} has an invalid format (expected {pattern.pattern})")
    return value


def _fields(
    kind: str, data: Any, required: AbstractSet[str], optional: AbstractSet[str] = frozenset()
) -> None:
    if not isinstance(data, Mapping):
        raise PolicyRequestError(f"{kind} must be an object")
    missing = sorted(required - set(data))
    unknown = sorted(str(k) for k in set(data) - required - optional)
    if missing:
        raise PolicyRequestError(f"{kind} lacks {', '.join(missing)}")
    if unknown:
        raise PolicyRequestError(f"{kind} has unknown field(s) {', '.join(unknown)}")


@dataclass(frozen=True)
class Principal:
    """An officer: the Cedar ``Officer`` entity.

    ``clearance`` is the highest tier (0..3) the officer may ever receive; it
    comes from the ``clearance`` attribute of their certificate.
    """

    officer_id: str
    org: str
    role: str
    region: str
    clearance: int

    def __post_init__(self) -> None:
        _text("principal.officer_id", self.officer_id, limit=_MAX_ID)
        _text("principal.org", self.org, _ORG)
        _text("principal.role", self.role, _SNAKE)
        _text("principal.region", self.region, _REGION)
        if (
            not isinstance(self.clearance, int)
            or isinstance(self.clearance, bool)
            or not 0 <= self.clearance < len(TIERS)
        ):
            raise PolicyRequestError("principal.clearance must be an integer 0..3")

    @classmethod
    def from_attributes(cls, officer_id: str, org: str, attributes: Mapping[str, str]) -> Principal:
        """Build from certificate attributes (``role``, ``region``, ``clearance`` as text)."""
        return cls.from_dict(
            {
                "officer_id": officer_id,
                "org": org,
                "role": attributes.get("role"),
                "region": attributes.get("region"),
                "clearance": attributes.get("clearance"),
            }
        )

    def uid(self) -> dict[str, str]:
        return {"type": "Officer", "id": self.officer_id}

    def entity(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "org": self.org,
            "role": self.role,
            "region": self.region,
            "clearance": self.clearance,
        }
        return {"uid": self.uid(), "attrs": attrs, "parents": []}

    def to_dict(self) -> dict[str, Any]:
        return {
            "officer_id": self.officer_id,
            "org": self.org,
            "role": self.role,
            "region": self.region,
            "clearance": self.clearance,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Principal:
        """Inverse of :meth:`to_dict`; ``clearance`` may also be a decimal string."""
        _fields("principal", data, {"officer_id", "org", "role", "region", "clearance"})
        clearance = data["clearance"]
        if isinstance(clearance, str) and clearance.isascii() and clearance.isdigit():
            clearance = int(clearance)
        return cls(
            officer_id=data["officer_id"],
            org=data["org"],
            role=data["role"],
            region=data["region"],
            clearance=clearance,
        )


@dataclass(frozen=True)
class RecordResource:
    """A ledger record seen at one tier: the Cedar ``Record`` entity.

    The same record asked for at two tiers is two resources; their Cedar ids
    differ (``<record_id>#T1``, ``<record_id>#T2``) so both fit in one batch.
    """

    record_id: str
    owner_org: str
    record_type: str
    tier: str
    region: str

    def __post_init__(self) -> None:
        _text("resource.record_id", self.record_id, limit=_MAX_ID)
        _text("resource.owner_org", self.owner_org, _ORG)
        _text("resource.record_type", self.record_type, _SNAKE)
        _text("resource.region", self.region, _REGION)
        if self.tier not in TIERS:
            raise PolicyRequestError(f"resource.tier must be one of {', '.join(TIERS)}")

    def uid(self) -> dict[str, str]:
        return {"type": "Record", "id": f"{self.record_id}#{self.tier}"}

    def entity(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "owner_org": self.owner_org,
            "record_type": self.record_type,
            "tier": tier_rank(self.tier),
            "region": self.region,
        }
        return {"uid": self.uid(), "attrs": attrs, "parents": []}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "record",
            "record_id": self.record_id,
            "owner_org": self.owner_org,
            "record_type": self.record_type,
            "tier": self.tier,
            "region": self.region,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordResource:
        keys = {"record_id", "owner_org", "record_type", "tier", "region"}
        _fields("record resource", data, keys, {"kind"})
        if data.get("kind", "record") != "record":
            raise PolicyRequestError("record resource has the wrong kind")
        return cls(**{k: data[k] for k in keys})


@dataclass(frozen=True)
class AccessLogResource:
    """The access events of one department's officers (``"*"``: all departments)."""

    department: str

    def __post_init__(self) -> None:
        if self.department != ALL_DEPARTMENTS:
            _text("resource.department", self.department, _ORG)

    def uid(self) -> dict[str, str]:
        return {"type": "AccessLog", "id": self.department}

    def entity(self) -> dict[str, Any]:
        return {"uid": self.uid(), "attrs": {"department": self.department}, "parents": []}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "access_log", "department": self.department}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccessLogResource:
        _fields("access-log resource", data, {"department"}, {"kind"})
        if data.get("kind", "access_log") != "access_log":
            raise PolicyRequestError("access-log resource has the wrong kind")
        return cls(department=data["department"])


Resource = RecordResource | AccessLogResource


def resource_from_dict(data: Mapping[str, Any]) -> Resource:
    """Decode either resource kind by its ``kind`` field."""
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind == "record":
        return RecordResource.from_dict(data)
    if kind == "access_log":
        return AccessLogResource.from_dict(data)
    raise PolicyRequestError("resource.kind must be 'record' or 'access_log'")


@dataclass(frozen=True)
class AccessContext:
    """Why the officer asks: the Cedar request context.

    ``case_ref`` is ``None`` when no case reference was given; a blank string
    is normalised to ``None`` so "missing" has exactly one representation.
    ``has_consent`` is computed by the caller (the chaincode) from the consents
    on the ledger; see docs/policies.md for the rule.
    """

    purpose: str
    case_ref: str | None = None
    has_consent: bool = False
    emergency: bool = False

    def __post_init__(self) -> None:
        _text("context.purpose", self.purpose, _SNAKE)
        if self.case_ref is not None:
            if not isinstance(self.case_ref, str):
                raise PolicyRequestError("context.case_ref must be a string or null")
            stripped = self.case_ref.strip()
            object.__setattr__(self, "case_ref", stripped or None)
            if len(stripped) > _MAX_CASE_REF:
                raise PolicyRequestError(
                    f"context.case_ref must be at most {_MAX_CASE_REF} characters"
                )
        for name in ("has_consent", "emergency"):
            if not isinstance(getattr(self, name), bool):
                raise PolicyRequestError(f"context.{name} must be a boolean")

    def to_cedar(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "case_ref": self.case_ref or "",
            "has_consent": self.has_consent,
            "emergency": self.emergency,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "has_consent": self.has_consent,
            "emergency": self.emergency,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccessContext:
        _fields("context", data, {"purpose"}, {"case_ref", "has_consent", "emergency"})
        return cls(
            purpose=data["purpose"],
            case_ref=data.get("case_ref"),
            has_consent=data.get("has_consent", False),
            emergency=data.get("emergency", False),
        )


def check_action_resource(action: Action, resource: Resource) -> None:
    """Raise unless ``resource`` is the kind of entity ``action`` applies to."""
    wants_log = action is Action.READ_EVENTS
    if wants_log != isinstance(resource, AccessLogResource):
        expected = "an access-log" if wants_log else "a record"
        raise PolicyRequestError(f"action {action.value} applies to {expected} resource")


@dataclass(frozen=True)
class AccessRequest:
    """One authorisation question: may ``principal`` do ``action`` to ``resource``?"""

    principal: Principal
    action: Action
    resource: Resource
    context: AccessContext

    def __post_init__(self) -> None:
        if not isinstance(self.action, Action):
            try:
                object.__setattr__(self, "action", Action(self.action))
            except ValueError:
                raise PolicyRequestError(f"unknown action {self.action!r}") from None
        check_action_resource(self.action, self.resource)

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal.to_dict(),
            "action": self.action.value,
            "resource": self.resource.to_dict(),
            "context": self.context.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccessRequest:
        _fields("request", data, {"principal", "action", "resource", "context"})
        return cls(
            principal=Principal.from_dict(data["principal"]),
            action=data["action"],
            resource=resource_from_dict(data["resource"]),
            context=AccessContext.from_dict(data["context"]),
        )
