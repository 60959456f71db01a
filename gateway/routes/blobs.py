"""``GET /v1/blobs/{sha256}``: a ciphertext, only under a live grant covering it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from gateway.deps import PROBLEMS, CallerDep, ServiceDep
from gateway.routing import StrictRoute
from gateway.schemas import Problem

router = APIRouter(prefix="/v1/blobs", tags=["blobs"], route_class=StrictRoute)
Address = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the ciphertext")]


@router.get(
    "/{address}",
    response_class=Response,
    responses={
        **PROBLEMS,
        200: {"content": {"application/octet-stream": {}}, "description": "The ciphertext"},
        403: {
            "model": Problem,
            "description": "No live grant covers it (grant_required, grant_expired)",
        },
        404: {"model": Problem, "description": "A grant covers it but it is not stored"},
        410: {"model": Problem, "description": "The record was erased (record_erased)"},
    },
)
def get_blob(address: Address, service: ServiceDep, caller: CallerDep) -> Response:
    """The ciphertext stored under ``address``; its SHA-256 is the address."""
    data = service.blob(caller, address)
    return Response(data, media_type="application/octet-stream", headers={"ETag": f'"{address}"'})
