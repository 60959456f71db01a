"""``/v1/transactions``: endorse generic proposals, commit any prepared transaction, status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from gateway.deps import PROBLEMS, QUERY_PROBLEMS, TRANSACTION_PROBLEMS, CallerDep, ServiceDep
from gateway.errors import NotFound
from gateway.routing import StrictRoute
from gateway.schemas import (
    CommitBody,
    CommittedTransaction,
    PreparedTransaction,
    ProposalBody,
    TransactionStatus,
)
from gateway.service.governance import refuse_revoked_approvals
from gateway.service.records import AMEND, REGISTER
from network.engine.proposal import Proposal

router = APIRouter(prefix="/v1/transactions", tags=["transactions"], route_class=StrictRoute)

#: Functions proposed through the generic endpoint (the others have their own resource).
GENERIC_FUNCTIONS = frozenset(
    {
        REGISTER,
        AMEND,
        "RegisterEncryptionKey",
        "RegisterCitizen",
        "AddDepartment",
        "InstallPolicy",
    }
)
#: Functions whose argument carries admins' approvals.
GOVERNANCE_FUNCTIONS = frozenset({"AddDepartment", "InstallPolicy"})
TxId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="Transaction id (hex)")]


@router.post(
    "",
    status_code=201,
    response_model=PreparedTransaction,
    responses={**PROBLEMS, **TRANSACTION_PROBLEMS},
)
async def propose(
    body: ProposalBody, service: ServiceDep, caller: CallerDep, response: Response
) -> PreparedTransaction:
    """Endorse a caller-signed ``RegisterRecord``, ``AmendRecord``, ``RegisterEncryptionKey``
    or ``RegisterCitizen`` proposal; answer the transaction to sign."""

    def stored(proposal: Proposal, argument: dict[str, Any]) -> None:
        function = proposal.args[0].decode("utf-8")
        if function in (REGISTER, AMEND):
            service.records.check_stored(function, argument, tx_id=proposal.tx_id)
        elif function in GOVERNANCE_FUNCTIONS:
            refuse_revoked_approvals(argument, service.membership)

    prepared = await service.propose(caller, body.proposal, GENERIC_FUNCTIONS, before=stored)
    response.headers["Location"] = f"/v1/transactions/{prepared.tx_id}"
    return prepared


@router.post(
    "/{tx_id}/commit",
    response_model=CommittedTransaction,
    responses={**PROBLEMS, **TRANSACTION_PROBLEMS},
)
async def commit(
    tx_id: TxId, body: CommitBody, service: ServiceDep, caller: CallerDep
) -> CommittedTransaction:
    """Sign-and-commit: verify the creator's signature, order, wait for the block.

    For ``RequestAccess`` the answer's ``access`` carries the decision and the
    tier keys sealed to the officer's registered X25519 key.
    """
    return await service.commit(
        caller, tx_id, body.signature, include_ciphertexts=body.include_ciphertexts
    )


@router.get("/{tx_id}", response_model=TransactionStatus, responses={**PROBLEMS, **QUERY_PROBLEMS})
def status(tx_id: TxId, service: ServiceDep, caller: CallerDep) -> TransactionStatus:
    """Where and how a transaction was committed (``404`` until it is)."""
    del caller
    committed = service.ledger.committed(tx_id)
    if committed is None:
        raise NotFound(f"transaction {tx_id} is not committed", code="transaction_not_committed")
    return TransactionStatus(
        tx_id=tx_id,
        block_number=committed.block_number,
        validation_code=committed.validation_code_name,
    )
