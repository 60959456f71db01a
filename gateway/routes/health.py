"""``/healthz``, ``/metrics`` and ``GET /v1/ledger``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.deps import PROBLEMS, CallerDep, ServiceDep
from gateway.errors import Unavailable
from gateway.metrics import CONTENT_TYPE
from gateway.routing import StrictRoute
from gateway.schemas import Health, LedgerInfo, Problem

router = APIRouter(route_class=StrictRoute)


@router.get(
    "/healthz",
    response_model=Health,
    tags=["operations"],
    responses={503: {"model": Problem, "description": "The ledger network has stopped"}},
)
def healthz(service: ServiceDep) -> Health:
    """Liveness: the ledger network runs; its height and channel."""
    if not service.ledger.running():
        raise Unavailable("the ledger network has stopped")
    return Health(status="ok", height=service.ledger.height, channel=service.ledger.channel)


@router.get(
    "/metrics",
    tags=["operations"],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
def metrics(service: ServiceDep) -> Response:
    """Request counts and latencies, transactions, decisions, key releases, problems."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/ledger", response_model=LedgerInfo, tags=["ledger"], responses=PROBLEMS)
def ledger_info(service: ServiceDep, caller: CallerDep) -> LedgerInfo:
    """Channel, chaincode, height, anchored policy and limits: what a client needs to propose."""
    del caller  # authenticated by the middleware; any identity may read this
    return service.ledger_info()
