"""``/v1/governance``: the channel configuration and its updates (operator jobs).

Onboarding a department and revoking a certificate change the channel
configuration; see :mod:`gateway.service.governance`. Chaincode-level
governance (``AddDepartment``, ``InstallPolicy``) uses ``/v1/transactions``.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import PROBLEMS, TRANSACTION_PROBLEMS, CallerDep, ServiceDep
from gateway.routing import StrictRoute
from gateway.schemas import (
    ConfigBlockView,
    ConfigUpdateBody,
    ConfigUpdateResult,
    PolicyView,
    Problem,
)
from gateway.service.governance import current_config_block, submit_config_update

router = APIRouter(prefix="/v1/governance", tags=["governance"], route_class=StrictRoute)


@router.get("/config", response_model=ConfigBlockView, responses=PROBLEMS)
def config(service: ServiceDep, caller: CallerDep) -> ConfigBlockView:
    """The config block in force (any channel member may read it; it holds no personal data)."""
    block = current_config_block(service.network)
    return ConfigBlockView(
        block_number=block.block_number,
        sequence=block.sequence,
        block=block.encoded(),
        msp_ids=sorted(service.membership.msp_ids),
    )


@router.post(
    "/config-updates",
    status_code=201,
    response_model=ConfigUpdateResult,
    responses={
        **PROBLEMS,
        **TRANSACTION_PROBLEMS,
        403: {"model": Problem, "description": "Caller is not an admin, or not the creator"},
    },
)
async def config_update(
    body: ConfigUpdateBody, service: ServiceDep, caller: CallerDep
) -> ConfigUpdateResult:
    """Order an admin-signed channel config update and wait for its config block."""
    committed = await submit_config_update(service.network, caller, body.envelope)
    return ConfigUpdateResult(
        tx_id=committed.tx_id, block_number=committed.block_number, sequence=committed.sequence
    )


@router.get("/policy", response_model=PolicyView, responses=PROBLEMS)
def policy(service: ServiceDep, caller: CallerDep) -> PolicyView:
    """The anchored policy bundle in force (Cedar schema, policies, catalogue)."""
    anchored = service.policy.current()
    return PolicyView(
        version=anchored.version,
        bundle_hash=anchored.bundle_hash,
        bundle=anchored.bundle.to_dict(),
    )
