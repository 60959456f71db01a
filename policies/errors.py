"""Errors raised by the policies package.

All derive from :class:`crypto.errors.AccessLedgerError` so the gateway and the
CLI handle them like every other deliberate error; each carries a stable
``code``. Messages never echo payload values (invariant I1): they name the field
by JSON pointer and the rule it broke, not what the caller sent.
"""

from __future__ import annotations

from crypto.errors import AccessLedgerError


class PolicyError(AccessLedgerError):
    """Base of policies-package errors."""

    code = "policy_error"


class CatalogueError(PolicyError):
    """The catalogue itself is malformed, or a record type / version is unknown."""

    code = "catalogue_invalid"


class UnknownRecordTypeError(CatalogueError):
    """A record type or schema version that the catalogue does not define."""

    code = "record_type_unknown"


class CatalogueValidationError(PolicyError):
    """A payload does not conform to its record type's schema.

    ``pointer`` is the JSON pointer (RFC 6901) of the offending field and
    ``rule`` the JSON Schema keyword it violated, so callers can build a
    problem+json response without parsing the message.
    """

    code = "payload_invalid"

    def __init__(self, message: str, *, pointer: str, rule: str) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.rule = rule


class PolicyRequestError(PolicyError):
    """An authorisation request is malformed (bad tier, region, clearance, ...)."""

    code = "policy_request_invalid"


class PolicySetError(PolicyError):
    """A Cedar schema or policy set does not parse, validate or follow our conventions."""

    code = "policy_set_invalid"


class BundleError(PolicyError):
    """A serialised policy bundle is malformed."""

    code = "policy_bundle_invalid"


class ApprovalError(PolicyError):
    """One governance approval is invalid: not an admin, wrong signature, bad encoding."""

    code = "approval_invalid"


class InsufficientApprovalsError(PolicyError):
    """Fewer than the required number of distinct departments approved a bundle."""

    code = "approvals_insufficient"
