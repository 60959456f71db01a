"""``/v1/records``: validate, tier, encrypt and store a record; answer the argument to propose.

``DELETE /v1/records/{record_id}`` endorses a caller-signed ``EraseRecord``;
once it commits VALID the gateway crypto-shreds the record in its owner's
store (:mod:`gateway.service.erasure`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from gateway.deps import PROBLEMS, TRANSACTION_PROBLEMS, CallerDep, ServiceDep
from gateway.errors import GatewayError
from gateway.routing import StrictRoute
from gateway.schemas import (
    AmendmentInput,
    PreparedTransaction,
    ProposalBody,
    RecordDraft,
    RecordInput,
    TierRef,
)
from gateway.service.erasure import ERASE_FUNCTION, shred_when_committed
from gateway.service.records import Draft
from gateway.service.transactions import PendingTransaction
from network.engine.proposal import Proposal

router = APIRouter(prefix="/v1/records", tags=["records"], route_class=StrictRoute)
RecordId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")]


def _out(draft: Draft) -> RecordDraft:
    return RecordDraft(
        record_id=draft.record_id,
        version=draft.version,
        record_type=draft.record_type,
        schema_version=draft.schema_version,
        owner_org=draft.owner_org,
        region=draft.region,
        subject=draft.subject,
        function=draft.function,  # type: ignore[arg-type]
        tiers={tier: TierRef(**ref) for tier, ref in draft.tiers.items()},
        argument=draft.argument,
    )


@router.post(
    "", status_code=201, response_model=RecordDraft, responses={**PROBLEMS, **TRANSACTION_PROBLEMS}
)
async def register(
    body: RecordInput, service: ServiceDep, caller: CallerDep, response: Response
) -> RecordDraft:
    """Validate against the anchored catalogue, encrypt per tier, store in the owner's store.

    Then propose ``RegisterRecord(argument)`` through ``POST /v1/transactions``.
    """
    draft = await service.records.draft(caller, body, now=service.now())
    response.headers["Location"] = f"/v1/records/{draft.record_id}"
    return _out(draft)


@router.post(
    "/{record_id}/versions",
    status_code=201,
    response_model=RecordDraft,
    responses={**PROBLEMS, **TRANSACTION_PROBLEMS},
)
async def amend(
    record_id: RecordId, body: AmendmentInput, service: ServiceDep, caller: CallerDep
) -> RecordDraft:
    """The next version of a record; then propose ``AmendRecord(argument)``."""
    return _out(await service.records.draft(caller, body, now=service.now(), amend=record_id))


@router.delete(
    "/{record_id}",
    status_code=201,
    response_model=PreparedTransaction,
    responses={**PROBLEMS, **TRANSACTION_PROBLEMS},
)
async def erase(
    record_id: RecordId,
    body: ProposalBody,
    service: ServiceDep,
    caller: CallerDep,
    response: Response,
) -> PreparedTransaction:
    """Endorse an ``EraseRecord`` proposal naming this record; commit it to erase.

    Once the transaction commits VALID the record's tier keys and ciphertexts
    are destroyed in its owner's store before the commit is answered; the
    ledger keeps its hashes and access history. Only a registrar or admin of
    the owning department may erase (``403``); an erased record answers
    ``409 record_erased``.
    """

    def same_record(proposal: Proposal, argument: dict[str, Any]) -> None:
        if argument.get("record_id") != record_id:
            raise GatewayError(
                "the EraseRecord proposal does not name the record in the path",
                code="proposal_invalid",
                tx_id=proposal.tx_id,
            )

    async def watch(pending: PendingTransaction) -> None:
        settings = service.settings
        shred_when_committed(
            service.ledger,
            service.stores,
            pending.tx_id,
            record_id,
            wait=settings.pending_ttl_seconds + settings.commit_timeout_seconds,
        )

    prepared = await service.propose(
        caller, body.proposal, {ERASE_FUNCTION}, before=same_record, after=watch
    )
    response.headers["Location"] = f"/v1/transactions/{prepared.tx_id}"
    return prepared
