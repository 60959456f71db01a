"""``Client`` and ``AsyncClient``: an identity's signed conversation with the gateway.

Both drive the same operations (:mod:`gateway.client.flows`) and differ only
in how bytes move: :class:`Client` over a blocking ``httpx.Client`` (the
CLI, scripts), :class:`~gateway.client.asyncclient.AsyncClient` over
``httpx.AsyncClient`` (many requests in flight, e.g. the demo seeding). An
``AsyncClient`` can also talk to the gateway app in-process
(``transport=httpx.ASGITransport(app)``) through exactly the same code path,
signatures included.

::

    with Client.from_home(home, "officer.education.sz1") as officer:
        result = officer.request_access(
            subject, ["residence_permit"], "T1", "school_enrolment"
        )
        for record in result.granted:
            print(record.record_id, record.fields)

``AsyncClient`` lives in :mod:`gateway.client.asyncclient`; both build on
:class:`ClientFacade` here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from crypto.consortium import Consortium
from crypto.errors import AccessLedgerError
from gateway.client.errors import ClientError, GatewayUnreachable
from gateway.client.flows import Operations
from gateway.client.http import Call, Prepared, interpret, prepare
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
from policies.catalogue import Catalogue

T = TypeVar("T")
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
#: Commits wait for their block (30 s by default on the gateway); allow for that.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
Metadata = Mapping[str, str | int | bool]


def configured_gateway_url(consortium: Consortium) -> str:
    """The gateway URL of the home's ``network.yaml`` (``gateway.url``)."""
    gateway = consortium.topology.get("gateway")
    url = gateway.get("url") if isinstance(gateway, Mapping) else None
    return str(url) if url else DEFAULT_GATEWAY_URL


def operations_from(
    consortium: Consortium,
    identity_name: str,
    *,
    clock: Clock | None = None,
    catalogue: Catalogue | None = None,
) -> Operations:
    """The operations of ``identity_name`` with its keys from the home.

    The X25519 key is loaded when the identity has one; the consortium secret
    is read only if an operation must pseudonymise an identity number.
    """
    identity = consortium.identity(identity_name)
    try:
        encryption_key: bytes | None = consortium.encryption_key(identity_name)
    except AccessLedgerError:
        encryption_key = None
    return Operations(
        identity,
        encryption_key=encryption_key,
        secret=consortium.consortium_secret,
        catalogue=catalogue,
        clock=clock,
    )


def checked_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash, if it is an absolute http(s) URL."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host or url.query:
        raise ClientError(
            f"the gateway URL must look like http://127.0.0.1:8000, not {base_url!r}",
            code="gateway_url_invalid",
        )
    return base_url.rstrip("/")


def gateway_unreachable(base_url: str, exc: Exception) -> GatewayUnreachable:
    """The error for a transport failure talking to ``base_url``."""
    return GatewayUnreachable(
        f"cannot reach the gateway at {base_url} ({type(exc).__name__}); is it running?"
    )


class ClientFacade:
    """What both clients share: the identity's operations and the gateway's address.

    Subclasses add the transport: :class:`Client` here, ``AsyncClient`` in
    :mod:`gateway.client.asyncclient`.
    """

    def __init__(self, operations: Operations, base_url: str) -> None:
        self.operations = operations
        self.base_url = checked_base_url(base_url)

    @property
    def identity_name(self) -> str:
        return self.operations.identity.name

    def pseudonym_of(self, subject: str) -> str:
        """A subject's pseudonym (derived locally from an identity number when possible)."""
        return self.operations.pseudonym_of(subject)

    def _prepare(self, call: Call) -> Prepared:
        identity, now = self.operations.identity, self.operations.now()
        return prepare(call, base_url=self.base_url, identity=identity, now=now)


class Client(ClientFacade):
    """A blocking client for one identity (see the module docstring)."""

    def __init__(
        self,
        operations: Operations,
        *,
        base_url: str = DEFAULT_GATEWAY_URL,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(operations, base_url)
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=timeout)

    @classmethod
    def from_home(
        cls,
        home: Path,
        identity_name: str,
        *,
        gateway_url: str | None = None,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
    ) -> Client:
        """The client of identity ``identity_name`` of the home at ``home``.

        ``gateway_url`` defaults to the home's configured gateway
        (``network.yaml`` ``gateway.url``).
        """
        consortium = Consortium.load(Path(home))
        return cls(
            operations_from(consortium, identity_name, clock=clock),
            base_url=gateway_url or configured_gateway_url(consortium),
            http=http,
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _send(self, call: Call) -> Any:
        prepared = self._prepare(call)
        try:
            response = self._http.request(
                prepared.method, prepared.url, headers=prepared.headers, content=prepared.content
            )
        except httpx.TransportError as exc:
            raise gateway_unreachable(self.base_url, exc) from exc
        return interpret(call, response.status_code, response.headers, response.content)

    def run(self, flow: Flow[T]) -> T:
        """Drive one operation to its result, sending each call it makes."""
        try:
            call = next(flow)
            while True:
                try:
                    answer = self._send(call)
                except ClientError as exc:
                    call = flow.throw(exc)
                else:
                    call = flow.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result

    # -- operations (documented on gateway.client.flows.Operations) --------------------------

    def health(self) -> dict[str, Any]:
        return self.run(self.operations.health())

    def ledger_info(self, *, refresh: bool = True) -> LedgerInfo:
        return self.run(self.operations.ledger_info(refresh=refresh))

    def transaction_status(self, tx_id: str) -> dict[str, Any]:
        return self.run(self.operations.transaction_status(tx_id))

    def register_encryption_key(self) -> Committed:
        return self.run(self.operations.register_encryption_key())

    def register_citizen(self, certificate_pem: str, subject: str) -> Committed:
        return self.run(self.operations.register_citizen(certificate_pem, subject))

    def put_record(
        self,
        record_type: str,
        subject: str,
        fields: Mapping[str, Any],
        *,
        record_id: str | None = None,
        metadata: Metadata | None = None,
        schema_version: int | None = None,
    ) -> RecordReceipt:
        return self.run(
            self.operations.put_record(
                record_type,
                subject,
                fields,
                record_id=record_id,
                metadata=metadata,
                schema_version=schema_version,
            )
        )

    def amend_record(
        self,
        record_id: str,
        record_type: str,
        subject: str,
        fields: Mapping[str, Any],
        *,
        metadata: Metadata | None = None,
        schema_version: int | None = None,
    ) -> RecordReceipt:
        return self.run(
            self.operations.amend_record(
                record_id,
                record_type,
                subject,
                fields,
                metadata=metadata,
                schema_version=schema_version,
            )
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
    ) -> AccessResult:
        return self.run(
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

    def fetch_access(self, tx_id: str, *, inline_ciphertexts: bool = True) -> AccessResult:
        return self.run(self.operations.fetch_access(tx_id, inline_ciphertexts=inline_ciphertexts))

    def my_accesses(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        department: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AccessesPage:
        return self.run(
            self.operations.my_accesses(
                start=start, end=end, department=department, limit=limit, cursor=cursor
            )
        )

    def all_my_accesses(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        department: str | None = None,
    ) -> list[dict[str, Any]]:
        return self.run(
            self.operations.all_my_accesses(start=start, end=end, department=department)
        )

    def my_consents(self) -> dict[str, Any]:
        return self.run(self.operations.my_consents())

    def my_subject(self) -> str:
        return self.run(self.operations.my_subject())

    def grant_consent(
        self,
        grantee_org: str,
        purpose: str,
        record_types: Sequence[str],
        *,
        max_tier: str = "T2",
        expires_at: datetime | None = None,
        valid_for: timedelta = timedelta(days=365),
    ) -> Committed:
        return self.run(
            self.operations.grant_consent(
                grantee_org,
                purpose,
                record_types,
                max_tier=max_tier,
                expires_at=expires_at,
                valid_for=valid_for,
            )
        )

    def revoke_consent(self, consent_id: str) -> Committed:
        return self.run(self.operations.revoke_consent(consent_id))

    def erase_record(self, record_id: str, reason: str | None = None) -> ErasureReceipt:
        """See :meth:`Operations.erase_record`."""
        return self.run(self.operations.erase_record(record_id, reason))

    def contest(self, event_id: str, reason: str) -> Committed:
        return self.run(self.operations.contest(event_id, reason))

    def audit_events(self, **selectors: Any) -> dict[str, Any]:
        """See :meth:`Operations.audit_events` for the selectors."""
        return self.run(self.operations.audit_events(**selectors))

    def review(self, event_id: str, outcome: str, note: str) -> Committed:
        return self.run(self.operations.review(event_id, outcome, note))

    def blocks(self, start: int = 0) -> list[Any]:
        return self.run(self.operations.blocks(start))

    # -- key rotation (gateway.client.keys) -----------------------------------------------------

    def rotate_custodian_key(
        self, org: str, *, batch_size: int | None = None
    ) -> CustodianKeyRotation:
        """Rotate ``org``'s custodian key (the caller must be an admin of ``org``)."""
        return self.run(rotate_custodian_key(self.operations, org, batch_size=batch_size))

    def register_encryption_public_key(self, public_key: bytes) -> Committed:
        """Register ``public_key`` as this identity's X25519 key (see ``rotate_encryption_key``)."""
        return self.run(register_encryption_public_key(self.operations, public_key))
