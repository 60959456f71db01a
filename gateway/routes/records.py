"""``/v1/records``: validate, tier, encrypt and store a record; answer the argument to propose."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from gateway.deps import PROBLEMS, TRANSACTION_PROBLEMS, CallerDep, ServiceDep
from gateway.schemas import AmendmentInput, RecordDraft, RecordInput, TierRef
from gateway.service.records import Draft

router = APIRouter(prefix="/v1/records", tags=["records"])
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
