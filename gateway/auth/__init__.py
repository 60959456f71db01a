"""Caller authentication: HTTP Message Signatures (RFC 9421) with the caller's Fabric identity.

Integrators start at ``docs/authentication.md``; :mod:`gateway.auth.profile`
lists the scheme's fixed choices.
"""

from gateway.auth.digest import content_digest, verify_content_digest
from gateway.auth.ecdsa import der_to_raw, raw_to_der
from gateway.auth.errors import (
    AuthenticationError,
    CertificateInvalidError,
    CertificateRevokedError,
    CertificateUnknownError,
    ComponentsMissingError,
    DigestMismatchError,
    NonceReusedError,
    SignatureInvalidError,
    SignatureMissingError,
    TimestampStaleError,
)
from gateway.auth.message import HttpRequest, component_value
from gateway.auth.nonces import MemoryNonceCache, NonceCache, SqliteNonceCache
from gateway.auth.profile import (
    ALGORITHM,
    CERTIFICATE_HEADER,
    DEFAULT_MAX_SKEW,
    LABEL,
    REQUIRED_COMPONENTS,
    TAG,
    certificate_fingerprint,
)
from gateway.auth.signature_base import signature_base
from gateway.auth.signer import new_nonce, sign_request
from gateway.auth.trust import TrustedOrg, TrustStore
from gateway.auth.verifier import (
    DEFAULT_POLICY,
    AuthenticatedRequest,
    RequestVerifier,
    VerifierPolicy,
    verify_request,
)

__all__ = [
    "ALGORITHM",
    "CERTIFICATE_HEADER",
    "DEFAULT_MAX_SKEW",
    "DEFAULT_POLICY",
    "LABEL",
    "REQUIRED_COMPONENTS",
    "TAG",
    "AuthenticatedRequest",
    "AuthenticationError",
    "CertificateInvalidError",
    "CertificateRevokedError",
    "CertificateUnknownError",
    "ComponentsMissingError",
    "DigestMismatchError",
    "HttpRequest",
    "MemoryNonceCache",
    "NonceCache",
    "NonceReusedError",
    "RequestVerifier",
    "SignatureInvalidError",
    "SignatureMissingError",
    "SqliteNonceCache",
    "TimestampStaleError",
    "TrustStore",
    "TrustedOrg",
    "VerifierPolicy",
    "certificate_fingerprint",
    "component_value",
    "content_digest",
    "der_to_raw",
    "new_nonce",
    "raw_to_der",
    "sign_request",
    "signature_base",
    "verify_content_digest",
    "verify_request",
]
