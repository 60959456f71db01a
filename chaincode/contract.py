"""The AccessLedger chaincode: a ``fabric_shim`` ``Chaincode`` dispatching to the functions.

:class:`AccessLedgerChaincode` implements the low-level chaincode interface of
fabric-chaincode-python 2.5.4 (``init(stub)`` / ``invoke(stub)`` returning a
``peer.Response``), so the same object runs in the embedded engine's
``ChaincodeHost`` and, through :mod:`chaincode.server`, as chaincode-as-a-service
on a Fabric peer.

Calling convention: ``[function, argument]`` where ``argument`` is one JSON
object (``"{}"`` or omitted for functions without parameters). The payload of
a successful response is canonical JSON of the result. A refusal is a
response with status >= 400 and the message ``"[code] text"`` (see
:mod:`chaincode.errors`); a Fabric peer does not endorse it, so nothing is
written. Functions listed in :data:`EVALUATE_FUNCTIONS` only read and are
meant to be evaluated (queried), never submitted.

Nothing here reads the wall clock, draws random numbers or depends on
iteration order of unordered data: the same proposal on the same state gives
byte-identical responses and read-write sets on every endorser (I4).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from fabric_chaincode_python.fabric_shim.interfaces import Chaincode
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2

from chaincode import (
    access,
    citizens,
    departments,
    erasure,
    governance,
    records,
    registry,
    reviews,
)
from chaincode.codec import (
    MAX_ARGUMENT_BYTES,
    MAX_LARGE_ARGUMENT_BYTES,
    Listing,
    dumps,
    parse_object,
)
from chaincode.context import Tx
from chaincode.errors import INTERNAL, error_message, error_status
from chaincode.ledger import Ledger
from crypto.errors import AccessLedgerError

proposal_response_pb2: Any = _proposal_response_pb2

#: The chaincode name the network deploys this contract under.
CHAINCODE_NAME: Final = "accessledger"
OK: Final = 200

#: A function's answer: a JSON object, or a :class:`Listing` of stored objects.
Handler = Callable[[Tx, dict[str, Any]], Awaitable[dict[str, Any] | Listing]]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Function:
    """One contract function: its implementation, whether it only reads, its argument limit."""

    handler: Handler
    evaluate: bool = False
    max_argument_bytes: int = MAX_ARGUMENT_BYTES


FUNCTIONS: Final[Mapping[str, Function]] = {
    "InitLedger": Function(governance.init_ledger, max_argument_bytes=MAX_LARGE_ARGUMENT_BYTES),
    "InstallPolicy": Function(
        governance.install_policy, max_argument_bytes=MAX_LARGE_ARGUMENT_BYTES
    ),
    "GetPolicy": Function(governance.get_policy, evaluate=True),
    "AddDepartment": Function(departments.add_department),
    "RegisterRecord": Function(records.register_record),
    "AmendRecord": Function(records.amend_record),
    "EraseRecord": Function(erasure.erase_record),
    "GetRecord": Function(records.get_record, evaluate=True),
    "ListRecordsBySubject": Function(records.list_records_by_subject, evaluate=True),
    "RequestAccess": Function(access.request_access),
    "GetAccessEvent": Function(access.get_access_event, evaluate=True),
    "ListAccessBySubject": Function(access.list_access_by_subject, evaluate=True),
    "ListAccessByOfficer": Function(access.list_access_by_officer, evaluate=True),
    "ListAccessByDepartment": Function(access.list_access_by_department, evaluate=True),
    "RegisterEncryptionKey": Function(registry.register_encryption_key),
    "GetEncryptionKey": Function(registry.get_encryption_key, evaluate=True),
    "RegisterCitizen": Function(citizens.register_citizen),
    "GrantConsent": Function(citizens.grant_consent),
    "RevokeConsent": Function(citizens.revoke_consent),
    "ListConsents": Function(citizens.list_consents, evaluate=True),
    "ContestAccess": Function(citizens.contest_access),
    "ReviewAccess": Function(reviews.review_access),
    "ListOpenReviews": Function(reviews.list_open_reviews, evaluate=True),
}

#: Functions that only read state: evaluate them, do not submit them.
EVALUATE_FUNCTIONS: Final = frozenset(name for name, f in FUNCTIONS.items() if f.evaluate)
#: The function Fabric's ``--init-required`` Init transaction must call.
INIT_FUNCTION: Final = "InitLedger"


def _response(status: int, *, payload: bytes = b"", message: str = "") -> Any:
    return proposal_response_pb2.Response(status=status, payload=payload, message=message)


def _refusal(error: AccessLedgerError) -> Any:
    return _response(error_status(error), message=error_message(error))


class AccessLedgerChaincode(Chaincode):  # type: ignore[misc]
    """The AccessLedger smart contract (see the module docstring)."""

    async def init(self, stub: Any) -> Any:
        """Fabric's Init transaction: runs ``InitLedger``; without a function it does nothing."""
        try:
            function, _ = stub.get_function_and_parameters()
        except Exception:
            function = ""
        if not function:
            return _response(OK)
        if function != INIT_FUNCTION:
            return _refusal(
                AccessLedgerError(
                    f"only {INIT_FUNCTION} runs as the Init transaction, not {function}",
                    code="invalid_init",
                )
            )
        return await self.invoke(stub)

    async def invoke(self, stub: Any) -> Any:
        """Run the function named by the proposal; refusals become error responses."""
        function = "?"
        try:
            try:
                function, params = stub.get_function_and_parameters()
            except Exception:
                raise AccessLedgerError(
                    "the proposal names no function", code="unknown_function"
                ) from None
            spec = FUNCTIONS.get(function)
            if spec is None:
                raise AccessLedgerError(
                    f"unknown function {function!r}; see docs/chaincode.md", code="unknown_function"
                )
            if len(params) > 1:
                raise AccessLedgerError(
                    f"{function} takes one JSON object argument, got {len(params)} arguments",
                    code="invalid_argument",
                )
            arg = parse_object(
                params[0] if params else "{}",
                what=f"{function} argument",
                max_bytes=spec.max_argument_bytes,
            )
            result = await spec.handler(Tx(Ledger(stub)), arg)
            return _response(OK, payload=dumps(result))
        except AccessLedgerError as exc:
            return _refusal(exc)
        except Exception as exc:
            # Only the type is logged: exception text could echo argument values (I1).
            logger.error("chaincode function %s failed with %s", function, type(exc).__name__)
            logger.debug("chaincode failure detail", exc_info=True)
            return _response(
                INTERNAL, message=f"[internal_error] {function} failed ({type(exc).__name__})"
            )
