"""``AsyncClient``: the asyncio twin of :class:`~gateway.client.client.Client`.

It drives the same operations (:mod:`gateway.client.flows`) over an
``httpx.AsyncClient``, so many requests can be in flight (e.g. the demo
seeding), and can talk to the gateway app in-process
(``transport=httpx.ASGITransport(app)``) through exactly the same code path,
signatures included. It lives apart from the blocking client because only the
transport differs: both share :class:`~gateway.client.client.ClientFacade`.
Import it from :mod:`gateway.client`.

::

    async with AsyncClient.from_home(home, "officer.education.sz1") as officer:
        result = await officer.request_access(subject, ["residence_permit"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from crypto.consortium import Consortium
from gateway.client.client import (
    DEFAULT_GATEWAY_URL,
    DEFAULT_TIMEOUT,
    ClientFacade,
    Metadata,
    configured_gateway_url,
    gateway_unreachable,
    operations_from,
)
from gateway.client.errors import ClientError
from gateway.client.flows import Operations
from gateway.client.http import Call, interpret
from gateway.client.keys import (
    CustodianKeyRotation,
    register_encryption_public_key,
    rotate_custodian_key,
)
from gateway.client.models import (
    AccessesPage,
    AccessResult,
    Committed,
    ErasureReceipt,
    LedgerInfo,
    RecordReceipt,
)
from gateway.client.session import Clock, Flow

T = TypeVar("T")


class AsyncClient(ClientFacade):
    """An asyncio client for one identity; many may share one ``httpx.AsyncClient``."""

    def __init__(
        self,
        operations: Operations,
        *,
        base_url: str = DEFAULT_GATEWAY_URL,
        http: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(operations, base_url)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)

    @classmethod
    def from_home(
        cls,
        home: Path,
        identity_name: str,
        *,
        gateway_url: str | None = None,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> AsyncClient:
        """As :meth:`Client.from_home`, for asyncio."""
        consortium = Consortium.load(Path(home))
        return cls(
            operations_from(consortium, identity_name, clock=clock),
            base_url=gateway_url or configured_gateway_url(consortium),
            http=http,
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call) -> Any:
        prepared = self._prepare(call)
        try:
            response = await self._http.request(
                prepared.method, prepared.url, headers=prepared.headers, content=prepared.content
            )
        except httpx.TransportError as exc:
            raise gateway_unreachable(self.base_url, exc) from exc
        return interpret(call, response.status_code, response.headers, response.content)

    async def run(self, flow: Flow[T]) -> T:
        """Drive one operation to its result, awaiting each call it makes."""
        try:
            call = next(flow)
            while True:
                try:
                    answer = await self._send(call)
                except ClientError as exc:
                    call = flow.throw(exc)
                else:
                    call = flow.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result

    # -- operations (documented on gateway.client.flows.Operations) --------------------------

    async def ledger_info(self, *, refresh: bool = True) -> LedgerInfo:
        return await self.run(self.operations.ledger_info(refresh=refresh))

    async def register_encryption_key(self) -> Committed:
        return await self.run(self.operations.register_encryption_key())

    async def register_citizen(self, certificate_pem: str, subject: str) -> Committed:
        return await self.run(self.operations.register_citizen(certificate_pem, subject))

    async def put_record(
        self,
        record_type: str,
        subject: str,
        fields: Mapping[str, Any],
        *,
        record_id: str | None = None,
        metadata: Metadata | None = None,
        schema_version: int | None = None,
    ) -> RecordReceipt:
        return await self.run(
            self.operations.put_record(
                record_type,
                subject,
                fields,
                record_id=record_id,
                metadata=metadata,
                schema_version=schema_version,
            )
        )

    async def request_access(
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
    ) -> AccessResult:
        return await self.run(
            self.operations.request_access(
                subject,
                record_types,
                tier,
                purpose,
                record_ids=record_ids,
                case_ref=case_ref,
                emergency=emergency,
                justification=justification,
                inline_ciphertexts=inline_ciphertexts,
            )
        )

    async def my_accesses(self, **filters: Any) -> AccessesPage:
        return await self.run(self.operations.my_accesses(**filters))

    async def my_consents(self) -> dict[str, Any]:
        return await self.run(self.operations.my_consents())

    async def grant_consent(
        self,
        grantee_org: str,
        purpose: str,
        record_types: Sequence[str],
        *,
        max_tier: str = "T2",
        expires_at: datetime | None = None,
        valid_for: timedelta = timedelta(days=365),
    ) -> Committed:
        return await self.run(
            self.operations.grant_consent(
                grantee_org,
                purpose,
                record_types,
                max_tier=max_tier,
                expires_at=expires_at,
                valid_for=valid_for,
            )
        )

    async def revoke_consent(self, consent_id: str) -> Committed:
        return await self.run(self.operations.revoke_consent(consent_id))

    async def erase_record(self, record_id: str, reason: str | None = None) -> ErasureReceipt:
        """See :meth:`Operations.erase_record`."""
        return await self.run(self.operations.erase_record(record_id, reason))

    async def contest(self, event_id: str, reason: str) -> Committed:
        return await self.run(self.operations.contest(event_id, reason))

    async def audit_events(self, **selectors: Any) -> dict[str, Any]:
        return await self.run(self.operations.audit_events(**selectors))

    async def review(self, event_id: str, outcome: str, note: str) -> Committed:
        return await self.run(self.operations.review(event_id, outcome, note))

    async def rotate_custodian_key(
        self, org: str, *, batch_size: int | None = None
    ) -> CustodianKeyRotation:
        """Rotate ``org``'s custodian key (the caller must be an admin of ``org``)."""
        return await self.run(rotate_custodian_key(self.operations, org, batch_size=batch_size))

    async def register_encryption_public_key(self, public_key: bytes) -> Committed:
        """Register ``public_key`` as this identity's X25519 key."""
        return await self.run(register_encryption_public_key(self.operations, public_key))
