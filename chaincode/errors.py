"""Errors the AccessLedger contract raises, and how they travel back to the client.

Every deliberate refusal is a :class:`ContractError` (an
:class:`~crypto.errors.AccessLedgerError`) with a stable ``code`` and the
Fabric response ``status`` it maps to. The contract turns it into an error
``peer.Response`` whose message is ``"[<code>] <text>"``: readable in
``peer chaincode invoke`` output and parseable by the gateway with
:func:`parse_error_message`. A Fabric peer refuses to endorse any response
with status >= 400, so a refused call never reaches the ledger (I7).

A *policy denial* of an access request is not an error: it is a committed
access event (I3), returned with status 200.

Messages never echo subject data, only identifiers that are already on the
ledger (pseudonyms, record ids, MSP ids) and the rule that failed (I1).
"""

from __future__ import annotations

import re

from crypto.errors import AccessLedgerError

#: Response status of a malformed argument or a broken precondition.
BAD_REQUEST = 400
#: Response status of an authenticated caller who may not do this.
FORBIDDEN = 403
#: Response status of a missing record, event, consent or policy.
NOT_FOUND = 404
#: Response status of a state conflict (already exists, replayed nonce, ...).
CONFLICT = 409
#: Response status of an unexpected failure inside the contract.
INTERNAL = 500

_MESSAGE = re.compile(r"^\[(?P<code>[a-z0-9_]+)\] (?P<text>.*)$", re.DOTALL)


class ContractError(AccessLedgerError):
    """A call the contract refuses; nothing is written."""

    code = "contract_error"
    status = BAD_REQUEST


class InvalidArgument(ContractError):
    """The argument is not what the function takes (shape, format, size)."""

    code = "invalid_argument"


class Forbidden(ContractError):
    """The transaction's creator is not allowed to do this."""

    code = "forbidden"
    status = FORBIDDEN


class NotFound(ContractError):
    """The named record, event, consent, key or policy version does not exist."""

    code = "not_found"
    status = NOT_FOUND


class Conflict(ContractError):
    """The state does not allow this (already exists, already closed, stale version)."""

    code = "conflict"
    status = CONFLICT


class RequestSignatureInvalid(ContractError):
    """A signed document is not signed by the transaction's creator."""

    code = "request_signature_invalid"
    status = FORBIDDEN


class RequestReplayed(ContractError):
    """The nonce of a signed document was already used by the same creator."""

    code = "request_replayed"
    status = CONFLICT


class RequestStale(ContractError):
    """A signed document's timestamp is outside the window around the transaction time."""

    code = "request_stale"


class NotInitialised(ContractError):
    """``InitLedger`` has not run: no departments are known."""

    code = "ledger_not_initialised"
    status = CONFLICT


class PolicyNotInstalled(ContractError):
    """No policy bundle is anchored yet, so nothing can be decided."""

    code = "policy_not_installed"
    status = CONFLICT


def error_message(error: AccessLedgerError) -> str:
    """The response message for ``error``: ``"[code] text"``."""
    return f"[{error.code}] {error.message}"


def error_status(error: AccessLedgerError) -> int:
    """The response status for ``error`` (400 for errors raised outside the contract)."""
    status = getattr(error, "status", BAD_REQUEST)
    return status if isinstance(status, int) and status >= BAD_REQUEST else BAD_REQUEST


def parse_error_message(message: str) -> tuple[str, str]:
    """Split a contract error message into ``(code, text)``.

    A message that does not follow the contract's format (a peer or shim
    error, for instance) comes back as ``("chaincode_error", message)``.
    """
    match = _MESSAGE.match(message)
    if match is None:
        return "chaincode_error", message
    return match.group("code"), match.group("text")
