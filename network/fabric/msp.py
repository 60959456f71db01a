"""Channel MSPs: who is a member, in which role, as a Fabric peer decides it.

An :class:`MSP` is built from the ``FabricMSPConfig`` an organisation put in
the channel config: its root and intermediate CA certificates, explicit
admin certificates, CRLs, and the NodeOU settings that classify identities
as ``client``, ``peer``, ``admin`` or ``orderer`` by their subject OU. An
:class:`MSPRegistry` holds every MSP of a channel and deserializes a
``SerializedIdentity`` into a :class:`ValidatedIdentity` only if its
certificate chains to its MSP's CAs, is not revoked and carries exactly one
NodeOU (when NodeOUs are on).

Time: a Fabric MSP checks a certificate chain at the certificate's own
``notBefore`` + 1 s, so an identity that was valid when it signed stays valid
when a ledger is replayed years later (Fabric's FAB-3678 workaround). We do
the same by default; pass ``now`` to also require validity at that instant
(the validator passes the transaction timestamp).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fabric_protos.msp import identities_pb2 as _identities_pb2
from fabric_protos.msp import msp_config_pb2 as _msp_config_pb2
from fabric_protos.msp import msp_principal_pb2 as _msp_principal_pb2
from google.protobuf.message import DecodeError

from crypto.certificates import certificate_fingerprint, validate_certificate
from crypto.errors import CertificateError, VerificationError
from crypto.signing import verify
from network.fabric.errors import ConfigError, MSPError
from network.fabric.transactions import SignedData, channel_config

# The generated protobuf modules ship without type stubs; use them untyped.
identities_pb2: Any = _identities_pb2
msp_config_pb2: Any = _msp_config_pb2
msp_principal_pb2: Any = _msp_principal_pb2

_Classification: Any = msp_principal_pb2.MSPPrincipal
_Role: Any = msp_principal_pb2.MSPRole

#: NodeOU names, in Fabric's order.
NODE_OUS = ("client", "peer", "admin", "orderer")
#: ``MSPRole.MSPRoleType`` value for each NodeOU-based role.
_ROLE_OU = {
    int(_Role.CLIENT): "client",
    int(_Role.PEER): "peer",
    int(_Role.ORDERER): "orderer",
}
_MAX_CHAIN = 8
_CACHE_LIMIT = 4096
_DER = Encoding.DER


@dataclass(frozen=True, slots=True)
class ValidatedIdentity:
    """An identity accepted by its MSP.

    ``organizational_units`` pairs each subject OU with the identity's
    certifiers identifier (SHA-256 over its CA chain), as Fabric's
    ``GetOrganizationalUnits`` does. ``node_ou`` is the identity's NodeOU
    (``None`` when the MSP does not enable NodeOUs).
    """

    msp_id: str
    serialized: bytes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    certifiers_identifier: bytes
    organizational_units: tuple[str, ...]
    node_ou: str | None
    #: Fabric's identity key (MSP ID + certificate hash), used to de-duplicate signers.
    key: str

    @property
    def common_name(self) -> str:
        """The certificate's subject CN (e.g. ``peer0.org1.example.com``)."""
        names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        value = names[0].value if names else ""
        return value if isinstance(value, str) else value.decode()

    def verify(self, data: bytes, signature: bytes) -> None:
        """Verify a low-S ECDSA P-256 signature by this identity; raise if it does not verify."""
        key = self.certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise VerificationError("identity key is not an ECDSA key")
        verify(key, data, signature)


def _load_pem(data: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise MSPError(f"{what} is not a PEM X.509 certificate") from exc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _ou_names(cert: x509.Certificate) -> tuple[str, ...]:
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return tuple(v.value if isinstance(v.value, str) else v.value.decode() for v in values)


def _chain_identifier(chain: Sequence[x509.Certificate]) -> bytes:
    digest = hashlib.sha256()
    for cert in chain:
        digest.update(cert.public_bytes(_DER))
    return digest.digest()


@dataclass(frozen=True, slots=True)
class _OUIdentifier:
    name: str
    certifiers: bytes  # empty: any certification path


class MSP:
    """One organisation's MSP, from its ``FabricMSPConfig``."""

    def __init__(self, config: Any) -> None:
        self.msp_id: str = str(config.name)
        if not self.msp_id:
            raise ConfigError("MSP config has no name")
        self.root_certs = [_load_pem(c, f"{self.msp_id} root cert") for c in config.root_certs]
        if not self.root_certs:
            raise ConfigError(f"MSP {self.msp_id} has no root certificate")
        self.intermediate_certs = [
            _load_pem(c, f"{self.msp_id} intermediate cert") for c in config.intermediate_certs
        ]
        self._ca_certs = self.root_certs + self.intermediate_certs
        self.admin_certs = [_load_pem(c, f"{self.msp_id} admin cert") for c in config.admins]
        self.crls = []
        for raw in config.revocation_list:
            try:
                self.crls.append(x509.load_pem_x509_crl(raw))
            except ValueError as exc:
                raise ConfigError(f"MSP {self.msp_id}: unreadable CRL") from exc
        self.ou_identifiers = [
            _OUIdentifier(str(ou.organizational_unit_identifier), self._certifiers(ou.certificate))
            for ou in config.organizational_unit_identifiers
        ]
        self.node_ous_enabled = bool(config.fabric_node_ous.enable)
        self.node_ous: dict[str, _OUIdentifier] = {}
        if self.node_ous_enabled:
            node_ous = config.fabric_node_ous
            for role in NODE_OUS:
                field = f"{role}_ou_identifier"
                if node_ous.HasField(field):
                    ou = getattr(node_ous, field)
                    self.node_ous[role] = _OUIdentifier(
                        str(ou.organizational_unit_identifier), self._certifiers(ou.certificate)
                    )

    @classmethod
    def from_msp_config(cls, msp_config: Any) -> MSP:
        """Build from a ``msp.MSPConfig`` (the ``MSP`` value of an org's config group)."""
        if int(msp_config.type) != 0:
            raise ConfigError(f"MSP type {msp_config.type} (not X.509 FABRIC) is not supported")
        fabric = msp_config_pb2.FabricMSPConfig()
        try:
            fabric.ParseFromString(msp_config.config)
        except DecodeError as exc:
            raise ConfigError("unreadable FabricMSPConfig") from exc
        return cls(fabric)

    def _certifiers(self, pem: bytes) -> bytes:
        if not pem:
            return b""
        cert = _load_pem(pem, f"{self.msp_id} OU certificate")
        if cert in self.root_certs:
            return _chain_identifier([cert])
        if cert in self.intermediate_certs:
            return _chain_identifier(self._chain_to_root(cert))
        raise ConfigError(f"MSP {self.msp_id}: OU certificate is not one of its CA certificates")

    def _chain_to_root(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """``[cert, issuer, ..., root]`` using this MSP's CA certificates."""
        chain = [cert]
        current = cert
        while current not in self.root_certs:
            if len(chain) > _MAX_CHAIN:
                raise MSPError(f"certificate chain in {self.msp_id} is too long")
            issuer = next((ca for ca in self._ca_certs if _issued_by(current, ca)), None)
            if issuer is None or issuer in chain:
                raise MSPError(f"certificate is not issued by a CA of {self.msp_id}")
            chain.append(issuer)
            current = issuer
        return chain

    def validate(self, serialized: bytes, cert: x509.Certificate) -> ValidatedIdentity:
        """Accept ``cert`` as a member of this MSP, or raise :class:`MSPError` saying why."""
        if _is_ca(cert):
            raise MSPError("a CA certificate cannot be used as an identity")
        chain = self._chain_to_root(cert)
        fabric_time = cert.not_valid_before_utc + timedelta(seconds=1)
        try:
            validate_certificate(cert, ca_certs=self._ca_certs, now=fabric_time)
        except CertificateError as exc:
            raise MSPError(f"{self.msp_id}: {exc.message}") from exc
        self._check_revocation(cert, chain)
        certifiers = _chain_identifier(chain[1:])
        ous = _ou_names(cert)
        if self.ou_identifiers and not any(
            ou.name in ous and (not ou.certifiers or ou.certifiers == certifiers)
            for ou in self.ou_identifiers
        ):
            raise MSPError(f"none of the identity's OUs {list(ous)} is recognised by {self.msp_id}")
        node_ou = self._node_ou(ous, certifiers) if self.node_ous_enabled else None
        return ValidatedIdentity(
            msp_id=self.msp_id,
            serialized=serialized,
            certificate=cert,
            chain=tuple(chain),
            certifiers_identifier=certifiers,
            organizational_units=ous,
            node_ou=node_ou,
            key=self.msp_id + certificate_fingerprint(cert),
        )

    def _check_revocation(self, cert: x509.Certificate, chain: Sequence[x509.Certificate]) -> None:
        if len(chain) >= 2 and self.revokes(cert, chain[1]):
            raise MSPError(f"certificate has been revoked by {self.msp_id}")

    def revokes(self, cert: x509.Certificate, issuer: x509.Certificate | None = None) -> bool:
        """Whether a CRL of this MSP, validly signed by ``cert``'s issuer, lists ``cert``.

        ``issuer`` defaults to the MSP's CA certificate whose subject is the
        certificate's issuer name.
        """
        if not self.crls:
            return False
        if issuer is None:
            issuer = next((ca for ca in self._ca_certs if ca.subject == cert.issuer), None)
            if issuer is None:
                return False
        issuer_key = issuer.public_key()
        if not isinstance(issuer_key, ec.EllipticCurvePublicKey):
            return False
        return any(
            crl.issuer == issuer.subject
            and crl.is_signature_valid(issuer_key)
            and crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
            for crl in self.crls
        )

    def _node_ou(self, ous: Sequence[str], certifiers: bytes) -> str:
        matches = []
        for role, ou in self.node_ous.items():
            if ou.name in ous:
                if ou.certifiers and ou.certifiers != certifiers:
                    raise MSPError(f"{self.msp_id}: NodeOU {ou.name!r} certified by another CA")
                matches.append(role)
        if len(matches) != 1:
            raise MSPError(
                f"{self.msp_id}: an identity must be exactly one of client, peer, admin or "
                f"orderer; subject OUs are {list(ous)}"
            )
        return matches[0]

    def is_admin(self, identity: ValidatedIdentity) -> bool:
        """Explicit admin certificate, or the admin NodeOU."""
        if identity.certificate in self.admin_certs:
            return True
        return self.node_ous_enabled and identity.node_ou == "admin"


def _parse(message: Any, data: bytes, what: str) -> Any:
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise MSPError(f"unreadable {what}") from exc
    return message


def _walk_groups(group: Any) -> Iterator[Any]:
    yield group
    for child in group.groups.values():
        yield from _walk_groups(child)


class MSPRegistry:
    """The MSPs of a channel, and the deserializer Fabric's validator uses."""

    def __init__(self, msps: Sequence[MSP]) -> None:
        self.msps: Mapping[str, MSP] = {m.msp_id: m for m in msps}
        self._cache: dict[bytes, ValidatedIdentity] = {}

    @classmethod
    def from_block(cls, block: Any) -> MSPRegistry:
        """The MSPs defined by a config block (e.g. the genesis block)."""
        return cls.from_config(channel_config(block.data.data))

    @classmethod
    def from_config(cls, config: Any) -> MSPRegistry:
        """Every org MSP in a ``configtx.Config`` (Application, Orderer, consortium groups)."""
        msps = []
        for group in _walk_groups(config.channel_group):
            if "MSP" in group.values:
                msp_config = msp_config_pb2.MSPConfig()
                try:
                    msp_config.ParseFromString(group.values["MSP"].value)
                except DecodeError as exc:
                    raise ConfigError("unreadable MSP value in channel config") from exc
                msps.append(MSP.from_msp_config(msp_config))
        if not msps:
            raise ConfigError("channel config defines no MSP")
        return cls(msps)

    def deserialize(self, serialized: bytes, *, now: datetime | None = None) -> ValidatedIdentity:
        """Decode and validate a ``SerializedIdentity``; raise :class:`MSPError` if not a member.

        With ``now``, every certificate of the chain must also be valid at ``now``.
        """
        identity = self._cache.get(serialized)
        if identity is None:
            sid = _parse(identities_pb2.SerializedIdentity(), serialized, "serialized identity")
            msp = self.msps.get(str(sid.mspid))
            if msp is None:
                raise MSPError(f"identity names unknown MSP {sid.mspid!r}")
            cert = _load_pem(bytes(sid.id_bytes), "identity")
            identity = msp.validate(serialized, cert)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[serialized] = identity
        if now is not None:
            for cert in identity.chain:
                if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                    raise MSPError(
                        f"certificate {cert.subject.rfc4514_string()} is not valid at "
                        f"{now.isoformat()}"
                    )
        return identity

    def verify(self, signed: SignedData, *, now: datetime | None = None) -> ValidatedIdentity:
        """Deserialize the signer and verify its signature; raise if either fails."""
        identity = self.deserialize(signed.identity, now=now)
        identity.verify(signed.data, signed.signature)
        return identity

    def valid_identities(
        self, signed: Sequence[SignedData], *, now: datetime | None = None
    ) -> list[ValidatedIdentity]:
        """Fabric's ``SignatureSetToValidIdentities``: drop bad signers, keep each signer once."""
        seen: set[str] = set()
        out = []
        for sd in signed:
            try:
                identity = self.deserialize(sd.identity, now=now)
            except MSPError:
                continue
            if identity.key in seen:
                continue
            try:
                identity.verify(sd.data, sd.signature)
            except VerificationError:
                continue
            seen.add(identity.key)
            out.append(identity)
        return out

    def satisfies_principal(self, identity: ValidatedIdentity, principal: Any) -> None:
        """Raise :class:`MSPError` unless ``identity`` satisfies the ``MSPPrincipal``."""
        problem = self.principal_mismatch(identity, principal)
        if problem is not None:
            raise MSPError(problem)

    def is_satisfied(self, identity: ValidatedIdentity, principal: Any) -> bool:
        """Whether ``identity`` satisfies the ``MSPPrincipal`` (no exception either way)."""
        return self.principal_mismatch(identity, principal) is None

    def principal_matcher(self, principal: Any) -> Callable[[ValidatedIdentity], bool]:
        """A predicate equivalent to :meth:`is_satisfied` for one ``MSPPrincipal``.

        A policy checks its principals against every signer of every
        transaction, so the common ROLE principal is decoded once here.
        """
        if int(principal.principal_classification) == int(_Classification.ROLE):
            try:
                role = _parse(msp_principal_pb2.MSPRole(), principal.principal, "MSPRole")
            except MSPError:
                return lambda identity: False
            msp_id, role_type = str(role.msp_identifier), int(role.role)
            known = msp_id in self.msps

            def role_matches(identity: ValidatedIdentity) -> bool:
                return (
                    known
                    and identity.msp_id == msp_id
                    and self._role_mismatch(identity, role_type) is None
                )

            return role_matches
        return lambda identity: self.principal_mismatch(identity, principal) is None

    def principal_mismatch(self, identity: ValidatedIdentity, principal: Any) -> str | None:
        """Why ``identity`` does not satisfy the ``MSPPrincipal``, or ``None`` if it does.

        Policy evaluation asks this for every identity/principal pair, most of
        which do not match, so a mismatch is a return value, not an exception.
        """
        kind = int(principal.principal_classification)
        try:
            if kind == int(_Classification.ROLE):
                role = _parse(msp_principal_pb2.MSPRole(), principal.principal, "MSPRole")
                msp_id = str(role.msp_identifier)
                return self._msp_mismatch(identity, msp_id) or self._role_mismatch(
                    identity, int(role.role)
                )
            if kind == int(_Classification.IDENTITY):
                other = _parse(identities_pb2.SerializedIdentity(), principal.principal, "identity")
                cert = _load_pem(bytes(other.id_bytes), "principal identity")
                if str(other.mspid) != identity.msp_id or cert != identity.certificate:
                    return "identity is not the one the principal names"
                return None
            if kind == int(_Classification.ORGANIZATION_UNIT):
                ou = _parse(msp_principal_pb2.OrganizationUnit(), principal.principal, "OU")
                problem = self._msp_mismatch(identity, str(ou.msp_identifier))
                if problem is not None:
                    return problem
                if str(ou.organizational_unit_identifier) not in identity.organizational_units or (
                    bytes(ou.certifiers_identifier) != identity.certifiers_identifier
                ):
                    return f"identity is not in OU {ou.organizational_unit_identifier!r}"
                return None
            if kind == int(_Classification.COMBINED):
                combined = _parse(
                    msp_principal_pb2.CombinedPrincipal(), principal.principal, "combined principal"
                )
                if not combined.principals:
                    return "empty combined principal"
                for sub in combined.principals:
                    problem = self.principal_mismatch(identity, sub)
                    if problem is not None:
                        return problem
                return None
            if kind == int(_Classification.ANONYMITY):
                anonymity = _parse(
                    msp_principal_pb2.MSPIdentityAnonymity(), principal.principal, "anonymity"
                )
                nominal = int(msp_principal_pb2.MSPIdentityAnonymity.NOMINAL)
                if int(anonymity.anonymity_type) != nominal:
                    return "X.509 identities are nominal, not anonymous"
                return None
        except MSPError as exc:  # an unreadable principal matches no identity
            return exc.message
        return f"unknown principal classification {kind}"

    def _msp_mismatch(self, identity: ValidatedIdentity, msp_id: str) -> str | None:
        if identity.msp_id != msp_id:
            return f"identity is in {identity.msp_id}, the principal needs {msp_id}"
        if msp_id not in self.msps:
            return f"principal names unknown MSP {msp_id!r}"
        return None

    def _role_mismatch(self, identity: ValidatedIdentity, role: int) -> str | None:
        msp = self.msps[identity.msp_id]
        if role == int(_Role.MEMBER):
            return None
        if role == int(_Role.ADMIN):
            return None if msp.is_admin(identity) else f"identity is not an admin of {msp.msp_id}"
        wanted = _ROLE_OU.get(role)
        if wanted is None:
            return f"unknown MSP role {role}"
        if not msp.node_ous_enabled:
            return f"{msp.msp_id} has NodeOUs disabled; cannot check the {wanted} role"
        if identity.node_ou != wanted:
            return f"identity is a {identity.node_ou}, the principal needs a {wanted}"
        return None
