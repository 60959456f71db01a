"""The Python SDK of the AccessLedger gateway.

A client acts as one consortium identity loaded from a home: it signs every
HTTP request with that identity (RFC 9421), builds and signs the identity's
own ledger transactions (the gateway never holds caller keys), and decrypts
granted payloads locally with the identity's X25519 key. Failures are
:class:`ClientError` subclasses carrying the gateway's problem ``code``.

``docs/api.md`` is the HTTP contract this package implements.
"""

from gateway.client.asyncclient import AsyncClient
from gateway.client.client import (
    DEFAULT_GATEWAY_URL,
    Client,
    configured_gateway_url,
    operations_from,
)
from gateway.client.errors import (
    ClientError,
    CommitInvalid,
    CommitTimeout,
    Conflict,
    GatewayFailure,
    GatewayUnreachable,
    InvalidRequest,
    NotFound,
    PayloadError,
    PermissionDenied,
    ProblemError,
    ProtocolError,
    RateLimited,
    Unauthenticated,
)
from gateway.client.flows import Operations
from gateway.client.keys import CustodianKeyRotation, EncryptionKeyRotation, rotate_encryption_key
from gateway.client.models import (
    AccessesPage,
    AccessResult,
    Committed,
    ErasureReceipt,
    LedgerInfo,
    RecordAccess,
    RecordReceipt,
)

__all__ = [
    "DEFAULT_GATEWAY_URL",
    "AccessResult",
    "AccessesPage",
    "AsyncClient",
    "Client",
    "ClientError",
    "CommitInvalid",
    "CommitTimeout",
    "Committed",
    "Conflict",
    "CustodianKeyRotation",
    "EncryptionKeyRotation",
    "ErasureReceipt",
    "GatewayFailure",
    "GatewayUnreachable",
    "InvalidRequest",
    "LedgerInfo",
    "NotFound",
    "Operations",
    "PayloadError",
    "PermissionDenied",
    "ProblemError",
    "ProtocolError",
    "RateLimited",
    "RecordAccess",
    "RecordReceipt",
    "Unauthenticated",
    "configured_gateway_url",
    "operations_from",
    "rotate_encryption_key",
]
