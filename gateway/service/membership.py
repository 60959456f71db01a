"""Channel membership of callers: the channel configuration decides, not the gateway's files.

The trust store (:mod:`gateway.auth.trust`) accepts certificates issued by the
home's CAs. The *channel configuration* on the ledger is what the peers and
the validator obey: which MSPs are members, and which certificates their
admins have revoked (CRLs in each ``FabricMSPConfig``, added by a config
update signed by that organisation's admin). :class:`ChannelMembership`
applies the same two rules to every HTTP caller, so a certificate revoked on
the ledger is refused by the gateway at once, before it costs an endorsement,
and a department is served only once a config update has made it a member.

Results are cached per (MSP ID, certificate fingerprint) and config sequence; a new
config (:meth:`update`) drops the cache, so a revocation takes effect on the
next request.
"""

from __future__ import annotations

import threading

from cryptography import x509

from crypto.identity import Identity
from gateway.auth.errors import (
    CertificateInvalidError,
    CertificateRevokedError,
    CertificateUnknownError,
)
from gateway.auth.profile import certificate_fingerprint
from network.fabric.errors import FabricError
from network.fabric.validator import ChannelConfig

_CACHE_SIZE = 4096


class ChannelMembership:
    """Refuses callers whose MSP is not on the channel or whose certificate is revoked."""

    def __init__(self, channel: ChannelConfig) -> None:
        self._lock = threading.Lock()
        self._admitted: set[tuple[str, str]] = set()
        self.update(channel)

    @property
    def sequence(self) -> int:
        """The config sequence the rules come from."""
        return self._sequence

    @property
    def msp_ids(self) -> frozenset[str]:
        """The channel's member MSP IDs."""
        return frozenset(self._msps)

    def update(self, channel: ChannelConfig) -> None:
        """Take the rules of a newly committed channel configuration."""
        with self._lock:
            self._registry = channel.msps
            self._msps = dict(channel.msps.msps)
            self._sequence = channel.sequence
            self._admitted = set()

    def is_revoked(self, certificate: x509.Certificate, msp_id: str) -> bool:
        """Whether an admin of ``msp_id`` has revoked ``certificate`` on the channel."""
        msp = self._msps.get(msp_id)
        return msp is not None and msp.revokes(certificate)

    def revoked_anywhere(self, certificate: x509.Certificate) -> bool:
        """Whether any member's CRL lists ``certificate`` (its issuer and serial number)."""
        return any(msp.revokes(certificate) for msp in self._msps.values())

    def check(self, identity: Identity) -> None:
        """Raise unless ``identity`` is a valid, unrevoked identity of a member MSP."""
        fingerprint = certificate_fingerprint(identity.certificate)
        admitted = (identity.msp_id, fingerprint)
        with self._lock:
            if admitted in self._admitted:
                return
            msps, registry = self._msps, self._registry
        if identity.msp_id not in msps:
            raise CertificateUnknownError(
                f"{identity.msp_id} is not a member of the channel (config sequence"
                f" {self._sequence}); onboard the department first"
            )
        if msps[identity.msp_id].revokes(identity.certificate):
            raise CertificateRevokedError(
                f"certificate {fingerprint[:16]}... of {identity.name} has been revoked"
                f" by {identity.msp_id} on the channel"
            )
        try:
            # The MSP's own rules beyond CRLs: a root it still holds, an accepted NodeOU.
            registry.deserialize(identity.serialized())
        except FabricError as exc:
            raise CertificateInvalidError(
                f"certificate {fingerprint[:16]}... of {identity.name} is not a valid"
                f" {identity.msp_id} identity on the channel: {exc.message}"
            ) from exc
        with self._lock:
            if self._msps is not msps:
                return  # a new config arrived meanwhile: do not cache under old rules
            if len(self._admitted) >= _CACHE_SIZE:
                self._admitted.clear()
            self._admitted.add(admitted)
