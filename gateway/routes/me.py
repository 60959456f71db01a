"""``/v1/me``: a citizen's view of every access to their data, consents, contests and notes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from gateway.deps import PROBLEMS, QUERY_PROBLEMS, TRANSACTION_PROBLEMS, CallerDep, ServiceDep
from gateway.errors import GatewayError
from gateway.routing import StrictRoute
from gateway.schemas import (
    AccessesPage,
    ConsentList,
    ContestBody,
    PreparedTransaction,
    Problem,
    ProposalBody,
)
from gateway.service.notes import (
    CONTEST_REASON,
    NoteList,
    argument_member,
    contesting_citizen_readers,
    subject_notes,
    text_hooks,
)
from gateway.service.queries import parse_moment
from network.engine.proposal import Proposal

router = APIRouter(prefix="/v1/me", tags=["citizens"], route_class=StrictRoute)
ORG = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
NOTE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {
        "model": Problem,
        "description": "Not an event about my data (not_found), or it has no note (note_not_found)",
    },
    409: {
        "model": Problem,
        "description": "No note key is sealed to this credential"
        " (encryption_key_not_registered, note_not_sealed_to_caller)",
    },
}


@router.get("/accesses", response_model=AccessesPage, responses={**PROBLEMS, **QUERY_PROBLEMS})
async def my_accesses(
    service: ServiceDep,
    caller: CallerDep,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    department: Annotated[str | None, Query(pattern=ORG)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> AccessesPage:
    """Every access to my data, oldest first: who, when, why, which records, the outcome."""
    return await service.queries.my_accesses(
        caller,
        now=service.now(),
        start=parse_moment(start, "from"),
        end=parse_moment(end, "to"),
        department=department,
        limit=limit,
        cursor=cursor,
    )


@router.get("/consents", response_model=ConsentList, responses={**PROBLEMS, **QUERY_PROBLEMS})
async def my_consents(service: ServiceDep, caller: CallerDep) -> ConsentList:
    """My consents (active, revoked, expired), as the ledger holds them."""
    result = await service.queries.my_consents(caller, now=service.now())
    return ConsentList(subject=result["subject"], consents=result.get("consents", []))


@router.post(
    "/consents",
    status_code=201,
    response_model=PreparedTransaction,
    responses={**PROBLEMS, **TRANSACTION_PROBLEMS},
)
async def grant_consent(
    body: ProposalBody, service: ServiceDep, caller: CallerDep, response: Response
) -> PreparedTransaction:
    """Endorse a ``GrantConsent`` proposal carrying my signed consent document."""
    prepared = await service.propose(caller, body.proposal, {"GrantConsent"})
    response.headers["Location"] = f"/v1/transactions/{prepared.tx_id}"
    return prepared


@router.delete(
    "/consents/{consent_id}",
    status_code=201,
    response_model=PreparedTransaction,
    responses={**PROBLEMS, **TRANSACTION_PROBLEMS},
)
async def revoke_consent(
    consent_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")],
    body: ProposalBody,
    service: ServiceDep,
    caller: CallerDep,
) -> PreparedTransaction:
    """Endorse a ``RevokeConsent`` proposal whose signed revocation names this consent."""

    def same_consent(proposal: Proposal, argument: dict[str, Any]) -> None:
        document = argument.get("document")
        if not isinstance(document, dict) or document.get("consent_id") != consent_id:
            raise GatewayError(
                "the signed revocation does not name the consent in the path",
                code="proposal_invalid",
                tx_id=proposal.tx_id,
            )

    return await service.propose(caller, body.proposal, {"RevokeConsent"}, before=same_consent)


@router.post(
    "/contests",
    status_code=201,
    response_model=PreparedTransaction,
    responses={**PROBLEMS, **TRANSACTION_PROBLEMS},
)
async def contest(body: ContestBody, service: ServiceDep, caller: CallerDep) -> PreparedTransaction:
    """Endorse a ``ContestAccess`` proposal; the reason text, if given, is stored encrypted."""
    before, after = text_hooks(
        body.reason,
        stores=service.stores,
        sealing=service.note_sealing,
        kind=CONTEST_REASON,
        member="reason_hash",
        committed=argument_member("reason_hash"),
        readers=contesting_citizen_readers(service.queries),
    )
    return await service.propose(
        caller, body.proposal, {"ContestAccess"}, before=before, after=after
    )


@router.get(
    "/notes/{event_id}",
    response_model=NoteList,
    responses={**PROBLEMS, **QUERY_PROBLEMS, **NOTE_PROBLEMS},
)
async def my_notes(
    event_id: Annotated[str, Path(pattern=IDENTIFIER)], service: ServiceDep, caller: CallerDep
) -> NoteList:
    """The notes about an access to my data (justification, contest reasons, review notes).

    Each comes as ciphertext with its key sealed to my registered X25519 key
    and the hash the ledger holds; the client decrypts and checks the hash.
    """
    return await subject_notes(
        service.queries, service.stores, service.note_opener, caller, event_id, now=service.now()
    )
