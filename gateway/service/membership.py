"""Channel membership of callers: the channel configuration decides, not the gateway's files.

The trust store (:mod:`gateway.auth.trust`) accepts certificates issued by the
home's CAs. The *channel configuration* on the ledger is what the peers and
the validator obey: which MSPs are members, and which certificates their
admins have revoked (CRLs in each ``FabricMSPConfig``, added by a config
update signed by that organisation's admin). :class:`ChannelMembership`
applies the same two rules to every HTTP caller, so a certificate revoked on
the ledger is refused by the gateway at once, before it costs an endorsement,
and a department is served only once a config update has made it a member.

Results are cached per certificate fingerprint and config sequence; a new
config (:meth:`update`) drops the cache, so a revocation takes effect on the
next request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.identity import Identity
from gateway.auth.errors import CertificateRevokedError, CertificateUnknownError
from gateway.auth.profile import certificate_fingerprint
from network.fabric.msp import MSP
from network.fabric.validator import ChannelConfig

_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Revocation:
    issuer: x509.Name
    serials: frozenset[int]


def _revocations(msp: MSP) -> tuple[_Revocation, ...]:
    """The MSP's CRLs whose signature verifies under one of its CA certificates."""
    found = []
    for crl in msp.crls:
        for ca in (*msp.root_certs, *msp.intermediate_certs):
            key = ca.public_key()
            if (
                ca.subject == crl.issuer
                and isinstance(key, ec.EllipticCurvePublicKey)
                and crl.is_signature_valid(key)
            ):
                found.append(
                    _Revocation(crl.issuer, frozenset(entry.serial_number for entry in crl))
                )
                break
    return tuple(found)


def _listed(revocations: tuple[_Revocation, ...], certificate: x509.Certificate) -> bool:
    return any(
        rev.issuer == certificate.issuer and certificate.serial_number in rev.serials
        for rev in revocations
    )


class ChannelMembership:
    """Refuses callers whose MSP is not on the channel or whose certificate is revoked."""

    def __init__(self, channel: ChannelConfig) -> None:
        self._lock = threading.Lock()
        self._admitted: set[str] = set()
        self.update(channel)

    @property
    def sequence(self) -> int:
        """The config sequence the rules come from."""
        return self._sequence

    @property
    def msp_ids(self) -> frozenset[str]:
        """The channel's member MSP IDs."""
        return frozenset(self._revoked)

    def update(self, channel: ChannelConfig) -> None:
        """Take the rules of a newly committed channel configuration."""
        revoked = {msp_id: _revocations(msp) for msp_id, msp in channel.msps.msps.items()}
        with self._lock:
            self._revoked = revoked
            self._sequence = channel.sequence
            self._admitted = set()

    def is_revoked(self, certificate: x509.Certificate, msp_id: str) -> bool:
        """Whether an admin of ``msp_id`` has revoked ``certificate`` on the channel."""
        return _listed(self._revoked.get(msp_id, ()), certificate)

    def revoked_anywhere(self, certificate: x509.Certificate) -> bool:
        """Whether any member's CRL lists ``certificate`` (its issuer and serial number)."""
        revoked = self._revoked
        return any(_listed(revocations, certificate) for revocations in revoked.values())

    def check(self, identity: Identity) -> None:
        """Raise unless ``identity`` belongs to a member MSP and is not revoked."""
        fingerprint = certificate_fingerprint(identity.certificate)
        with self._lock:
            if fingerprint in self._admitted:
                return
            revoked = self._revoked
        if identity.msp_id not in revoked:
            raise CertificateUnknownError(
                f"{identity.msp_id} is not a member of the channel (config sequence"
                f" {self._sequence}); onboard the department first"
            )
        if _listed(revoked[identity.msp_id], identity.certificate):
            raise CertificateRevokedError(
                f"certificate {fingerprint[:16]}... of {identity.name} has been revoked"
                f" by {identity.msp_id} on the channel"
            )
        with self._lock:
            if self._revoked is not revoked:
                return  # a new config arrived meanwhile: do not cache under old rules
            if len(self._admitted) >= _CACHE_SIZE:
                self._admitted.clear()
            self._admitted.add(fingerprint)
