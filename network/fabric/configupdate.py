"""Writing a channel configuration update: the error types and the builders.

An operator changes a channel the way Fabric's tooling does it:

1. take the config in force and edit a copy -- :func:`with_organization`
   adds a department's MSP group, :func:`with_revocation_list` adds a CRL to
   an organisation's MSP (or edit the protobuf directly);
2. :func:`compute_update` diffs the two into a ``ConfigUpdate`` (read set and
   write set with the right versions), exactly as ``configtxlator
   compute-update`` does;
3. serialise it once; enough admins sign those bytes with
   :func:`sign_config_update` (``peer channel signconfigtx``);
4. :func:`config_update_envelope` wraps update and signatures in the signed
   ``CONFIG_UPDATE`` envelope the ordering service accepts.

The ordering service and every validator then decide with
:func:`network.fabric.configtx.apply_update`. :mod:`network.fabric.configtx`
re-exports everything here; import from there. Nothing here does I/O.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.common import configtx_pb2 as _configtx_pb2
from fabric_protos.msp import msp_config_pb2 as _msp_config_pb2
from google.protobuf.message import DecodeError

from crypto.errors import AccessLedgerError
from network.fabric.configblock import (
    ADMINS,
    APPLICATION,
    ENDORSEMENT,
    application_org_group,
    endorsement_policy_to_proto,
)
from network.fabric.transactions import CONFIG_UPDATE, compute_tx_id

if TYPE_CHECKING:
    from crypto.identity import Identity
    from network.topology import OrganizationSpec

# The generated protobuf modules ship without type stubs; use them untyped.
common_pb2: Any = _common_pb2
configtx_pb2: Any = _configtx_pb2
msp_config_pb2: Any = _msp_config_pb2

# Readable names for the untyped protobuf messages in signatures.
Config = Any
ConfigGroup = Any
ConfigUpdate = Any
ConfigSignature = Any
MSPConfig = Any

_NONCE_SIZE = 24
#: Fabric's ``validateConfigID``: ASCII letters, digits, dots and dashes, at most 249 characters.
_CONFIG_ID = re.compile(r"[a-zA-Z0-9.\-]{1,249}")


class ConfigUpdateError(AccessLedgerError):
    """A config update is malformed or cannot be applied; the message names the element."""

    code = "invalid_config_update"


class StaleConfigUpdateError(ConfigUpdateError):
    """The update was written against another version of the config (read set or versions)."""

    code = "config_update_stale"


class ConfigUpdateUnauthorizedError(ConfigUpdateError):
    """The signatures do not satisfy a modified element's ``mod_policy``."""

    code = "config_update_unauthorized"


def check_config_id(key: str, where: str) -> None:
    """Raise :class:`ConfigUpdateError` unless ``key`` is a legal config key (Fabric's rule)."""
    if not _CONFIG_ID.fullmatch(key) or key in (".", ".."):
        raise ConfigUpdateError(
            f"illegal key {key!r} in {where}: config keys are 1-249 letters, digits, '.' or '-'"
        )


# --- writing an update ---------------------------------------------------------------------


def _same(original: Any, updated: Any, payload: str) -> bool:
    if original.mod_policy != updated.mod_policy:
        return False
    if payload == "policy":
        same: bool = original.policy == updated.policy
        return same
    return bool(original.value == updated.value)


def _members_update(
    original: Any, updated: Any, payload: str, read: Any, write: Any, same: Any
) -> bool:
    """Values or policies: fill ``read``/``write``/``same``; return whether membership changed."""
    members_changed = False
    for name, before in original.items():
        if name not in updated:
            members_changed = True
        elif _same(before, updated[name], payload):
            same[name].version = before.version
        else:
            write[name].CopyFrom(updated[name])
            write[name].version = before.version + 1
    for name, after in updated.items():
        if name not in original:
            members_changed = True
            write[name].CopyFrom(after)
            write[name].version = 0
    return members_changed


def _group_update(original: ConfigGroup, updated: ConfigGroup) -> tuple[Any, Any, bool]:
    """``configtxlator``'s ``computeGroupUpdate``: (read set, write set, whether changed)."""
    read, write, same = (configtx_pb2.ConfigGroup() for _ in range(3))
    changed = _members_update(
        original.policies, updated.policies, "policy", read.policies, write.policies,
        same.policies,
    )  # fmt: skip
    changed |= _members_update(
        original.values, updated.values, "value", read.values, write.values, same.values
    )
    for name, before in original.groups.items():
        if name not in updated.groups:
            changed = True
            continue
        group_read, group_write, group_changed = _group_update(before, updated.groups[name])
        if group_changed:
            read.groups[name].CopyFrom(group_read)
            write.groups[name].CopyFrom(group_write)
        else:
            same.groups[name].CopyFrom(group_read)
    for name, after in updated.groups.items():
        if name not in original.groups:
            changed = True
            _, group_write, _ = _group_update(configtx_pb2.ConfigGroup(), after)
            group_write.version = 0
            group_write.mod_policy = after.mod_policy
            write.groups[name].CopyFrom(group_write)
    read.version = write.version = original.version
    if not changed and original.mod_policy == updated.mod_policy:
        touched = any(
            len(m) for m in (read.policies, write.policies, read.values, write.values)
        ) or any(len(m) for m in (read.groups, write.groups))
        return read, write, touched
    for name, policy in same.policies.items():
        read.policies[name].CopyFrom(policy)
        write.policies[name].CopyFrom(policy)
    for name, value in same.values.items():
        read.values[name].CopyFrom(value)
        write.values[name].CopyFrom(value)
    for name, group in same.groups.items():
        read.groups[name].CopyFrom(group)
        write.groups[name].CopyFrom(group)
    write.version = original.version + 1
    write.mod_policy = updated.mod_policy
    return read, write, True


def compute_update(channel_id: str, original: Config, updated: Config) -> ConfigUpdate:
    """The ``ConfigUpdate`` turning ``original`` into ``updated``, as ``configtxlator`` computes it.

    Versions in ``updated`` are ignored: they follow from ``original``.
    Raises :class:`ConfigUpdateError` if the two configs do not differ.
    """
    read, write, changed = _group_update(original.channel_group, updated.channel_group)
    if not changed:
        raise ConfigUpdateError("no differences between the original and the updated config")
    return configtx_pb2.ConfigUpdate(channel_id=channel_id, read_set=read, write_set=write)


def sign_config_update(
    update: bytes, identity: Identity, *, nonce: bytes | None = None
) -> ConfigSignature:
    """``identity``'s ``ConfigSignature`` over a serialized ``ConfigUpdate``.

    What ``peer channel signconfigtx`` adds: a signature header (creator,
    random nonce) and the signature over ``signature_header || update``.
    """
    header = common_pb2.SignatureHeader(
        creator=identity.serialized(), nonce=os.urandom(_NONCE_SIZE) if nonce is None else nonce
    ).SerializeToString()
    return configtx_pb2.ConfigSignature(
        signature_header=header, signature=identity.sign(header + update)
    )


def config_update_envelope(
    channel_id: str,
    update: bytes,
    signatures: Sequence[ConfigSignature],
    *,
    creator: Identity,
    now: datetime,
) -> bytes:
    """A signed ``CONFIG_UPDATE`` ``common.Envelope`` carrying ``update`` and its signatures.

    What ``peer channel update`` sends to the orderer. The channel header also
    carries a transaction id (SHA-256 of nonce and creator, as for any Fabric
    transaction) so the submitter can follow the update.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    nonce = os.urandom(_NONCE_SIZE)
    creator_bytes = creator.serialized()
    channel_header = common_pb2.ChannelHeader(
        type=CONFIG_UPDATE, channel_id=channel_id, tx_id=compute_tx_id(nonce, creator_bytes)
    )
    instant = now.astimezone(UTC)
    channel_header.timestamp.seconds = int(instant.timestamp())
    channel_header.timestamp.nanos = instant.microsecond * 1000
    body = configtx_pb2.ConfigUpdateEnvelope(config_update=update, signatures=list(signatures))
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=channel_header.SerializeToString(),
            signature_header=common_pb2.SignatureHeader(
                creator=creator_bytes, nonce=nonce
            ).SerializeToString(),
        ),
        data=body.SerializeToString(),
    ).SerializeToString()
    envelope: bytes = common_pb2.Envelope(
        payload=payload, signature=creator.sign(payload)
    ).SerializeToString()
    return envelope


# --- editing a config ----------------------------------------------------------------------


def _copy(config: Config) -> Config:
    updated = configtx_pb2.Config()
    updated.CopyFrom(config)
    return updated


def _fabric_msp(value: bytes, where: str) -> tuple[Any, Any]:
    """The ``MSPConfig`` and its ``FabricMSPConfig`` from an ``MSP`` config value."""
    try:
        msp = msp_config_pb2.MSPConfig.FromString(value)
        return msp, msp_config_pb2.FabricMSPConfig.FromString(msp.config)
    except DecodeError:
        raise ConfigUpdateError(f"unreadable MSP configuration in {where}") from None


def _msp_groups(group: ConfigGroup, path: str) -> dict[str, tuple[str, ConfigGroup]]:
    """``msp_id -> (group path, group)`` for every group holding an ``MSP`` value."""
    found: dict[str, tuple[str, ConfigGroup]] = {}
    if "MSP" in group.values:
        _, fabric = _fabric_msp(group.values["MSP"].value, path)
        found[str(fabric.name)] = (path, group)
    for name, child in group.groups.items():
        found.update(_msp_groups(child, f"{path}/{name}"))
    return found


def with_organization(
    config: Config, org: OrganizationSpec, msp: MSPConfig, *, endorsement_policy: str
) -> Config:
    """A copy of ``config`` with ``org`` as a new Application organisation.

    The group is built as the genesis block builds a department's (``MSP``,
    ``AnchorPeers`` from the org's anchor peers, Readers/Writers/Admins/
    Endorsement policies, ``mod_policy`` Admins); ``msp`` is its
    ``msp.MSPConfig`` (e.g. :func:`~network.fabric.configblock.load_msp_config`)
    and must name ``org.msp_id``. ``endorsement_policy`` (rule text, e.g.
    ``OutOf(2, 'AMSP.peer', ...)`` or ``MAJORITY Endorsement``) replaces the
    channel's ``/Channel/Application/Endorsement``. Raises
    :class:`ConfigUpdateError` if the organisation or MSP ID is already a
    member, the MSP does not match, or the policy names an unknown MSP.
    """
    updated = _copy(config)
    groups = updated.channel_group.groups
    if APPLICATION not in groups:
        raise ConfigUpdateError("the channel config has no Application group")
    application = groups[APPLICATION]
    check_config_id(org.name, "the organisation name")
    if org.name in application.groups:
        raise ConfigUpdateError(f"organisation {org.name!r} is already a member of the channel")
    members = _msp_groups(updated.channel_group, "/Channel")
    if org.msp_id in members:
        raise ConfigUpdateError(
            f"MSP ID {org.msp_id!r} is already used by {members[org.msp_id][0]}"
        )
    _, fabric = _fabric_msp(msp.SerializeToString(), f"the MSP of {org.name}")
    if fabric.name != org.msp_id:
        raise ConfigUpdateError(f"the MSP configuration is for {fabric.name!r}, not {org.msp_id!r}")
    application.groups[org.name].CopyFrom(application_org_group(org, msp))
    msp_ids = tuple(
        msp_id for msp_id, (path, _) in members.items() if path.startswith("/Channel/Application/")
    )
    try:
        policy = endorsement_policy_to_proto(endorsement_policy, (*msp_ids, org.msp_id))
    except AccessLedgerError as exc:
        raise ConfigUpdateError(f"endorsement policy: {exc.message}") from None
    if ENDORSEMENT in application.policies:
        application.policies[ENDORSEMENT].policy.CopyFrom(policy)
    else:
        application.policies[ENDORSEMENT].CopyFrom(
            configtx_pb2.ConfigPolicy(policy=policy, mod_policy=ADMINS)
        )
    return updated


def with_revocation_list(config: Config, msp_id: str, crl_pem: bytes) -> Config:
    """A copy of ``config`` whose MSP ``msp_id`` also carries the CRL ``crl_pem``.

    Once committed, the MSP refuses every certificate the CRL lists (Fabric
    checks all CRLs of an MSP whose issuer signed them). The CRL must be a
    PEM CRL signed by one of the MSP's CA certificates; raises
    :class:`ConfigUpdateError` otherwise, or if the MSP already carries it.
    """
    updated = _copy(config)
    members = _msp_groups(updated.channel_group, "/Channel")
    if msp_id not in members:
        raise ConfigUpdateError(f"the channel config has no MSP {msp_id!r}")
    path, group = members[msp_id]
    msp, fabric = _fabric_msp(group.values["MSP"].value, path)
    try:
        crl = x509.load_pem_x509_crl(crl_pem)
    except ValueError:
        raise ConfigUpdateError("not a PEM certificate revocation list") from None
    issuers = []
    for pem in (*fabric.root_certs, *fabric.intermediate_certs):
        try:
            issuers.append(x509.load_pem_x509_certificate(pem))
        except ValueError:
            continue
    if not any(
        ca.subject == crl.issuer and crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
        for ca in issuers
    ):
        raise ConfigUpdateError(f"the revocation list is not signed by a CA of {msp_id}")
    if crl_pem in fabric.revocation_list:
        raise ConfigUpdateError(f"{msp_id} already carries this revocation list")
    fabric.revocation_list.append(crl_pem)
    msp.config = fabric.SerializeToString(deterministic=True)
    group.values["MSP"].value = msp.SerializeToString(deterministic=True)
    return updated
