"""Verify a signed request: who sent it, and that it is exactly what they signed, once.

:func:`verify_request` is a pure function of the request, the trust store, the
revocation set, the nonce cache and the injected clock. It checks, cheapest
first, and raises the matching :class:`~gateway.auth.errors.AuthenticationError`:

1. ``Signature-Input`` and ``Signature`` are present with the AccessLedger
   label (``signature_missing``) and parse as structured fields
   (``signature_invalid``);
2. the required components and parameters are covered (``components_missing``)
   and the parameters are well formed: ``alg``, ``tag``, key id and nonce
   syntax (``signature_invalid``);
3. ``created`` is within the allowed skew of now and ``expires``, if given,
   has not passed (``timestamp_stale``);
4. the key id resolves to a certificate (``certificate_unknown``) that a
   consortium CA issued, is not revoked and is valid now
   (``certificate_revoked``, ``certificate_invalid``);
5. the signature over the rebuilt signature base verifies under that
   certificate's key and is low-S (``signature_invalid``);
6. ``Content-Digest`` matches the body (``digest_mismatch``);
7. the nonce has not been seen for this key in the window (``nonce_reused``)
   -- last, so a request that fails any other check never uses up a nonce.

The result carries the public-only identity and the exact signature base and
signature, which is what an access-request transaction records (I3): an
auditor re-verifies it with nothing but the certificate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item

from crypto.errors import VerificationError
from crypto.identity import Identity
from crypto.signing import verify
from gateway.auth.digest import verify_content_digest
from gateway.auth.ecdsa import raw_to_der
from gateway.auth.errors import (
    CertificateUnknownError,
    ComponentsMissingError,
    SignatureInvalidError,
    SignatureMissingError,
    TimestampStaleError,
)
from gateway.auth.fields import InnerListMember, parse_dictionary
from gateway.auth.message import HttpRequest
from gateway.auth.nonces import NonceCache
from gateway.auth.profile import (
    ALGORITHM,
    CERTIFICATE_HEADER,
    DEFAULT_MAX_SKEW,
    KEYID_PATTERN,
    LABEL,
    NONCE_PATTERN,
    REQUIRED_COMPONENTS,
    REQUIRED_PARAMETERS,
    TAG,
    certificate_fingerprint,
)
from gateway.auth.signature_base import (
    covered_components,
    serialise_inner_list,
    signature_base_of,
    unique_components,
)
from gateway.auth.trust import TrustStore

_KEYID = re.compile(KEYID_PATTERN)
#: Distinct certificate headers whose parse is kept (about 1 KiB each).
_HEADER_CACHE_SIZE = 1024
_NONCE = re.compile(NONCE_PATTERN)


@dataclass(frozen=True)
class VerifierPolicy:
    """What a verifier demands; the defaults are AccessLedger's profile."""

    max_skew: timedelta = DEFAULT_MAX_SKEW
    required_components: tuple[str, ...] = REQUIRED_COMPONENTS
    label: str = LABEL
    tag: str = TAG

    def __post_init__(self) -> None:
        if self.max_skew <= timedelta(0):
            raise ValueError("max_skew must be positive")
        if "content-digest" not in self.required_components:
            # Without it the body would be unsigned.
            raise ValueError("content-digest must be a required component")


DEFAULT_POLICY = VerifierPolicy()


@dataclass(frozen=True)
class AuthenticatedRequest:
    """A request whose signature verified: who signed it, and exactly what they signed."""

    identity: Identity
    keyid: str
    label: str
    created: datetime
    nonce: str
    components: tuple[str, ...]
    #: The serialised Inner List (``Signature-Input`` member value, ``@signature-params``).
    signature_params: str
    #: The RFC 9421 signature base the signature covers.
    signature_base: bytes = field(repr=False)
    #: The signature as sent: raw ``r || s``, 64 bytes.
    signature: bytes = field(repr=False)

    @property
    def der_signature(self) -> bytes:
        """The signature in DER (Fabric's and :mod:`crypto.signing`'s encoding)."""
        return raw_to_der(self.signature)


def _dictionary(request: HttpRequest, name: str) -> Mapping[str, object] | None:
    """The header's members: from the canonical fast path, else from :mod:`http_sfv`."""
    value = request.header(name)
    if value is None:
        return None
    fast = parse_dictionary(value)
    if fast is not None:
        return fast
    field_ = Dictionary()
    try:
        field_.parse(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SignatureInvalidError(
            f"{name} is not a structured-field dictionary (RFC 9421 section 4)"
        ) from None
    return field_


def _signature_input(member: object, label: str) -> tuple[tuple[str, ...], dict[str, object], str]:
    """Covered components (checked), parameters and serialised Inner List of ``member``."""
    if isinstance(member, InnerListMember):
        return unique_components(member.items), dict(member.params), member.text
    if isinstance(member, InnerList):
        return covered_components(member), dict(member.params), serialise_inner_list(member)
    raise SignatureInvalidError(f"Signature-Input {label!r} is not an inner list")


def _string_param(params: dict[str, object], name: str) -> str:
    value = params[name]
    if type(value) is not str:  # tokens parse into a str subclass: require an sf-string
        raise SignatureInvalidError(f"signature parameter {name!r} must be a quoted string")
    return value


def _int_param(params: dict[str, object], name: str) -> int:
    value = params[name]
    if type(value) is not int:  # bool is an int subclass; refuse it too
        raise SignatureInvalidError(f"signature parameter {name!r} must be an integer")
    return value


def _check_time(
    params: dict[str, object], created: int, now: datetime, max_skew: timedelta
) -> datetime:
    # Compare as numbers first: an absurd sf-integer must be refused, not overflow datetime.
    current, skew = now.timestamp(), max_skew.total_seconds()
    # Stale from the instant its nonce may be forgotten (expires_at = created + skew):
    # accepting created == now - skew would let a request be replayed once, at that instant.
    if created <= current - skew:
        raise TimestampStaleError(
            f"signature created at {_when(created)} is older than {int(skew)} s; "
            "sign requests when sending them"
        )
    if created > current + skew:
        raise TimestampStaleError(
            f"signature created at {_when(created)} is in the future; check the client clock"
        )
    if "expires" in params:
        expires = _int_param(params, "expires")
        if expires < current:
            raise TimestampStaleError(f"signature expired at {_when(expires)}")
    return datetime.fromtimestamp(created, UTC)


def _when(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (Unix time)"


def _certificate(request: HttpRequest, keyid: str, trust: TrustStore) -> x509.Certificate:
    header = request.header(CERTIFICATE_HEADER)
    if header is None:
        known = trust.lookup(keyid)
        if known is None:
            raise CertificateUnknownError(
                f"key id {keyid[:16]}... names no known certificate; "
                f"send it in the {CERTIFICATE_HEADER} header"
            )
        return known
    certificate, fingerprint = _parse_certificate_header(header)
    if fingerprint != keyid:
        raise CertificateUnknownError(
            f"key id {keyid[:16]}... is not the SHA-256 of the {CERTIFICATE_HEADER} certificate"
        )
    return certificate


@lru_cache(maxsize=_HEADER_CACHE_SIZE)
def _parse_certificate_header(header: str) -> tuple[x509.Certificate, str]:
    """The certificate in a certificate header value, and its fingerprint.

    Cached by the exact header value: a caller sends the same bytes with every
    request, and decoding the structured field plus the DER costs more than the
    signature check. Only the parse is cached (failures are not); whether the
    certificate is trusted, valid now and unrevoked is decided per request.
    """
    item = Item()
    try:
        item.parse(header.encode("ascii"))
        if not isinstance(item.value, bytes):
            raise ValueError("not a byte sequence")
        certificate = x509.load_der_x509_certificate(item.value)
    except (ValueError, UnicodeEncodeError):
        raise CertificateUnknownError(
            f"{CERTIFICATE_HEADER} must be a DER certificate as a structured-field byte sequence"
        ) from None
    return certificate, certificate_fingerprint(certificate)


def verify_request(
    request: HttpRequest,
    *,
    trust: TrustStore,
    nonces: NonceCache,
    now: datetime,
    revoked: Set[str] = frozenset(),
    policy: VerifierPolicy = DEFAULT_POLICY,
) -> AuthenticatedRequest:
    """Authenticate ``request`` or raise the reason it is refused (see the module docstring)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    inputs = _dictionary(request, "signature-input")
    signatures = _dictionary(request, "signature")
    if inputs is None or signatures is None:
        raise SignatureMissingError(
            "the request is not signed: Signature-Input and Signature headers are required"
        )
    if policy.label not in inputs or policy.label not in signatures:
        raise SignatureMissingError(f"the request has no signature labelled {policy.label!r}")
    member = signatures[policy.label]
    components, params, signature_params = _signature_input(inputs[policy.label], policy.label)
    signature = member if isinstance(member, bytes) else getattr(member, "value", None)
    if not isinstance(signature, bytes):
        raise SignatureInvalidError(f"Signature {policy.label!r} is not a byte sequence")

    missing = [c for c in policy.required_components if c not in components]
    missing += [f";{p}" for p in REQUIRED_PARAMETERS if p not in params]
    if missing:
        raise ComponentsMissingError(f"the signature does not cover {' '.join(missing)}")
    if _string_param(params, "alg") != ALGORITHM:
        raise SignatureInvalidError(f"only alg={ALGORITHM!r} is accepted")
    if _string_param(params, "tag") != policy.tag:
        raise SignatureInvalidError(f"the signature's tag must be {policy.tag!r}")
    keyid = _string_param(params, "keyid")
    if not _KEYID.fullmatch(keyid):
        raise SignatureInvalidError("keyid must be the lowercase hex SHA-256 of a certificate")
    nonce = _string_param(params, "nonce")
    if not _NONCE.fullmatch(nonce):
        raise SignatureInvalidError("nonce must be 16-128 characters of [A-Za-z0-9_-]")
    created = _check_time(params, _int_param(params, "created"), now, policy.max_skew)

    identity = trust.identify(_certificate(request, keyid, trust), now=now, revoked=revoked)
    base = signature_base_of(request, components, signature_params)
    try:
        verify(identity.public_key, base, raw_to_der(signature))
    except VerificationError as exc:
        raise SignatureInvalidError(f"the request signature is not valid: {exc}") from None
    if "content-digest" in components:
        verify_content_digest(request.header("content-digest"), request.body)

    nonces.remember(keyid, nonce, expires_at=created + policy.max_skew, now=now)
    return AuthenticatedRequest(
        identity=identity,
        keyid=keyid,
        label=policy.label,
        created=created,
        nonce=nonce,
        components=components,
        signature_params=signature_params,
        signature_base=base,
        signature=signature,
    )


class RequestVerifier:
    """:func:`verify_request` with its trust store, nonce cache and policy bound."""

    def __init__(
        self, *, trust: TrustStore, nonces: NonceCache, policy: VerifierPolicy = DEFAULT_POLICY
    ) -> None:
        self.trust = trust
        self.nonces = nonces
        self.policy = policy

    def verify(
        self, request: HttpRequest, *, now: datetime, revoked: Set[str] = frozenset()
    ) -> AuthenticatedRequest:
        """Authenticate ``request`` at ``now``; see :func:`verify_request`."""
        return verify_request(
            request,
            trust=self.trust,
            nonces=self.nonces,
            now=now,
            revoked=revoked,
            policy=self.policy,
        )
