"""The SDK's operations, written once as generators of HTTP calls (sans I/O).

Each operation is a generator that yields :class:`~gateway.client.http.Call`
objects and receives each answer (parsed JSON or bytes) back, or has the
call's :class:`~gateway.client.errors.ClientError` thrown in at the
``yield``. Its return value is the operation's result. The synchronous
:class:`~gateway.client.client.Client` and the asynchronous
:class:`~gateway.client.asyncclient.AsyncClient` drive the same generators,
so every flow -- including the caller-signed transaction dance -- exists
once.

The transaction dance (:meth:`Operations.transact`, per ``docs/api.md``) and
what every operation shares (identity, keys, clock, ledger info) are
:class:`~gateway.client.session.Session`'s, which :class:`Operations`
extends. :data:`Flow`, the type of an operation, is re-exported from there.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gateway.client.errors import ClientError, Conflict, InvalidRequest, ProtocolError
from gateway.client.http import Call, QueryValue, path_segment
from gateway.client.models import (
    AccessesPage,
    AccessResult,
    Committed,
    ErasureReceipt,
    RecordReceipt,
)
from gateway.client.payloads import missing_ciphertexts, open_access
from gateway.client.proposals import (
    access_request_document,
    b64,
    consent_document,
    ledger_time,
    revocation_document,
    sign_document,
    text_hash,
)
from gateway.client.session import GENERIC_ENDPOINT, Flow, Session
from gateway.client.subjects import record_subject
from network.fabric.blocks import read_block_stream

__all__ = ["Flow", "Operations"]


def _moment(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ledger_time(value)


class Operations(Session):
    """Every SDK operation for one identity (see the module docstring).

    The identity, keys, clock and :meth:`~Session.transact` come from
    :class:`~gateway.client.session.Session`.
    """

    # -- status ------------------------------------------------------------------------------

    def transaction_status(self, tx_id: str) -> Flow[dict[str, Any]]:
        """``GET /v1/transactions/{tx_id}``: block and validation code once committed."""
        status: dict[str, Any] = yield Call("GET", f"/v1/transactions/{path_segment(tx_id)}")
        return status

    def health(self) -> Flow[dict[str, Any]]:
        answer: dict[str, Any] = yield Call("GET", "/healthz")
        return answer

    # -- identity registry -----------------------------------------------------------------

    def register_encryption_key(self) -> Flow[Committed]:
        """Bind this identity's X25519 public key on the ledger (RegisterEncryptionKey)."""
        if self.public_key is None:
            raise ClientError(
                f"identity {self.identity.name} has no X25519 key", code="no_encryption_key"
            )
        argument = {"public_key": b64(self.public_key)}
        return (yield from self._commit_generic("RegisterEncryptionKey", argument))

    def register_citizen(self, certificate_pem: str, subject: str) -> Flow[Committed]:
        """Bind a citizen credential to a subject (a CivilAffairs registrar's RegisterCitizen)."""
        argument = {"certificate": certificate_pem, "subject": self.pseudonym_of(subject)}
        return (yield from self._commit_generic("RegisterCitizen", argument))

    # -- records ---------------------------------------------------------------------------

    def _register(self, draft: Mapping[str, Any]) -> Flow[RecordReceipt]:
        function = draft.get("function")
        argument = draft.get("argument")
        if function not in ("RegisterRecord", "AmendRecord") or not isinstance(argument, dict):
            raise ProtocolError("the record draft names no RegisterRecord/AmendRecord argument")
        answer = yield from self.transact(GENERIC_ENDPOINT, str(function), lambda: argument)
        return RecordReceipt(
            record_id=str(draft["record_id"]),
            version=int(draft["version"]),
            record_type=str(draft["record_type"]),
            schema_version=int(draft["schema_version"]),
            owner_org=str(draft["owner_org"]),
            region=str(draft["region"]),
            subject=str(draft["subject"]),
            tiers={k: dict(v) for k, v in dict(draft["tiers"]).items()},
            tx_id=str(answer["tx_id"]),
            block_number=int(answer["block_number"]),
        )

    def put_record(
        self,
        record_type: str,
        subject: str,
        fields: Mapping[str, Any],
        *,
        record_id: str | None = None,
        metadata: Mapping[str, str | int | bool] | None = None,
        schema_version: int | None = None,
    ) -> Flow[RecordReceipt]:
        """Register a record: the gateway validates, tiers, encrypts and stores; we sign it in.

        ``subject`` is the person's GB 11643 identity number (checked here, then
        pseudonymised by the gateway) or their ``ps1:`` pseudonym.
        """
        body: dict[str, Any] = {"record_type": record_type, "fields": dict(fields)}
        body.update(record_subject(subject))
        if record_id is not None:
            body["record_id"] = record_id
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if schema_version is not None:
            body["schema_version"] = schema_version
        draft = yield Call("POST", "/v1/records", body=body)
        return (yield from self._register(draft))

    def amend_record(
        self,
        record_id: str,
        record_type: str,
        subject: str,
        fields: Mapping[str, Any],
        *,
        metadata: Mapping[str, str | int | bool] | None = None,
        schema_version: int | None = None,
    ) -> Flow[RecordReceipt]:
        """Register the next version of ``record_id`` with the complete new ``fields``."""
        body: dict[str, Any] = {"record_type": record_type, "fields": dict(fields)}
        body.update(record_subject(subject))
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if schema_version is not None:
            body["schema_version"] = schema_version
        path = f"/v1/records/{path_segment(record_id)}/versions"
        draft = yield Call("POST", path, body=body)
        return (yield from self._register(draft))

    def erase_record(self, record_id: str, reason: str | None = None) -> Flow[ErasureReceipt]:
        """Erase a record (``DELETE /v1/records/{id}``, ``EraseRecord``); crypto-shredded on commit.

        Only ``reason``'s SHA-256 leaves this process (it goes on the ledger);
        the text is kept nowhere. The caller must be a registrar or an admin
        of the record's owning department.
        """
        argument: dict[str, Any] = {"record_id": record_id}
        if reason is not None:
            argument["reason_hash"] = text_hash(reason)
        path = f"/v1/records/{path_segment(record_id)}"
        answer = yield from self.transact(path, "EraseRecord", lambda: argument, method="DELETE")
        return ErasureReceipt.from_committed(Committed.from_json(answer))

    # -- access ------------------------------------------------------------------------------

    def _open(self, access: Any) -> Flow[AccessResult]:
        if not isinstance(access, dict):
            raise ProtocolError("an access request was committed without an access result")
        fetched: dict[str, bytes] = {}
        for address, url in missing_ciphertexts(access).items():
            fetched[address] = yield Call("GET", url, expect="bytes")
        return open_access(
            access,
            private_key=self.encryption_key,
            public_key=self.public_key,
            catalogue=self.catalogue,
            fetched=fetched,
        )

    def request_access(
        self,
        subject: str,
        record_types: Sequence[str] | None = None,
        tier: str = "T1",
        purpose: str = "service_delivery",
        *,
        record_ids: Sequence[str] | None = None,
        case_ref: str | None = None,
        emergency: bool = False,
        justification: str | None = None,
        inline_ciphertexts: bool = True,
    ) -> Flow[AccessResult]:
        """Ask for records of ``subject`` at ``tier`` for ``purpose``; decrypt what is granted.

        The signed request goes on the ledger whatever the decision (I3). A
        break-glass request (``emergency=True``) needs a ``justification``: the
        signed document carries its SHA-256 (the ledger holds only that), and the
        text goes beside the proposal to the gateway, which checks it against the
        hash and stores it encrypted off-chain for the auditors. If the ledger has
        no X25519 key for this identity yet, the key is registered and the
        committed grant fetched again.
        """
        if record_types is None and record_ids is None:
            raise InvalidRequest("name record_types or record_ids", code="request_invalid")
        if emergency and not justification:
            raise InvalidRequest(
                "a break-glass request needs a justification", code="justification_required"
            )
        about = self.pseudonym_of(subject)
        justification_hash = text_hash(justification) if justification else None

        def argument() -> dict[str, Any]:
            document = access_request_document(
                subject=about,
                tier=tier,
                purpose=purpose,
                record_types=record_types,
                record_ids=record_ids,
                case_ref=case_ref,
                emergency=emergency,
                justification_hash=justification_hash,
                now=self.now(),
            )
            return sign_document(self.identity, document)

        try:
            answer = yield from self.transact(
                "/v1/access-requests",
                "RequestAccess",
                argument,
                extra={"justification": justification} if justification else None,
                include_ciphertexts=inline_ciphertexts,
            )
            access = answer.get("access")
        except Conflict as exc:
            if exc.code != "key_not_registered" or self.public_key is None or exc.tx_id is None:
                raise
            yield from self.register_encryption_key()
            access = yield from self._fetch_access(exc.tx_id, inline_ciphertexts)
        return (yield from self._open(access))

    def _fetch_access(self, tx_id: str, inline: bool) -> Flow[Any]:
        path = f"/v1/access-requests/{path_segment(tx_id)}"
        return (yield Call("GET", path, query={"include_ciphertexts": inline}))

    def fetch_access(self, tx_id: str, *, inline_ciphertexts: bool = True) -> Flow[AccessResult]:
        """A committed access result of this officer again, while its grant is live."""
        access = yield from self._fetch_access(tx_id, inline_ciphertexts)
        return (yield from self._open(access))

    # -- citizens ----------------------------------------------------------------------------

    def my_accesses(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        department: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Flow[AccessesPage]:
        """One page of access events about the calling citizen, oldest first."""
        query: dict[str, QueryValue] = {
            "from": _moment(start),
            "to": _moment(end),
            "department": department,
            "limit": limit,
            "cursor": cursor,
        }
        page = AccessesPage.from_json((yield Call("GET", "/v1/me/accesses", query=query)))
        self._subject = page.subject
        return page

    def all_my_accesses(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        department: str | None = None,
    ) -> Flow[list[dict[str, Any]]]:
        """Every access event about the calling citizen (all pages)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = yield from self.my_accesses(
                start=start, end=end, department=department, limit=200, cursor=cursor
            )
            found.extend(page.accesses)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    def my_consents(self) -> Flow[dict[str, Any]]:
        """``{"subject", "consents"}``: the calling citizen's consents as the ledger holds them."""
        answer: dict[str, Any] = yield Call("GET", "/v1/me/consents")
        self._subject = str(answer["subject"])
        return answer

    def my_subject(self) -> Flow[str]:
        """The pseudonym the calling citizen's credential is bound to."""
        if self._subject is None:
            yield from self.my_consents()
        assert self._subject is not None
        return self._subject

    def grant_consent(
        self,
        grantee_org: str,
        purpose: str,
        record_types: Sequence[str],
        *,
        max_tier: str = "T2",
        expires_at: datetime | None = None,
        valid_for: timedelta = timedelta(days=365),
    ) -> Flow[Committed]:
        """Consent to ``grantee_org`` reading ``record_types`` up to ``max_tier`` for ``purpose``.

        The consent's id is ``result["consent_id"]`` (the transaction id).
        """
        subject = yield from self.my_subject()

        def argument() -> dict[str, Any]:
            now = self.now()
            document = consent_document(
                subject=subject,
                grantee_org=grantee_org,
                purpose=purpose,
                record_types=record_types,
                max_tier=max_tier,
                expires_at=expires_at or now + valid_for,
                now=now,
            )
            return sign_document(self.identity, document)

        answer = yield from self.transact("/v1/me/consents", "GrantConsent", argument)
        return Committed.from_json(answer)

    def revoke_consent(self, consent_id: str) -> Flow[Committed]:
        """Revoke one of the calling citizen's consents."""

        def argument() -> dict[str, Any]:
            document = revocation_document(consent_id=consent_id, now=self.now())
            return sign_document(self.identity, document)

        path = f"/v1/me/consents/{path_segment(consent_id)}"
        answer = yield from self.transact(path, "RevokeConsent", argument, method="DELETE")
        return Committed.from_json(answer)

    def contest(self, event_id: str, reason: str) -> Flow[Committed]:
        """Contest an access event about the calling citizen; the reason is kept off-chain."""
        argument = {"event_id": event_id, "reason_hash": text_hash(reason)}
        answer = yield from self.transact(
            "/v1/me/contests", "ContestAccess", lambda: argument, extra={"reason": reason}
        )
        return Committed.from_json(answer)

    # -- auditors ----------------------------------------------------------------------------

    def audit_events(
        self,
        *,
        department: str | None = None,
        officer_msp: str | None = None,
        officer_fingerprint: str | None = None,
        subject: str | None = None,
        open_review: bool = False,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int = 100,
    ) -> Flow[dict[str, Any]]:
        """``{"events", "truncated"}``: access events by exactly one selector (``docs/api.md``)."""
        query: dict[str, QueryValue] = {
            "department": department,
            "officer_msp": officer_msp,
            "officer_fingerprint": officer_fingerprint,
            "subject": self.pseudonym_of(subject) if subject is not None else None,
            "open_review": True if open_review else None,
            "from": _moment(start),
            "to": _moment(end),
            "limit": limit,
        }
        answer: dict[str, Any] = yield Call("GET", "/v1/audit/events", query=query)
        return answer

    def review(self, event_id: str, outcome: str, note: str) -> Flow[Committed]:
        """Close an open review (``justified``, ``unjustified`` or ``referred``) with a note."""
        argument = {"event_id": event_id, "outcome": outcome, "note_hash": text_hash(note)}
        answer = yield from self.transact(
            "/v1/audit/reviews", "ReviewAccess", lambda: argument, extra={"note": note}
        )
        return Committed.from_json(answer)

    def blocks(self, start: int = 0) -> Flow[list[Any]]:
        """The committed blocks from ``start`` on, as ``common.Block`` messages."""
        data = yield Call("GET", "/v1/audit/blocks", query={"from": start}, expect="bytes")
        return list(read_block_stream(io.BytesIO(data)))
