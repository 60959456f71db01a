"""Errors of the audit layer, each with a stable ``code``.

Audit *findings* (a tampered block, a decision that contradicts its policy)
are data, collected in the report; these exceptions are for the audit itself
being unable to run (an unreadable source, a bad option) or, at the very end,
for a replay that found problems, so the CLI exits non-zero with one line.
"""

from __future__ import annotations

from crypto.errors import AccessLedgerError


class AuditError(AccessLedgerError):
    """Base of audit-layer errors."""

    code = "audit_error"


class AuditSourceError(AuditError):
    """The ledger to audit cannot be read (missing file, no home ledger, HTTP failure)."""

    code = "audit_source_unavailable"


class AuditInputError(AuditError):
    """A side input (key-release log, store, option) is malformed; the message says where."""

    code = "audit_input_invalid"


class AuditFailedError(AuditError):
    """Replay finished and found problems; the message is the one-line summary."""

    code = "audit_failed"
