"""``/v1/audit``: the raw ledger for independent replay, access events, reviews."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from gateway.deps import PROBLEMS, QUERY_PROBLEMS, TRANSACTION_PROBLEMS, CallerDep, ServiceDep
from gateway.errors import RequestInvalid
from gateway.routing import StrictRoute
from gateway.schemas import EventList, PreparedTransaction, Problem, ReviewBody
from gateway.service.notes import (
    REVIEW_NOTE,
    argument_member,
    event_subject_readers,
    text_hooks,
)
from gateway.service.queries import parse_moment
from network.fabric.blocks import encode_delimited

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=StrictRoute)
ORG = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"


@router.get(
    "/blocks",
    response_class=StreamingResponse,
    responses={
        **PROBLEMS,
        **QUERY_PROBLEMS,
        200: {
            "content": {"application/octet-stream": {}},
            "description": "Blocks as varint length + serialized common.Block, from `from` on",
        },
        403: {"model": Problem, "description": "The policy does not let the caller read every log"},
    },
)
def blocks(
    service: ServiceDep,
    caller: CallerDep,
    start: Annotated[int, Query(alias="from", ge=0)] = 0,
) -> StreamingResponse:
    """The committed blocks ``from .. height-1`` (Fabric's length-delimited framing)."""
    service.queries.require_ledger_reader(caller, now=service.now())
    height = service.ledger.height
    if start > height:
        raise RequestInvalid(f"from={start} is beyond the ledger height {height}")

    def stream() -> Iterator[bytes]:
        for data in service.ledger.block_bytes(start, height):
            yield encode_delimited(data)

    return StreamingResponse(
        stream(),
        media_type="application/octet-stream",
        headers={"X-AccessLedger-Height": str(height)},
    )


@router.get("/events", response_model=EventList, responses={**PROBLEMS, **QUERY_PROBLEMS})
async def events(
    service: ServiceDep,
    caller: CallerDep,
    department: Annotated[str | None, Query(pattern=ORG)] = None,
    officer_msp: Annotated[str | None, Query(pattern=ORG)] = None,
    officer_fingerprint: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    subject: Annotated[str | None, Query(pattern=r"^ps1:[a-z2-7]{52}$")] = None,
    open_review: bool = False,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    """Access events by department (with from and to), officer, subject, or open review."""
    result: dict[str, Any] = await service.queries.audit_events(
        caller,
        now=service.now(),
        department=department,
        officer_msp=officer_msp,
        officer_fingerprint=officer_fingerprint,
        subject=subject,
        open_review=open_review,
        start=parse_moment(start, "from"),
        end=parse_moment(end, "to"),
        limit=limit,
    )
    return EventList(events=result["events"], truncated=result["truncated"])


@router.post(
    "/reviews",
    status_code=201,
    response_model=PreparedTransaction,
    responses={**PROBLEMS, **TRANSACTION_PROBLEMS},
)
async def review(body: ReviewBody, service: ServiceDep, caller: CallerDep) -> PreparedTransaction:
    """Endorse a ``ReviewAccess`` proposal; the note text, if given, is stored encrypted.

    The note is sealed to the Audit custodian and to the registered keys of
    the reviewed event's subject (``GET /v1/me/notes/{event_id}``).
    """
    before, after = text_hooks(
        body.note,
        stores=service.stores,
        sealing=service.note_sealing,
        kind=REVIEW_NOTE,
        member="note_hash",
        committed=argument_member("note_hash"),
        readers=event_subject_readers(service.queries),
    )
    return await service.propose(
        caller, body.proposal, {"ReviewAccess"}, before=before, after=after
    )
