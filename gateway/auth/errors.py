"""Why a request was not authenticated: one error type per reason, each with a stable ``code``.

The gateway answers every one of these with HTTP 401 and an RFC 9457 problem
carrying the code, so a client can tell a clock problem (``timestamp_stale``)
from a replay (``nonce_reused``) from a tampered body (``digest_mismatch``)
without parsing prose. Never rename a code.
"""

from __future__ import annotations

from crypto.errors import AccessLedgerError


class AuthenticationError(AccessLedgerError):
    """Base of every caller-authentication failure."""

    code = "authentication_failed"


class SignatureMissingError(AuthenticationError):
    """The request carries no ``Signature``/``Signature-Input`` under the expected label."""

    code = "signature_missing"


class SignatureInvalidError(AuthenticationError):
    """The signature headers are malformed, or the signature does not verify (or is high-S)."""

    code = "signature_invalid"


class ComponentsMissingError(AuthenticationError):
    """The signature does not cover every required component and parameter."""

    code = "components_missing"


class CertificateUnknownError(AuthenticationError):
    """The key id names no certificate we know, or one no consortium CA issued."""

    code = "certificate_unknown"


class CertificateInvalidError(AuthenticationError):
    """A consortium CA issued the certificate, but it is expired, not yet valid or unfit to sign."""

    code = "certificate_invalid"


class CertificateRevokedError(AuthenticationError):
    """The certificate has been revoked."""

    code = "certificate_revoked"


class TimestampStaleError(AuthenticationError):
    """The signature's ``created`` time is too far in the past or future (or it has expired)."""

    code = "timestamp_stale"


class NonceReusedError(AuthenticationError):
    """The signature's nonce was already used by this key within the replay window."""

    code = "nonce_reused"


class DigestMismatchError(AuthenticationError):
    """``Content-Digest`` is missing, malformed or does not match the body."""

    code = "digest_mismatch"
