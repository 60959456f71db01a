"""Fabric-style identities: an X.509 certificate, its MSP, its kind and attributes.

An :class:`Identity` is what signs proposals, requests and endorsements. Its
meaning comes from the certificate alone, the way a Fabric peer reads it: the
subject OU is the Fabric NodeOU (``client``, ``peer``, ``admin``,
``orderer``) and the Fabric CA attribute extension carries ``role``,
``region`` and ``clearance``. :func:`kind_of` derives the AccessLedger kind
from those two, so a verifier that only holds the certificate (the chaincode,
an auditor) classifies a signer exactly as the issuer intended.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fabric_protos.msp import identities_pb2

from crypto.errors import AccessLedgerError, CryptoError
from crypto.signing import Signer, sign, signer_for

# The generated protobuf modules ship without type stubs; use them untyped.
_identities_pb2: Any = identities_pb2


class IdentityKind(StrEnum):
    """What an identity is for in AccessLedger."""

    PEER = "peer"
    ORDERER = "orderer"
    ADMIN = "admin"
    OFFICER = "officer"
    AUDITOR = "auditor"
    CITIZEN = "citizen"


class NodeOU(StrEnum):
    """Fabric's NodeOU classification, carried as the certificate subject OU."""

    CLIENT = "client"
    PEER = "peer"
    ADMIN = "admin"
    ORDERER = "orderer"


#: The NodeOU each kind is issued with. Officers, auditors and citizens are all
#: Fabric clients; their attributes tell them apart.
NODE_OU_FOR_KIND: Mapping[IdentityKind, NodeOU] = MappingProxyType(
    {
        IdentityKind.PEER: NodeOU.PEER,
        IdentityKind.ORDERER: NodeOU.ORDERER,
        IdentityKind.ADMIN: NodeOU.ADMIN,
        IdentityKind.OFFICER: NodeOU.CLIENT,
        IdentityKind.AUDITOR: NodeOU.CLIENT,
        IdentityKind.CITIZEN: NodeOU.CLIENT,
    }
)

#: Attribute ``role`` values that make a client an auditor or a citizen.
AUDITOR_ROLE = "auditor"
CITIZEN_ROLE = "citizen"
#: Role of officers allowed to register records for their department.
REGISTRAR_ROLE = "registrar"

_REGION = re.compile(r"[0-9]{6}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def kind_of(node_ou: str | None, attributes: Mapping[str, str]) -> IdentityKind:
    """Classify a certificate by its NodeOU and attributes.

    Raises :class:`~crypto.errors.CryptoError` (code ``unknown_node_ou``) when
    the OU is missing or unknown: such a certificate has no meaning on a
    NodeOU-enabled channel.
    """
    if node_ou == NodeOU.PEER:
        return IdentityKind.PEER
    if node_ou == NodeOU.ORDERER:
        return IdentityKind.ORDERER
    if node_ou == NodeOU.ADMIN:
        return IdentityKind.ADMIN
    if node_ou == NodeOU.CLIENT:
        role = attributes.get("role")
        if role == AUDITOR_ROLE:
            return IdentityKind.AUDITOR
        if role == CITIZEN_ROLE:
            return IdentityKind.CITIZEN
        return IdentityKind.OFFICER
    raise CryptoError(
        f"certificate has no recognised Fabric NodeOU (got {node_ou!r})", code="unknown_node_ou"
    )


def officer_attributes(*, role: str, region: str, clearance: int) -> dict[str, str]:
    """Return validated ``role``/``region``/``clearance`` attributes for an officer.

    ``region`` is a 6-digit administrative division code (GB/T 2260, e.g.
    ``440300`` Shenzhen); ``clearance`` is 0 (metadata only) to 3 (restricted).
    """
    if not _ROLE.fullmatch(role):
        raise AccessLedgerError(
            f"role {role!r} must be lowercase letters, digits and underscores",
            code="invalid_attributes",
        )
    if not _REGION.fullmatch(region):
        raise AccessLedgerError(
            f"region {region!r} is not a 6-digit administrative division code",
            code="invalid_attributes",
        )
    if not 0 <= clearance <= 3:
        raise AccessLedgerError(f"clearance {clearance} is outside 0-3", code="invalid_attributes")
    return {"role": role, "region": region, "clearance": str(clearance)}


@dataclass(frozen=True)
class Identity:
    """A named member of the consortium: certificate, optional private key, attributes."""

    name: str
    kind: IdentityKind
    org: str
    msp_id: str
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey | None = field(repr=False, compare=False)
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Freeze the attributes so a shared Identity cannot be altered in place.
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    def cert_pem(self) -> bytes:
        """The certificate in PEM, exactly as Fabric puts it in ``id_bytes``."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def serialized(self) -> bytes:
        """Fabric ``msp.SerializedIdentity`` bytes (MSP ID + PEM certificate)."""
        message = _identities_pb2.SerializedIdentity(mspid=self.msp_id, id_bytes=self.cert_pem())
        data: bytes = message.SerializeToString()
        return data

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The certificate's ECDSA P-256 public key."""
        key = self.certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise CryptoError(f"identity {self.name} does not hold an ECDSA key")
        return key

    def _require_key(self) -> ec.EllipticCurvePrivateKey:
        if self.private_key is None:
            raise CryptoError(
                f"identity {self.name} was loaded without its private key and cannot sign",
                code="no_private_key",
            )
        return self.private_key

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (ECDSA P-256/SHA-256, DER, low-S)."""
        return sign(self._require_key(), message)

    @property
    def signer(self) -> Signer:
        """A :data:`~crypto.signing.Signer` bound to this identity's key."""
        return signer_for(self._require_key())

    def public_only(self) -> Identity:
        """A copy without the private key, safe to hand to verifiers."""
        return Identity(
            name=self.name,
            kind=self.kind,
            org=self.org,
            msp_id=self.msp_id,
            certificate=self.certificate,
            private_key=None,
            attributes=self.attributes,
        )

    @property
    def role(self) -> str | None:
        """The ``role`` attribute, if any."""
        return self.attributes.get("role")

    @property
    def region(self) -> str | None:
        """The ``region`` attribute (6-digit division code), if any."""
        return self.attributes.get("region")

    @property
    def clearance(self) -> int | None:
        """The ``clearance`` attribute as an int (0-3), if any."""
        value = self.attributes.get("clearance")
        return int(value) if value is not None and value.isdigit() else None
