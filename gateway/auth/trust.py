"""Which certificates the gateway accepts callers with: the consortium's CAs, minus revocations.

A :class:`TrustStore` holds each organisation's CA certificates (its MSP
``cacerts``, the trust anchors a Fabric peer would use) and, optionally, the
certificates it already knows, so a caller may send just the key id. Turning
a certificate into an :class:`~crypto.identity.Identity` follows the MSP:

1. find the organisation whose CA issued it (by issuer name, then signature);
   none -> ``certificate_unknown``;
2. reject it if revoked (``certificate_revoked``);
3. validate it fully under that organisation's CAs at ``now`` with
   :func:`crypto.certificates.validate_certificate` (validity period, key
   usage, not a CA) -> ``certificate_invalid`` on failure;
4. read its NodeOU and Fabric CA attributes, exactly as the chaincode will.

Successful results are cached per fingerprint together with the period in
which they hold (the intersection of the certificate's and its CAs' validity),
because chain validation costs two ECDSA verifications and the same officer
signs many requests. Revocation is checked on every call, never cached.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from crypto.certificates import common_name, node_ou, read_attributes, validate_certificate
from crypto.certtwin import signature_twin
from crypto.consortium import Consortium
from crypto.errors import CryptoError
from crypto.identity import Identity, kind_of
from gateway.auth.errors import (
    CertificateInvalidError,
    CertificateRevokedError,
    CertificateUnknownError,
)
from gateway.auth.profile import certificate_fingerprint

_CACHE_SIZE = 4096


@dataclass(frozen=True)
class TrustedOrg:
    """One organisation's MSP trust anchors."""

    name: str
    msp_id: str
    ca_certs: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class _Validated:
    identity: Identity
    valid_from: datetime
    valid_until: datetime


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class TrustStore:
    """The consortium's trust anchors plus a lookup of known certificates by key id."""

    def __init__(
        self, orgs: Iterable[TrustedOrg], *, known_certificates: Iterable[x509.Certificate] = ()
    ) -> None:
        self._orgs = tuple(orgs)
        self._known = {certificate_fingerprint(c): c for c in known_certificates}
        self._cache: OrderedDict[str, _Validated] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_consortium(cls, consortium: Consortium) -> TrustStore:
        """Trust every organisation of a home (orderer org included) and know its identities."""
        orgs = [
            TrustedOrg(org.name, org.msp_id, tuple(consortium.org_ca_certs(org.name)))
            for org in consortium.orgs()
        ]
        known = [identity.certificate for identity in consortium.identities()]
        return cls(orgs, known_certificates=known)

    @property
    def orgs(self) -> Sequence[TrustedOrg]:
        """The trusted organisations."""
        return self._orgs

    def lookup(self, keyid: str) -> x509.Certificate | None:
        """The known certificate whose fingerprint is ``keyid``, if any."""
        return self._known.get(keyid)

    def identify(
        self, certificate: x509.Certificate, *, now: datetime, revoked: Set[str] = frozenset()
    ) -> Identity:
        """The public-only identity ``certificate`` stands for, or raise why it is not accepted.

        ``revoked`` holds fingerprints (:func:`~gateway.auth.profile.certificate_fingerprint`)
        of revoked certificates.
        """
        fingerprint = _fingerprint(certificate)
        if revoked and not revoked.isdisjoint(_revocation_names(certificate)):
            raise CertificateRevokedError(
                f"certificate {fingerprint[:16]}... ({_name(certificate)}) has been revoked"
            )
        with self._lock:
            cached = self._cache.get(fingerprint)
            if cached is not None:
                self._cache.move_to_end(fingerprint)
        if cached is not None and cached.valid_from <= now <= cached.valid_until:
            return cached.identity
        validated = self._validate(certificate, now)
        with self._lock:
            self._cache[fingerprint] = validated
            self._cache.move_to_end(fingerprint)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return validated.identity

    def _validate(self, certificate: x509.Certificate, now: datetime) -> _Validated:
        org = next(
            (o for o in self._orgs if any(_issued_by(certificate, ca) for ca in o.ca_certs)),
            None,
        )
        if org is None:
            raise CertificateUnknownError(
                f"certificate of {_name(certificate)} was not issued by any consortium CA"
            )
        try:
            validate_certificate(certificate, ca_certs=org.ca_certs, now=now)
            attributes = read_attributes(certificate)
            kind = kind_of(node_ou(certificate), attributes)
            name = common_name(certificate)
        except CryptoError as exc:
            raise CertificateInvalidError(
                f"certificate of {_name(certificate)} ({org.msp_id}) is not acceptable: {exc}"
            ) from None
        identity = Identity(
            name=name,
            kind=kind,
            org=org.name,
            msp_id=org.msp_id,
            certificate=certificate,
            private_key=None,
            attributes=attributes,
        )
        chain = (certificate, *org.ca_certs)
        return _Validated(
            identity=identity,
            valid_from=max(c.not_valid_before_utc for c in chain),
            valid_until=min(c.not_valid_after_utc for c in chain),
        )


@lru_cache(maxsize=_CACHE_SIZE)
def _fingerprint(certificate: x509.Certificate) -> str:
    """:func:`certificate_fingerprint`, cached: certificates hash and compare by their DER."""
    return certificate_fingerprint(certificate)


@lru_cache(maxsize=1024)
def _revocation_names(certificate: x509.Certificate) -> frozenset[str]:
    """The fingerprints that revoke ``certificate``.

    Its fingerprint (of the low-S form, :func:`certificate_fingerprint`),
    and the plain SHA-256 of each of its two DER encodings -- as an operator
    hashing the certificate file would write it. A revoked certificate
    re-encoded with the other ECDSA ``s`` (:mod:`crypto.certtwin`) still
    verifies under its CA; it is the same certificate and stays revoked.
    """
    encodings = [certificate, signature_twin(certificate)]
    names = {_fingerprint(certificate)}
    names.update(
        hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
        for c in encodings
        if c is not None
    )
    return frozenset(names)


def _name(certificate: x509.Certificate) -> str:
    try:
        return repr(common_name(certificate))
    except CryptoError:
        return "an unnamed subject"
