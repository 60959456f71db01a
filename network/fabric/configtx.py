"""Channel configuration updates, with Hyperledger Fabric's ``configtx`` semantics.

A channel's configuration is a tree of groups (``/Channel``,
``/Channel/Application``, ``/Channel/Application/Tax``...) holding values
(an org's ``MSP``, the orderer's ``BatchSize``) and policies. Every element
carries a ``version`` and a ``mod_policy``: the policy whose signatures are
needed to change it. Changing the configuration is a ``ConfigUpdate``:

* a **read set**: the elements the update depends on, at the versions the
  author saw (only versions matter, so a stale update is refused);
* a **write set**: the elements as they should become; an element whose
  version differs from the read set's (or that is absent from it) is
  *modified* and must be at exactly its current version + 1, or at version 0
  if it is new;
* the admins' ``ConfigSignature`` s, each over ``signature_header || config_update``.

:func:`apply_update` is Fabric's ``ValidatorImpl.ProposeConfigUpdate``
(``authorizeUpdate``, ``verifyReadSet``, ``computeDeltaSet``,
``verifyDeltaSet``, ``configMapToConfig``): each modified element's *current*
``mod_policy`` is evaluated, in the *current* configuration, over the
signatures; a new element needs no policy of its own, because adding it
changes its parent group's membership and so the parent's version. A
relative ``mod_policy`` of a value or policy names a policy of the group
holding it; of a group, a policy of that group itself; an absolute one
(``/Channel/Orderer/Admins``) is looked up from the root. The result is the
old configuration overlaid with the modified elements, each group keeping
exactly the members its (possibly new) definition lists, with sequence + 1.

The same function decides at both ends: the embedded orderer runs it before
ordering a config transaction, and the block validator (and so audit replay)
runs it again to check that a committed config is exactly what its
``last_update`` produces from the configuration before it. The builders
that help an operator write an update (:func:`compute_update`, like
``configtxlator compute-update``; :func:`with_organization`;
:func:`with_revocation_list`; :func:`sign_config_update`;
:func:`config_update_envelope`) and the error types live in
:mod:`network.fabric.configupdate` and are re-exported here, so this module
is the one to import. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.common import configtx_pb2 as _configtx_pb2
from google.protobuf.message import DecodeError

from crypto.errors import AccessLedgerError
from network.fabric.configupdate import (
    ConfigUpdateError,
    ConfigUpdateUnauthorizedError,
    StaleConfigUpdateError,
    check_config_id,
    compute_update,
    config_update_envelope,
    sign_config_update,
    with_organization,
    with_revocation_list,
)
from network.fabric.errors import PolicyNotSatisfiedError
from network.fabric.msp import MSPRegistry
from network.fabric.policy import PolicyManager
from network.fabric.transactions import CONFIG_UPDATE, SignedData

if TYPE_CHECKING:
    from network.fabric.validator import ChannelConfig

# The generated protobuf modules ship without type stubs; use them untyped.
common_pb2: Any = _common_pb2
configtx_pb2: Any = _configtx_pb2

# Readable names for the untyped protobuf messages in signatures.
Config = Any
ConfigGroup = Any
ConfigUpdateEnvelope = Any

__all__ = [
    "ConfigUpdateError",
    "ConfigUpdateUnauthorizedError",
    "StaleConfigUpdateError",
    "apply_update",
    "compute_update",
    "config_signed_data",
    "config_update_envelope",
    "config_update_from_envelope",
    "sign_config_update",
    "with_organization",
    "with_revocation_list",
]

ROOT_GROUP = "Channel"
_GROUP, _VALUE, _POLICY = "group", "value", "policy"
#: Fabric's fix-up for v1.0 channels: with capabilities on, an empty mod_policy is Admins.
_CAPABILITIES_MARKER = (_VALUE, "/Channel/Orderer/Capabilities")
_DEFAULT_MOD_POLICY = "Admins"


# --- the config map (Fabric's mapConfig) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Element:
    """One group, value or policy of a config tree, where it sits, and its message."""

    kind: str
    key: str
    parent: tuple[str, ...]  # group names from "Channel"; empty for the root group
    message: Any

    @property
    def path(self) -> str:
        return "/" + "/".join((*self.parent, self.key))

    @property
    def version(self) -> int:
        return int(self.message.version)

    @property
    def mod_policy(self) -> str:
        return str(self.message.mod_policy)

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


_ConfigMap = dict[tuple[str, str], _Element]


def _map_config(group: ConfigGroup | None, what: str) -> _ConfigMap:
    """Every element of a config tree by ``(kind, path)``; ``group`` is the ``Channel`` group."""
    result: _ConfigMap = {}

    def add(element: _Element) -> None:
        check_config_id(element.key, what)
        result[(element.kind, element.path)] = element

    def recurse(path: tuple[str, ...], node: ConfigGroup) -> None:
        add(_Element(_GROUP, path[-1], path[:-1], node))
        for key, child in node.groups.items():
            recurse((*path, key), child)
        for key, value in node.values.items():
            add(_Element(_VALUE, key, path, value))
        for key, policy in node.policies.items():
            add(_Element(_POLICY, key, path, policy))

    if group is not None:
        recurse((ROOT_GROUP,), group)
    return result


def _rebuild(path: str, config_map: _ConfigMap, fix_mod_policy: bool) -> ConfigGroup:
    """Fabric's ``configMapToConfig``: a group with exactly the members its definition lists."""
    element = config_map.get((_GROUP, path))
    if element is None:
        raise ConfigUpdateError(f"the updated config is missing group {path}")
    source = element.message
    group = configtx_pb2.ConfigGroup(version=source.version, mod_policy=source.mod_policy)
    for key in source.groups:
        group.groups[key].CopyFrom(_rebuild(f"{path}/{key}", config_map, fix_mod_policy))
    for kind, members, target in (
        (_VALUE, source.values, group.values),
        (_POLICY, source.policies, group.policies),
    ):
        for key in members:
            member = config_map.get((kind, f"{path}/{key}"))
            if member is None:
                raise ConfigUpdateError(f"the updated config is missing {kind} {path}/{key}")
            target[key].CopyFrom(member.message)
    if fix_mod_policy:
        for item in (group, *group.values.values(), *group.policies.values()):
            if not item.mod_policy:
                item.mod_policy = _DEFAULT_MOD_POLICY
    return group


# --- reading the update --------------------------------------------------------------------


def config_update_from_envelope(envelope: Any) -> ConfigUpdateEnvelope:
    """The ``ConfigUpdateEnvelope`` inside a ``CONFIG_UPDATE`` ``common.Envelope``.

    Accepts the envelope message or its bytes (Fabric's ``EnvelopeToConfigUpdate``).
    """
    try:
        if isinstance(envelope, bytes | bytearray):
            envelope = common_pb2.Envelope.FromString(bytes(envelope))
        payload = common_pb2.Payload.FromString(envelope.payload)
        if not payload.HasField("header"):
            raise ConfigUpdateError("config update envelope has no header")
        header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        if header.type != CONFIG_UPDATE:
            raise ConfigUpdateError(
                f"envelope has header type {header.type}, not CONFIG_UPDATE ({CONFIG_UPDATE})"
            )
        return configtx_pb2.ConfigUpdateEnvelope.FromString(payload.data)
    except DecodeError as exc:
        raise ConfigUpdateError(f"config update envelope does not decode: {exc}") from None


def config_signed_data(update_envelope: ConfigUpdateEnvelope) -> list[SignedData]:
    """The admins' signatures: each covers ``signature_header || config_update``.

    Fabric's ``ConfigUpdateEnvelopeAsSignedData``: only the ``ConfigSignature``
    entries count, not the signature on the envelope carrying them.
    """
    signed = []
    for index, signature in enumerate(update_envelope.signatures):
        try:
            header = common_pb2.SignatureHeader.FromString(signature.signature_header)
        except DecodeError:
            raise ConfigUpdateError(f"config signature {index} has a malformed header") from None
        signed.append(
            SignedData(
                bytes(header.creator),
                bytes(signature.signature_header) + bytes(update_envelope.config_update),
                bytes(signature.signature),
            )
        )
    return signed


# --- applying it (Fabric's ValidatorImpl.ProposeConfigUpdate) ------------------------------


def _policy_path(element: _Element) -> str:
    """The absolute path of the policy that governs changes to ``element`` (``policyForItem``)."""
    mod_policy = element.mod_policy
    if mod_policy.startswith("/"):
        return mod_policy
    if not element.parent:  # the root group: its own policies
        return f"/{ROOT_GROUP}/{mod_policy}"
    base = element.path if element.kind == _GROUP else "/" + "/".join(element.parent)
    return f"{base}/{mod_policy}"


def _check_mod_policy(element: _Element) -> None:
    mod_policy = element.mod_policy
    if not mod_policy:
        raise ConfigUpdateError(f"{element} has no mod_policy")
    for part in mod_policy.removeprefix("/").split("/"):
        check_config_id(part, f"the mod_policy {mod_policy!r} of {element}")


def _delta(read_set: _ConfigMap, write_set: _ConfigMap) -> list[_Element]:
    """Written elements whose version is not the one read (Fabric's ``computeDeltaSet``)."""
    delta = [
        element
        for key, element in write_set.items()
        if key not in read_set or read_set[key].version != element.version
    ]
    return sorted(delta, key=lambda e: (e.path, e.kind))


def _authorize(
    delta: Sequence[_Element],
    current: _ConfigMap,
    channel: ChannelConfig,
    signed: Sequence[SignedData],
    now: datetime | None,
) -> None:
    """Fabric's ``verifyDeltaSet``: versions bump by one, current mod_policies are satisfied."""
    if not delta:
        raise ConfigUpdateError("the config update changes nothing (its delta set is empty)")
    satisfied: set[str] = set()
    for element in delta:
        _check_mod_policy(element)
        existing = current.get((element.kind, element.path))
        if existing is None:
            if element.version != 0:
                raise StaleConfigUpdateError(
                    f"{element} does not exist, so it must be written at version 0, "
                    f"not {element.version}"
                )
            continue
        if element.version != existing.version + 1:
            raise StaleConfigUpdateError(
                f"{element} is at version {existing.version}; the update sets version "
                f"{element.version}, not {existing.version + 1}"
            )
        path = _policy_path(existing)
        if path in satisfied:
            continue
        policy = channel.policies.policies.get(path)
        if policy is None:
            raise ConfigUpdateError(f"{element}: its mod_policy {path} does not exist")
        try:
            policy.evaluate_signed_data(signed, now=now)
        except PolicyNotSatisfiedError as exc:
            raise ConfigUpdateUnauthorizedError(
                f"modifying {element} needs {path}: {exc.message}"
            ) from None
        satisfied.add(path)


def apply_update(
    channel: ChannelConfig, update_envelope: ConfigUpdateEnvelope, *, now: datetime | None
) -> Config:
    """The configuration that ``update_envelope`` makes of ``channel``'s; raise if not allowed.

    ``channel`` is the configuration in force (its policies and MSPs judge
    the signatures; with ``now``, a signer's certificate chain must be valid
    then, otherwise Fabric's issue-time check alone applies). Returns a new
    ``Config`` with sequence + 1; ``channel`` is not modified. Raises
    :class:`StaleConfigUpdateError` when the read set or a version does not
    match, :class:`ConfigUpdateUnauthorizedError` when a ``mod_policy`` is
    not satisfied, :class:`ConfigUpdateError` for anything else (wrong
    channel, malformed update, a result that is not a usable config).
    """
    try:
        update = configtx_pb2.ConfigUpdate.FromString(update_envelope.config_update)
    except DecodeError:
        raise ConfigUpdateError("the config update does not decode") from None
    if update.channel_id != channel.channel_id:
        raise ConfigUpdateError(
            f"the config update is for channel {update.channel_id!r}, not {channel.channel_id!r}"
        )
    current = _map_config(channel.config.channel_group, "the current config")
    read_set = _map_config(update.read_set if update.HasField("read_set") else None, "the read set")
    for key, element in sorted(read_set.items()):
        existing = current.get(key)
        if existing is None:
            raise StaleConfigUpdateError(f"the read set names {element}, which does not exist")
        if existing.version != element.version:
            raise StaleConfigUpdateError(
                f"the read set needs {element} at version {element.version}; "
                f"it is at version {existing.version}"
            )
    write_set = _map_config(
        update.write_set if update.HasField("write_set") else None, "the write set"
    )
    delta = _delta(read_set, write_set)
    _authorize(delta, current, channel, config_signed_data(update_envelope), now)
    proposed = {**current, **{(e.kind, e.path): e for e in delta}}
    group = _rebuild(f"/{ROOT_GROUP}", proposed, _CAPABILITIES_MARKER in proposed)
    config = configtx_pb2.Config(sequence=channel.config.sequence + 1, channel_group=group)
    try:
        # Fabric builds the new channel bundle before accepting it: MSPs and policies must load.
        PolicyManager(config, MSPRegistry.from_config(config))
    except AccessLedgerError as exc:
        raise ConfigUpdateError(f"the updated config is not usable: {exc.message}") from None
    return config
