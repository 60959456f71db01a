"""The channel genesis block (block 0), built the way Fabric's ``configtxgen`` builds it.

The block is an application-channel genesis block for the channel
participation API (``osnadmin channel join``): there is no system channel
and no ``Consortium`` value. Its shape is the one a Fabric 2.5
``configtxgen -outputBlock`` writes, checked against the real genesis block
in ``shared/fabric-fixtures`` (whose configuration this module rebuilds
exactly, see the tests):

* ``Channel``: ``HashingAlgorithm`` SHA256, ``BlockDataHashingStructure``
  width 2^32-1, ``OrdererAddresses``, ``Capabilities`` V2_0, implicit-meta
  ``Readers``/``Writers`` (ANY) and ``Admins`` (MAJORITY).
* ``Channel/Orderer``: ``ConsensusType`` etcdraft with one consenter (the
  orderer of the topology) and configtxgen's default Raft options,
  ``BatchSize``/``BatchTimeout`` from the topology, empty
  ``ChannelRestrictions``, ``Capabilities`` V2_0, and ``BlockValidation``
  (ANY Writers); one orderer organisation with ``Endpoints`` and signature
  policies ``Readers``/``Writers`` = member, ``Admins`` = admin.
* ``Channel/Application``: ``Capabilities`` V2_5; one group per department
  with its MSP (root and TLS root certificates, NodeOUs), ``AnchorPeers``
  and the policies Readers = admin|peer|client, Writers = admin|client,
  Admins = admin, Endorsement = peer.

**Where the endorsement policy lives.** The topology's
``endorsement_policy`` becomes the channel's ``/Channel/Application/Endorsement``
policy. A signature-policy expression (``OutOf(2, 'AMSP.peer', ...)``) is
stored as a SIGNATURE policy; an implicit-meta rule (``MAJORITY Endorsement``)
as an IMPLICIT_META policy. That path is the default endorsement policy of
every chaincode defined on the channel in Fabric, so a chaincode approved
without an explicit policy is endorsed exactly as the embedded engine
endorses it. ``LifecycleEndorsement`` stays ``MAJORITY Endorsement``, as in
Fabric's defaults.

All protobuf encodings are deterministic, so the same inputs (including the
injected clock and nonce) give byte-identical blocks.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fabric_protos.common import common_pb2 as _common
from fabric_protos.common import configtx_pb2 as _configtx
from fabric_protos.common import configuration_pb2 as _configuration
from fabric_protos.common import policies_pb2 as _policies
from fabric_protos.msp import msp_config_pb2 as _msp_config
from fabric_protos.orderer import configuration_pb2 as _orderer
from fabric_protos.orderer.etcdraft import configuration_pb2 as _etcdraft
from fabric_protos.peer import configuration_pb2 as _peer
from google.protobuf.message import DecodeError

from network.fabric.blocks import NONCE_SIZE, new_block
from network.fabric.errors import ConfigError
from network.fabric.mspfolder import load_msp_config as load_msp_config
from network.fabric.policy import parse_signature_policy
from network.topology import (
    IMPLICIT_META_RE,
    BatchSettings,
    OrganizationSpec,
    Topology,
    endorsement_policy_envelope,
)

# The generated protobuf modules ship without type stubs; use them untyped.
common_pb2: Any = _common
configtx_pb2: Any = _configtx
configuration_pb2: Any = _configuration
policies_pb2: Any = _policies
msp_config_pb2: Any = _msp_config
orderer_pb2: Any = _orderer
etcdraft_pb2: Any = _etcdraft
peer_pb2: Any = _peer

# Readable names for the untyped protobuf messages in signatures.
Block = Any
Config = Any
ConfigGroup = Any
MSPConfig = Any
Policy = Any

__all__ = [
    "APPLICATION_CAPABILITY",
    "BLOCK_VALIDATION_RULE",
    "CHANNEL_CAPABILITY",
    "LIFECYCLE_ENDORSEMENT_RULE",
    "ORDERER_CAPABILITY",
    "STANDARD_POLICIES",
    "application_org_policies",
    "batch_settings_from_config",
    "build_channel_config",
    "build_genesis_block",
    "endorsement_policy_from_config",
    "endorsement_policy_to_proto",
    "format_go_duration",
    "genesis_block_for_home",
    "load_msp_config",
    "orderer_org_policies",
    "parse_go_duration",
    "policy_from_rule",
    "read_config",
]

CHANNEL_CAPABILITY = "V2_0"
ORDERER_CAPABILITY = "V2_0"
APPLICATION_CAPABILITY = "V2_5"
CONSENSUS_TYPE = "etcdraft"

# Config keys, as Fabric names them (common/channelconfig).
ADMINS = "Admins"
READERS = "Readers"
WRITERS = "Writers"
ENDORSEMENT = "Endorsement"
LIFECYCLE_ENDORSEMENT = "LifecycleEndorsement"
BLOCK_VALIDATION = "BlockValidation"
APPLICATION = "Application"
ORDERER = "Orderer"
ORDERER_ADMINS_PATH = "/Channel/Orderer/Admins"

_MAX_UINT32 = 0xFFFFFFFF
#: configtxgen's default etcdraft options (its ``genesisDefaults``), as in the fixture block.
_RAFT_OPTIONS = etcdraft_pb2.Options(
    tick_interval="500ms",
    election_tick=10,
    heartbeat_tick=1,
    max_inflight_blocks=5,
    snapshot_interval_size=16 * 1024 * 1024,
)


def _encode(message: Any) -> bytes:
    data: bytes = message.SerializeToString(deterministic=True)
    return data


# -- Go durations (BatchTimeout is a Go time.Duration string) ---------------------------

_DURATION_UNITS_MS = {
    "ns": Decimal("0.000001"),
    "us": Decimal("0.001"),
    "\u00b5s": Decimal("0.001"),
    "\u03bcs": Decimal("0.001"),
    "ms": Decimal(1),
    "s": Decimal(1000),
    "m": Decimal(60_000),
    "h": Decimal(3_600_000),
}
_DURATION_PART = r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
_DURATION_RE = re.compile(f"(?:{_DURATION_PART})+")
_DURATION_PART_RE = re.compile(_DURATION_PART)


def format_go_duration(milliseconds: int) -> str:
    """Format like Go's ``time.Duration.String``: ``200ms``, ``2s``, ``1.5s``, ``1m30s``."""
    if milliseconds < 0:
        raise ValueError("a batch timeout cannot be negative")
    if milliseconds < 1000:
        return f"{milliseconds}ms" if milliseconds else "0s"
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{seconds}.{millis:03d}".rstrip("0") if millis else str(seconds)
    if hours:
        return f"{hours}h{minutes}m{text}s"
    return f"{minutes}m{text}s" if minutes else f"{text}s"


def parse_go_duration(text: str) -> int:
    """Parse a Go duration into whole milliseconds; ``ValueError`` if malformed or sub-ms."""
    if text == "0":
        return 0
    if not _DURATION_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a Go duration")
    total = sum(
        (Decimal(n) * _DURATION_UNITS_MS[u] for n, u in _DURATION_PART_RE.findall(text)),
        Decimal(0),
    )
    if total != total.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of milliseconds")
    return int(total)


# -- policies -------------------------------------------------------------------------

#: The implicit-meta policies of the channel, orderer and application groups (configtxgen's).
STANDARD_POLICIES = {READERS: "ANY Readers", WRITERS: "ANY Writers", ADMINS: "MAJORITY Admins"}
LIFECYCLE_ENDORSEMENT_RULE = "MAJORITY Endorsement"
BLOCK_VALIDATION_RULE = "ANY Writers"


def application_org_policies(msp_id: str) -> dict[str, str]:
    """A department's policies as rule text (fabric-samples' test-network, NodeOUs on)."""
    m = msp_id
    return {
        READERS: f"OR('{m}.admin', '{m}.peer', '{m}.client')",
        WRITERS: f"OR('{m}.admin', '{m}.client')",
        ADMINS: f"OR('{m}.admin')",
        ENDORSEMENT: f"OR('{m}.peer')",
    }


def orderer_org_policies(msp_id: str) -> dict[str, str]:
    """The orderer organisation's policies as rule text."""
    return {
        READERS: f"OR('{msp_id}.member')",
        WRITERS: f"OR('{msp_id}.member')",
        ADMINS: f"OR('{msp_id}.admin')",
    }


def policy_from_rule(rule: str) -> Policy:
    """A config ``Policy`` from rule text, as configtxgen reads configtx.yaml.

    ``ANY|ALL|MAJORITY <SubPolicy>`` is IMPLICIT_META; anything else is a
    signature-policy expression (raises ``PolicySyntaxError`` if malformed).
    """
    meta = IMPLICIT_META_RE.match(rule)
    if meta:
        value = policies_pb2.ImplicitMetaPolicy(
            sub_policy=meta.group(2), rule=policies_pb2.ImplicitMetaPolicy.Rule.Value(meta.group(1))
        )
        return policies_pb2.Policy(type=policies_pb2.Policy.IMPLICIT_META, value=_encode(value))
    envelope = parse_signature_policy(rule)
    return policies_pb2.Policy(type=policies_pb2.Policy.SIGNATURE, value=_encode(envelope))


def endorsement_policy_to_proto(text: str, msp_ids: tuple[str, ...]) -> Policy:
    """The topology's ``endorsement_policy`` as a config ``Policy``.

    Raises :class:`TopologyError` naming ``endorsement_policy`` if it is
    malformed or names an MSP outside ``msp_ids``.
    """
    endorsement_policy_envelope(text, msp_ids)
    return policy_from_rule(text)


# -- groups ---------------------------------------------------------------------------


def _add_value(group: ConfigGroup, key: str, message: object, mod_policy: str = ADMINS) -> None:
    group.values[key].CopyFrom(
        configtx_pb2.ConfigValue(value=_encode(message), mod_policy=mod_policy)
    )


def _add_policy(group: ConfigGroup, key: str, policy: Policy) -> None:
    group.policies[key].CopyFrom(configtx_pb2.ConfigPolicy(policy=policy, mod_policy=ADMINS))


def _capabilities(name: str) -> Any:
    caps = configuration_pb2.Capabilities()
    caps.capabilities[name].SetInParent()
    return caps


def _add_policies(group: ConfigGroup, rules: Mapping[str, str]) -> None:
    for key, rule in rules.items():
        _add_policy(group, key, policy_from_rule(rule))


def application_org_group(org: OrganizationSpec, msp: MSPConfig) -> ConfigGroup:
    group = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    _add_value(group, "MSP", msp)
    anchors = [peer_pb2.AnchorPeer(host=p.host, port=p.port) for p in org.peers if p.anchor]
    if anchors:
        _add_value(group, "AnchorPeers", peer_pb2.AnchorPeers(anchor_peers=anchors))
    _add_policies(group, application_org_policies(org.msp_id))
    return group


def _orderer_group(topology: Topology, msp: MSPConfig, consenter_cert: bytes) -> ConfigGroup:
    spec = topology.orderer
    org_group = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    _add_value(org_group, "MSP", msp)
    _add_value(org_group, "Endpoints", configuration_pb2.OrdererAddresses(addresses=[spec.address]))
    _add_policies(org_group, orderer_org_policies(spec.msp_id))

    raft = etcdraft_pb2.ConfigMetadata(
        consenters=[
            etcdraft_pb2.Consenter(
                host=spec.host,
                port=spec.port,
                client_tls_cert=consenter_cert,
                server_tls_cert=consenter_cert,
            )
        ],
        options=_RAFT_OPTIONS,
    )
    batch = spec.batch
    group = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    group.groups[spec.org].CopyFrom(org_group)
    _add_value(
        group,
        "ConsensusType",
        orderer_pb2.ConsensusType(type=CONSENSUS_TYPE, metadata=_encode(raft)),
    )
    _add_value(
        group,
        "BatchSize",
        orderer_pb2.BatchSize(
            max_message_count=batch.max_message_count,
            absolute_max_bytes=batch.absolute_max_bytes,
            preferred_max_bytes=batch.preferred_max_bytes,
        ),
    )
    _add_value(
        group,
        "BatchTimeout",
        orderer_pb2.BatchTimeout(timeout=format_go_duration(batch.batch_timeout_ms)),
    )
    _add_value(group, "ChannelRestrictions", orderer_pb2.ChannelRestrictions())
    _add_value(group, "Capabilities", _capabilities(ORDERER_CAPABILITY))
    _add_policies(group, {**STANDARD_POLICIES, BLOCK_VALIDATION: BLOCK_VALIDATION_RULE})
    return group


def build_channel_config(
    topology: Topology,
    msps: Mapping[str, MSPConfig],
    consenter_cert: bytes,
) -> Config:
    """The channel configuration (sequence 0) for ``topology``.

    ``msps`` maps each MSP ID (every application organisation and the
    orderer's) to its ``MSPConfig``, e.g. from :func:`load_msp_config`;
    ``consenter_cert`` is the PEM certificate recorded as the Raft
    consenter's TLS certificate. Pure: no I/O.
    """
    missing = [m for m in (*topology.msp_ids, topology.orderer.msp_id) if m not in msps]
    if missing:
        raise ConfigError(f"no MSP configuration for {', '.join(missing)}")

    application = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    for org in topology.organizations:
        application.groups[org.name].CopyFrom(application_org_group(org, msps[org.msp_id]))
    _add_value(application, "Capabilities", _capabilities(APPLICATION_CAPABILITY))
    _add_policies(
        application, {**STANDARD_POLICIES, LIFECYCLE_ENDORSEMENT: LIFECYCLE_ENDORSEMENT_RULE}
    )
    _add_policy(
        application,
        ENDORSEMENT,
        endorsement_policy_to_proto(topology.endorsement_policy, topology.msp_ids),
    )

    channel = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    channel.groups[APPLICATION].CopyFrom(application)
    channel.groups[ORDERER].CopyFrom(
        _orderer_group(topology, msps[topology.orderer.msp_id], consenter_cert)
    )
    _add_value(channel, "HashingAlgorithm", configuration_pb2.HashingAlgorithm(name="SHA256"))
    _add_value(
        channel,
        "BlockDataHashingStructure",
        configuration_pb2.BlockDataHashingStructure(width=_MAX_UINT32),
    )
    _add_value(
        channel,
        "OrdererAddresses",
        configuration_pb2.OrdererAddresses(addresses=[topology.orderer.address]),
        mod_policy=ORDERER_ADMINS_PATH,
    )
    _add_value(channel, "Capabilities", _capabilities(CHANNEL_CAPABILITY))
    _add_policies(channel, STANDARD_POLICIES)
    return configtx_pb2.Config(sequence=0, channel_group=channel)


# -- the block ------------------------------------------------------------------------


def build_genesis_block(
    config: Config, channel_id: str, *, now: datetime, nonce: bytes | None = None
) -> Block:
    """Wrap ``config`` in block 0 exactly as configtxgen's genesis factory does.

    One unsigned CONFIG envelope: channel header (version 1, whole-second
    timestamp from ``now``, tx id = SHA-256 of the nonce), a signature header
    with a random 24-byte nonce and no creator, no envelope signature. Block
    metadata has Fabric's five slots with ``SIGNATURES`` holding an
    ``OrdererBlockMetadata`` whose ``last_config`` is 0.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
    signature_header = common_pb2.SignatureHeader(nonce=nonce)
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.HeaderType.CONFIG,
        version=1,
        channel_id=channel_id,
        # Fabric's tx id: hex SHA-256 over nonce || creator; the creator is empty here.
        tx_id=hashlib.sha256(nonce).hexdigest(),
        epoch=0,
    )
    channel_header.timestamp.seconds = int(now.timestamp())
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=_encode(channel_header), signature_header=_encode(signature_header)
        ),
        data=_encode(configtx_pb2.ConfigEnvelope(config=config)),
    )
    envelope = _encode(common_pb2.Envelope(payload=_encode(payload)))

    block = new_block(0, b"", [envelope])
    signatures = common_pb2.Metadata(
        value=_encode(common_pb2.OrdererBlockMetadata(last_config=common_pb2.LastConfig(index=0)))
    )
    block.metadata.metadata[common_pb2.BlockMetadataIndex.SIGNATURES] = _encode(signatures)
    return block


def genesis_block_for_home(
    topology: Topology, home: Path, *, now: datetime, nonce: bytes | None = None
) -> Block:
    """Block 0 for the home at ``home``, reading every MSP folder and the consenter certificate."""
    msps = {
        org.msp_id: load_msp_config(org.msp_path(home), org.msp_id)
        for org in topology.organizations
    }
    msps[topology.orderer.msp_id] = load_msp_config(
        topology.orderer.msp_path(home), topology.orderer.msp_id
    )
    cert_path = topology.orderer.tls_cert_path(home)
    try:
        consenter_cert = cert_path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the orderer's consenter certificate {cert_path}: {exc.strerror}"
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in consenter_cert:
        raise ConfigError(f"{cert_path} is not a PEM certificate")
    config = build_channel_config(topology, msps, consenter_cert)
    return build_genesis_block(config, topology.channel, now=now, nonce=nonce)


# -- reading back ---------------------------------------------------------------------


def read_config(block: Block) -> Config:
    """The channel ``Config`` carried by a config block (genesis or later config update)."""
    if len(block.data.data) != 1:
        raise ConfigError(
            f"block {block.header.number} holds {len(block.data.data)} envelopes, not one config"
        )
    try:
        envelope = common_pb2.Envelope.FromString(block.data.data[0])
        payload = common_pb2.Payload.FromString(envelope.payload)
        header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        if header.type != common_pb2.HeaderType.CONFIG:
            raise ConfigError(
                f"block {block.header.number} is not a config block "
                f"(header type {common_pb2.HeaderType.Name(header.type)})"
            )
        config_envelope = configtx_pb2.ConfigEnvelope.FromString(payload.data)
    except DecodeError as exc:
        raise ConfigError(
            f"block {block.header.number}: malformed config envelope: {exc}"
        ) from None
    return config_envelope.config


def _group(config: Config, name: str) -> ConfigGroup:
    if name not in config.channel_group.groups:
        raise ConfigError(f"channel config has no {name} group")
    return config.channel_group.groups[name]


def batch_settings_from_config(config: Config) -> BatchSettings:
    """The orderer's ``BatchSize`` and ``BatchTimeout`` as :class:`BatchSettings`."""
    orderer = _group(config, ORDERER)
    for key in ("BatchSize", "BatchTimeout"):
        if key not in orderer.values:
            raise ConfigError(f"orderer config has no {key} value")
    size = orderer_pb2.BatchSize.FromString(orderer.values["BatchSize"].value)
    timeout = orderer_pb2.BatchTimeout.FromString(orderer.values["BatchTimeout"].value)
    try:
        timeout_ms = parse_go_duration(timeout.timeout)
    except ValueError as exc:
        raise ConfigError(f"orderer BatchTimeout: {exc}") from None
    return BatchSettings(
        max_message_count=size.max_message_count,
        batch_timeout_ms=timeout_ms,
        absolute_max_bytes=size.absolute_max_bytes,
        preferred_max_bytes=size.preferred_max_bytes,
    )


def endorsement_policy_from_config(config: Config) -> Any:
    """The channel's ``/Channel/Application/Endorsement`` policy, decoded.

    A ``common.SignaturePolicyEnvelope`` for a signature policy, a
    ``common.ImplicitMetaPolicy`` for an implicit-meta one.
    """
    application = _group(config, APPLICATION)
    if ENDORSEMENT not in application.policies:
        raise ConfigError("application config has no Endorsement policy")
    policy = application.policies[ENDORSEMENT].policy
    if policy.type == policies_pb2.Policy.SIGNATURE:
        return policies_pb2.SignaturePolicyEnvelope.FromString(policy.value)
    if policy.type == policies_pb2.Policy.IMPLICIT_META:
        return policies_pb2.ImplicitMetaPolicy.FromString(policy.value)
    raise ConfigError(f"Endorsement policy has unsupported type {policy.type}")
