"""``/v1/access-requests``: an officer's signed request goes on the ledger; keys come back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from gateway.deps import PROBLEMS, TRANSACTION_PROBLEMS, CallerDep, ServiceDep
from gateway.routing import StrictRoute
from gateway.schemas import AccessRequestBody, AccessResult, PreparedTransaction
from gateway.service.notes import (
    JUSTIFICATION,
    document_member,
    request_subject_readers,
    text_hooks,
)

router = APIRouter(prefix="/v1/access-requests", tags=["access requests"], route_class=StrictRoute)
TxId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


@router.post(
    "",
    status_code=201,
    response_model=PreparedTransaction,
    responses={**PROBLEMS, **TRANSACTION_PROBLEMS},
)
async def request_access(
    body: AccessRequestBody, service: ServiceDep, caller: CallerDep, response: Response
) -> PreparedTransaction:
    """Endorse a ``RequestAccess`` proposal carrying the officer's signed request document.

    A break-glass justification sent as ``justification`` must hash to the
    signed document's ``justification_hash`` (else ``422
    justification_mismatch``, nothing endorsed); it is stored encrypted
    off-chain for the Audit department and the request's subject (``GET
    /v1/me/notes/{event_id}``). No decision is returned here: it
    exists only once the transaction is on the ledger. Commit with
    ``POST /v1/transactions/{tx_id}/commit``.
    """
    before, after = text_hooks(
        body.justification,
        stores=service.stores,
        sealing=service.note_sealing,
        kind=JUSTIFICATION,
        member="justification_hash",
        committed=document_member("justification_hash"),
        readers=request_subject_readers(service.queries),
        code="justification_mismatch",
    )
    prepared = await service.propose(
        caller, body.proposal, {"RequestAccess"}, before=before, after=after
    )
    response.headers["Location"] = f"/v1/access-requests/{prepared.tx_id}"
    return prepared


@router.get("/{tx_id}", response_model=AccessResult, responses={**PROBLEMS, **TRANSACTION_PROBLEMS})
async def get_access(
    tx_id: TxId,
    service: ServiceDep,
    caller: CallerDep,
    include_ciphertexts: Annotated[bool, Query()] = False,
) -> AccessResult:
    """The committed decision and key release again, for the officer who signed, while live."""
    return await service.access(caller, tx_id, include_ciphertexts=include_ciphertexts)
