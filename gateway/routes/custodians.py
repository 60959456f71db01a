"""``/v1/departments/{org}/custodian-key/rotation``: rotate a department's custodian key.

An operator job (DESIGN.md section 2), signed like every ``/v1`` request and
allowed only to an admin of that department
(:func:`policies.operator.require_department_admin`). The gateway generates
the new key, re-seals every stored tier key of the department to it in
batches and retires the old key (:mod:`gateway.rotation`); releases keep
working throughout, because the custodian holds both keys until no row
needs the old one. Re-sending the request after a crash or an error resumes
the interrupted rotation.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from chaincode.codec import format_time
from crypto.errors import AccessLedgerError
from gateway.custodian_keys import CustodianKeyRing
from gateway.deps import PROBLEMS, CallerDep, ServiceDep
from gateway.errors import Conflict, Forbidden, GatewayError, NotFound
from gateway.rotation import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    RotationInProgress,
    RotationResult,
    rotate_custodian_key,
)
from gateway.routing import StrictRoute
from gateway.schemas import Problem
from gateway.store import StoreBusyError
from policies.operator import OperatorForbidden, require_department_admin

router = APIRouter(prefix="/v1/departments", tags=["operator"], route_class=StrictRoute)
OrgName = Annotated[
    str, Path(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", description="Department (organisation)")
]


class RotationOptions(BaseModel):
    """Optional body of a rotation request."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="Sealed keys re-sealed per store transaction.",
    )


class CustodianKeyRotation(BaseModel):
    """The outcome of a finished custodian key rotation."""

    org: str
    old_key_id: str = Field(description="Key id (16 hex digits of SHA-256) of the retired key.")
    new_key_id: str = Field(description="Key id of the key every stored tier key is sealed to.")
    resealed: int = Field(description="Stored tier keys this request re-sealed.")
    resumed: bool = Field(description="True if this request finished an interrupted rotation.")
    started_at: str
    finished_at: str


def _out(result: RotationResult) -> CustodianKeyRotation:
    return CustodianKeyRotation(
        org=result.org,
        old_key_id=result.old_key_id,
        new_key_id=result.new_key_id,
        resealed=result.resealed,
        resumed=result.resumed,
        started_at=format_time(result.started_at),
        finished_at=format_time(result.finished_at),
    )


def _problem(description: str) -> dict[str, object]:
    return {"model": Problem, "description": description}


@router.post(
    "/{org}/custodian-key/rotation",
    response_model=CustodianKeyRotation,
    responses={
        **PROBLEMS,
        403: _problem("The caller is not an admin of this department (not_admin, ...)"),
        404: _problem("No such department (unknown_org)"),
        409: _problem("A rotation of this department is running (rotation_in_progress)"),
    },
)
async def rotate(
    org: OrgName,
    service: ServiceDep,
    caller: CallerDep,
    body: RotationOptions | None = None,
) -> CustodianKeyRotation:
    """Generate a new custodian key for ``org`` and re-seal its whole store to it."""
    custodians = service.custodians
    if not custodians.has_custodian(org):
        raise NotFound(f"no department named {org!r} has a key custodian", code="unknown_org")
    try:
        require_department_admin(caller, org)
    except OperatorForbidden as exc:
        raise Forbidden(exc.message, code=exc.code) from exc
    options = body or RotationOptions()
    store = custodians.custodian(org).store

    def install(ring: CustodianKeyRing) -> None:
        custodians.install_keys(org, ring)

    try:
        result = await asyncio.to_thread(
            rotate_custodian_key,
            service.home,
            org,
            store,
            now=service.now,
            batch_size=options.batch_size,
            on_keys=install,
            finishing=lambda: custodians.sealing(org),
        )
    except RotationInProgress as exc:
        raise Conflict(exc.message, code=exc.code) from exc
    except StoreBusyError as exc:
        # Resumable: the rows re-sealed so far stay; a rerun finishes the rest.
        raise GatewayError(exc.message, code=exc.code, status=503) from exc
    except AccessLedgerError as exc:
        raise GatewayError(exc.message, code=exc.code, status=500) from exc
    return _out(result)
