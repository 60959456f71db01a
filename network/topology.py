"""The network topology: the home's ``network.yaml`` as typed, validated values.

One file describes the whole consortium: the channel, the ordering service
and its batch settings, each department's MSP and peers, the chaincode and
the channel endorsement policy. The embedded engine, the channel genesis
block (:mod:`network.fabric.configblock`) and the Fabric artefacts
(:mod:`network.artefacts`) are all derived from it, so they cannot drift.

Loading is strict: an unknown key, a wrong type or an impossible value raises
:class:`TopologyError` whose message names the offending field by its path
(``organizations[2].peers[0].address``), because a typo in a deployment file
should fail loudly at start-up, not as a confusing Fabric error later. The
reading rules (and :class:`TopologyError`, :func:`split_address`) live in
:mod:`network.topologyfields`; this module is the network they describe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from fabric_protos.msp import msp_principal_pb2 as _msp_principal_pb2

from crypto.consortium import yaml_problem
from crypto.errors import AccessLedgerError
from network.fabric.policy import parse_signature_policy
from network.topologyfields import MAX_NAME_LENGTH, FieldReader, TopologyError, split_address

__all__ = [
    "BatchSettings",
    "ChaincodeSpec",
    "GatewaySpec",
    "OrdererSpec",
    "OrganizationSpec",
    "PeerSpec",
    "Topology",
    "TopologyError",
    "endorsement_policy_envelope",
    "split_address",
]

#: The only ``network.yaml`` format version this code reads and writes.
TOPOLOGY_VERSION = 1

# Fabric's own rules: channel names (configtx.ValidateChannelID) and chaincode
# names (lifecycle); config group keys and hosts are checked in network.topologyfields.
_CHANNEL_RE = re.compile(r"^[a-z][a-z0-9.-]*$")
_CHAINCODE_NAME_RE = re.compile(r"^[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*$")
_CHAINCODE_VERSION_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
#: Fabric's implicit-meta rule syntax, ``ANY|ALL|MAJORITY <SubPolicy>``.
IMPLICIT_META_RE = re.compile(r"^\s*(ANY|ALL|MAJORITY)\s+([A-Za-z0-9_.-]+)\s*$")
# The generated protobuf modules ship without type stubs; use them untyped.
msp_principal_pb2: Any = _msp_principal_pb2


def endorsement_policy_envelope(text: str, msp_ids: Sequence[str]) -> Any:
    """Check an ``endorsement_policy`` value and return its ``SignaturePolicyEnvelope``.

    An implicit-meta rule (``MAJORITY Endorsement``) returns ``None``. A
    signature expression (``OutOf(2, 'AMSP.peer', ...)``) must parse and name
    only MSPs in ``msp_ids``; otherwise :class:`TopologyError` naming the field.
    """
    if IMPLICIT_META_RE.match(text):
        return None
    try:
        envelope = parse_signature_policy(text)
    except AccessLedgerError as exc:
        raise TopologyError(f"endorsement_policy: {exc.message}") from None
    for principal in envelope.identities:
        role = msp_principal_pb2.MSPRole.FromString(principal.principal)
        if role.msp_identifier not in msp_ids:
            raise TopologyError(
                f"endorsement_policy: {role.msp_identifier!r} is not the MSP ID of an "
                f"organisation in the topology ({', '.join(msp_ids)})"
            )
    return envelope


@dataclass(frozen=True)
class BatchSettings:
    """When the orderer cuts a block: Fabric's ``BatchSize`` and ``BatchTimeout``."""

    max_message_count: int
    batch_timeout_ms: int
    absolute_max_bytes: int
    preferred_max_bytes: int

    @classmethod
    def from_dict(cls, data: Any, where: str = "orderer.batch") -> BatchSettings:
        r = FieldReader(data, where)
        settings = cls(
            max_message_count=r.positive_int("max_message_count"),
            batch_timeout_ms=r.positive_int("batch_timeout_ms"),
            absolute_max_bytes=r.positive_int("absolute_max_bytes"),
            preferred_max_bytes=r.positive_int("preferred_max_bytes"),
        )
        r.done()
        # Fabric's orderer rejects a BatchSize whose preferred size exceeds the absolute one.
        if settings.preferred_max_bytes > settings.absolute_max_bytes:
            raise TopologyError(
                f"{where}.preferred_max_bytes: {settings.preferred_max_bytes} exceeds "
                f"absolute_max_bytes {settings.absolute_max_bytes}"
            )
        return settings


@dataclass(frozen=True)
class PeerSpec:
    """One peer: the home identity it signs with and the address it listens on.

    ``anchor`` peers are published in the channel configuration (Fabric
    ``AnchorPeers``) so other organisations' peers can find this one by gossip.
    """

    identity: str
    address: str
    anchor: bool = True

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]

    @classmethod
    def from_dict(cls, data: Any, where: str) -> PeerSpec:
        r = FieldReader(data, where)
        peer = cls(
            identity=r.name("identity"), address=r.address("address"), anchor=r.flag("anchor", True)
        )
        r.done()
        return peer


@dataclass(frozen=True)
class OrganizationSpec:
    """A department: its Fabric organisation name, MSP ID, DNS domain, MSP directory and peers.

    ``msp_dir`` is relative to the home (or absolute); it holds the public MSP
    in Fabric's layout (``cacerts/``, ``config.yaml`` with NodeOUs, ...).
    """

    name: str
    msp_id: str
    domain: str
    msp_dir: str
    peers: tuple[PeerSpec, ...] = ()

    def msp_path(self, home: Path) -> Path:
        """The MSP directory on disk, resolved against ``home``."""
        return Path(home) / self.msp_dir

    def peer_hostname(self, peer: PeerSpec) -> str:
        """The peer's DNS name, Fabric-style: first label of its identity + the org domain."""
        return f"{peer.identity.split('.', 1)[0]}.{self.domain}"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> OrganizationSpec:
        r = FieldReader(data, where)
        org = cls(
            name=r.department_name("name"),
            msp_id=r.department_name("msp_id"),
            domain=r.domain("domain"),
            msp_dir=r.path("msp_dir"),
            peers=tuple(
                PeerSpec.from_dict(item, f"{where}.peers[{i}]")
                for i, item in enumerate(r.sequence("peers", default=()))
            ),
        )
        r.done()
        return org


@dataclass(frozen=True)
class OrdererSpec:
    """The ordering service: one Raft orderer, its organisation and batch settings.

    ``msp_dir`` defaults to ``orgs/<org>/msp``. ``tls_cert`` (relative to the
    home) is the orderer's TLS server certificate, which Fabric's etcdraft
    consenter set must contain; when absent the orderer identity's signing
    certificate stands in (the embedded engine has no TLS).
    """

    org: str
    msp_id: str
    identity: str
    address: str
    batch: BatchSettings
    domain: str = ""
    msp_dir: str = ""
    tls_cert: str = ""

    def __post_init__(self) -> None:
        if not self.msp_dir:
            object.__setattr__(self, "msp_dir", f"orgs/{self.org}/msp")

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]

    def msp_path(self, home: Path) -> Path:
        return Path(home) / self.msp_dir

    def tls_cert_path(self, home: Path) -> Path:
        """The certificate recorded as the Raft consenter's client and server TLS certificate."""
        if self.tls_cert:
            return Path(home) / self.tls_cert
        return (
            Path(home)
            / "orgs"
            / self.org
            / "identities"
            / self.identity
            / "msp"
            / "signcerts"
            / "cert.pem"
        )

    @classmethod
    def from_dict(cls, data: Any, where: str = "orderer") -> OrdererSpec:
        r = FieldReader(data, where)
        spec = cls(
            org=r.config_key("org"),
            msp_id=r.config_key("msp_id"),
            identity=r.name("identity"),
            address=r.address("address"),
            batch=BatchSettings.from_dict(r.raw("batch"), f"{where}.batch"),
            domain=r.domain("domain", default=""),
            msp_dir=r.path("msp_dir", default=""),
            tls_cert=r.path("tls_cert", default=""),
        )
        r.done()
        return spec


@dataclass(frozen=True)
class ChaincodeSpec:
    """The AccessLedger chaincode's name and version as deployed on the channel."""

    name: str
    version: str

    @classmethod
    def from_dict(cls, data: Any, where: str = "chaincode") -> ChaincodeSpec:
        r = FieldReader(data, where)
        spec = cls(
            name=r.matching("name", _CHAINCODE_NAME_RE, "a Fabric chaincode name"),
            version=r.matching("version", _CHAINCODE_VERSION_RE, "a chaincode version"),
        )
        r.done()
        return spec


@dataclass(frozen=True)
class GatewaySpec:
    """Where the AccessLedger gateway serves its HTTP API."""

    url: str

    @classmethod
    def from_dict(cls, data: Any, where: str = "gateway") -> GatewaySpec:
        r = FieldReader(data, where)
        url = r.matching("url", re.compile(r"^https?://[^\s/]+(/\S*)?$"), "an http(s) URL")
        r.done()
        return cls(url=url)


@dataclass(frozen=True)
class Topology:
    """The whole network as described by ``network.yaml`` (format version 1)."""

    channel: str
    orderer: OrdererSpec
    organizations: tuple[OrganizationSpec, ...]
    chaincode: ChaincodeSpec
    endorsement_policy: str
    gateway: GatewaySpec
    version: int = TOPOLOGY_VERSION
    _by_key: Mapping[str, OrganizationSpec] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        index: dict[str, OrganizationSpec] = {}
        for org in self.organizations:
            index[org.name] = org
            index[org.msp_id] = org
        object.__setattr__(self, "_by_key", index)

    # -- queries --------------------------------------------------------------------

    @property
    def msp_ids(self) -> tuple[str, ...]:
        """Application organisations' MSP IDs, in file order (the orderer's is not included)."""
        return tuple(org.msp_id for org in self.organizations)

    def organization(self, name_or_msp_id: str) -> OrganizationSpec:
        """The application organisation with this name or MSP ID; :class:`TopologyError` if none."""
        try:
            return self._by_key[name_or_msp_id]
        except KeyError:
            raise TopologyError(
                f"no organisation named {name_or_msp_id!r} in the topology"
            ) from None

    def peers(self) -> list[tuple[OrganizationSpec, PeerSpec]]:
        """Every peer with its organisation, in file order."""
        return [(org, peer) for org in self.organizations for peer in org.peers]

    # -- (de)serialisation ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The ``network.yaml`` structure; ``Topology.from_dict(t.to_dict()) == t``."""
        plain = _plain(self)
        return {"version": plain.pop("version"), **plain}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    def save(self, path: Path) -> None:
        """Write ``network.yaml``."""
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: Any) -> Topology:
        """Validate a parsed ``network.yaml``; raise :class:`TopologyError` naming the bad field."""
        r = FieldReader(data, "")
        version = r.raw("version")
        if version != TOPOLOGY_VERSION or isinstance(version, bool):
            raise TopologyError(f"version: expected {TOPOLOGY_VERSION}, got {version!r}")
        channel = r.matching(
            "channel", _CHANNEL_RE, "a Fabric channel name (lowercase, starts with a letter)"
        )
        if len(channel) > MAX_NAME_LENGTH:
            raise TopologyError(f"channel: longer than {MAX_NAME_LENGTH} characters")
        orgs_raw = r.sequence("organizations")
        if not orgs_raw:
            raise TopologyError("organizations: at least one organisation is required")
        topology = cls(
            version=TOPOLOGY_VERSION,
            channel=channel,
            orderer=OrdererSpec.from_dict(r.raw("orderer")),
            organizations=tuple(
                OrganizationSpec.from_dict(item, f"organizations[{i}]")
                for i, item in enumerate(orgs_raw)
            ),
            chaincode=ChaincodeSpec.from_dict(r.raw("chaincode")),
            endorsement_policy=r.text("endorsement_policy"),
            gateway=GatewaySpec.from_dict(r.raw("gateway")),
        )
        r.done()
        topology._check_uniqueness()
        endorsement_policy_envelope(topology.endorsement_policy, topology.msp_ids)
        return topology

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "network.yaml") -> Topology:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TopologyError(f"{source}: not valid YAML: {yaml_problem(exc)}") from None
        except RecursionError:
            raise TopologyError(f"{source}: not valid YAML: nested too deeply") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: Path) -> Topology:
        """Read and validate a ``network.yaml`` file (or a home directory containing one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "network.yaml"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TopologyError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise TopologyError(f"{path} is not UTF-8 text (line {line})") from None
        return cls.from_yaml(text, source=str(path))

    def _check_uniqueness(self) -> None:
        seen: dict[str, str] = {
            self.orderer.org: "orderer.org",
            self.orderer.msp_id: "orderer.msp_id",
            self.orderer.identity: "orderer.identity",
        }
        addresses: dict[str, str] = {self.orderer.address: "orderer.address"}

        def claim(registry: dict[str, str], value: str, where: str) -> None:
            if value in registry:
                raise TopologyError(f"{where}: {value!r} is already used by {registry[value]}")
            registry[value] = where

        for i, org in enumerate(self.organizations):
            claim(seen, org.name, f"organizations[{i}].name")
            if org.msp_id != org.name:
                claim(seen, org.msp_id, f"organizations[{i}].msp_id")
            for j, peer in enumerate(org.peers):
                claim(seen, peer.identity, f"organizations[{i}].peers[{j}].identity")
                claim(addresses, peer.address, f"organizations[{i}].peers[{j}].address")


def _plain(value: Any) -> Any:
    """A spec as YAML-ready dicts and lists; optional strings left empty are omitted."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in fields(value)
            if f.init and not (f.default == "" and getattr(value, f.name) == "")
        }
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value
