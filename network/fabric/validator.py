"""A committing peer's validation of a block, as a pure function.

:func:`validate_block` assigns every transaction the ``TxValidationCode`` a
Fabric 2.x peer would, in Fabric's order of checks:

1. envelope and headers decode; header type, epoch 0, nonce and creator
   present (``BAD_PAYLOAD``, ``BAD_COMMON_HEADER``...);
2. the creator is a valid member of a channel MSP and signed the payload
   (``BAD_CREATOR_SIGNATURE``);
3. endorser transactions: ``tx_id == SHA-256(nonce || creator)``
   (``BAD_PROPOSAL_TXID``), exactly one action whose proposal hash matches
   (``INVALID_ENDORSER_TRANSACTION``), the channel (``TARGET_CHAIN_NOT_FOUND``),
   no earlier transaction with the same ID (``DUPLICATE_TXID``);
4. the validation plugin: for the invoked chaincode and every namespace the
   transaction writes, the endorsements satisfy the namespace's endorsement
   policy, a collection's policy for collection writes, or a key's
   state-based policy (``ENDORSEMENT_POLICY_FAILURE``, ``INVALID_CHAINCODE``);
5. duplicate IDs within the block (``DUPLICATE_TXID``);
6. MVCC: every read version equals the committed version and the key was
   not written by an earlier valid transaction of the same block
   (``MVCC_READ_CONFLICT``); range queries re-run over committed state plus
   the block's earlier writes give the same results (``PHANTOM_READ_CONFLICT``).
   These checks live in :mod:`network.fabric.mvcc`.

State is consulted only through the caller's lookups, so the same code
validates blocks in the embedded engine and replays a Fabric ledger in
audit. Private-collection state is keyed, as in Fabric's state database, by
the derived namespace :func:`hashed_namespace` and the hex of the key hash.
CONFIG transactions are checked as a Fabric peer's ``configtx``
``Validate`` checks them: the config must be exactly what its
``last_update`` produces from the configuration in force
(:func:`network.fabric.configtx.apply_update`: channel, read-set versions,
version bumps, every modified element's ``mod_policy`` satisfied by the
admins' signatures in the current config, sequence + 1), otherwise
``INVALID_CONFIG_TRANSACTION``. The genesis block's config transaction is
the trust anchor and is accepted as is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.common import policies_pb2 as _policies_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2
from google.protobuf.message import DecodeError

from crypto.errors import VerificationError
from network.fabric import blocks
from network.fabric.configtx import ConfigUpdateError, apply_update, config_update_from_envelope
from network.fabric.errors import (
    BlockSignatureError,
    ConfigError,
    MSPError,
    PolicyNotSatisfiedError,
    TransactionFormatError,
)
from network.fabric.msp import MSPRegistry, ValidatedIdentity
from network.fabric.mvcc import (
    BlockUpdates,
    MVCCConflict,
    RangeLookup,
    StateWrite,
    VersionLookup,
    check_reads,
    state_writes,
)
from network.fabric.policy import EndorsementPolicies, Policy, PolicyManager, SignaturePolicy
from network.fabric.transactions import (
    CONFIG,
    CONFIG_UPDATE,
    ENDORSER_TRANSACTION,
    NamespaceRWSet,
    ParsedTransaction,
    hashed_namespace,
    parse_envelope,
    proposal_hash,
)

__all__ = [
    "VALIDATION_PARAMETER",
    "BlockValidation",
    "ChannelConfig",
    "EndorsementPolicies",
    "RangeLookup",
    "StateWrite",
    "TxResult",
    "ValidationParameterLookup",
    "VersionLookup",
    "code_name",
    "validate_block",
    "verify_block_signatures",
]

# The generated protobuf modules ship without type stubs; use them untyped.
common_pb2: Any = _common_pb2
policies_pb2: Any = _policies_pb2
transaction_pb2: Any = _transaction_pb2

_Code: Any = transaction_pb2.TxValidationCode
VALID: int = _Code.Value("VALID")
_C = {name: int(value) for name, value in _Code.items()}

#: Key-metadata entry holding a state-based endorsement policy.
VALIDATION_PARAMETER = "VALIDATION_PARAMETER"

#: ``(namespace, collection or "", key) -> serialized SignaturePolicyEnvelope or None``.
ValidationParameterLookup = Callable[[str, str, str], bytes | None]


def code_name(code: int) -> str:
    """The ``TxValidationCode`` name of ``code``."""
    name: str = _Code.Name(code)
    return name


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """The configuration in force on a channel: its MSPs and policies."""

    channel_id: str
    config: Any
    msps: MSPRegistry
    policies: PolicyManager

    @classmethod
    def from_config(cls, channel_id: str, config: Any) -> ChannelConfig:
        """Build from a ``configtx.Config``."""
        msps = MSPRegistry.from_config(config)
        return cls(channel_id, config, msps, PolicyManager(config, msps))

    @classmethod
    def from_block(cls, block: Any) -> ChannelConfig:
        """Build from a config block (the genesis block or a later config update)."""
        if len(block.data.data) != 1:
            raise ConfigError(f"block {block.header.number} is not a config block")
        tx = parse_envelope(bytes(block.data.data[0]))
        if tx.header_type != CONFIG or tx.config_envelope is None:
            raise ConfigError(f"block {block.header.number} is not a config block")
        return cls.from_config(tx.channel_id, tx.config_envelope.config)

    @property
    def sequence(self) -> int:
        """The config sequence number."""
        return int(self.config.sequence)


@dataclass(frozen=True, slots=True)
class TxResult:
    """The validation outcome of one transaction; ``reason`` says why it is invalid."""

    index: int
    tx_id: str
    code: int
    reason: str
    parsed: ParsedTransaction | None
    writes: tuple[StateWrite, ...]
    metadata_writes: tuple[tuple[str, str, tuple[tuple[str, bytes], ...]], ...]

    @property
    def code_name(self) -> str:
        """The ``TxValidationCode`` name."""
        return code_name(self.code)

    @property
    def valid(self) -> bool:
        """Whether the transaction is VALID (its writes are committed)."""
        return self.code == VALID


@dataclass(frozen=True, slots=True)
class BlockValidation:
    """Per-transaction results of a block, in order."""

    number: int
    results: tuple[TxResult, ...]
    config: Any | None

    @property
    def codes(self) -> list[int]:
        """The codes as they go into the TRANSACTIONS_FILTER slot."""
        return [r.code for r in self.results]

    def writes(self) -> list[StateWrite]:
        """All writes of the valid transactions, in commit order."""
        return [w for r in self.results if r.valid for w in r.writes]


class _Invalid(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = _C[code]
        self.reason = reason


def verify_block_signatures(block: Any, channel: ChannelConfig) -> list[ValidatedIdentity]:
    """Check the orderer signatures against ``/Channel/Orderer/BlockValidation``.

    ``channel`` is the configuration in force before this block. The genesis
    block carries no signature and is accepted as the trust anchor. Raises
    :class:`BlockSignatureError`; returns the valid signers.
    """
    number = int(block.header.number)
    signed = blocks.block_signatures(block)
    if not signed:
        if number == 0:
            return []
        raise BlockSignatureError(f"block {number} has no orderer signature", block_number=number)
    identities = channel.msps.valid_identities(signed)
    try:
        channel.policies.get("/Channel/Orderer/BlockValidation").evaluate_identities(identities)
    except PolicyNotSatisfiedError as exc:
        raise BlockSignatureError(
            f"block {number}: orderer signatures do not satisfy BlockValidation: {exc.message}",
            block_number=number,
        ) from exc
    return identities


# --- per-transaction checks (steps 1-4) -------------------------------------------


def _check_creator(tx: ParsedTransaction, msps: MSPRegistry, now: datetime | None) -> None:
    try:
        msps.verify(tx.signed_data, now=now)
    except (MSPError, VerificationError) as exc:
        raise _Invalid("BAD_CREATOR_SIGNATURE", f"creator: {exc}") from exc


def _check_headers(tx: ParsedTransaction) -> None:
    if tx.header_type not in (ENDORSER_TRANSACTION, CONFIG, CONFIG_UPDATE):
        raise _Invalid("BAD_COMMON_HEADER", f"invalid header type {tx.header_type_name}")
    if tx.epoch != 0:
        raise _Invalid("BAD_COMMON_HEADER", f"epoch is {tx.epoch}, expected 0")
    if not tx.nonce or not tx.creator:
        raise _Invalid("BAD_COMMON_HEADER", "signature header lacks nonce or creator")


def _check_endorser_structure(tx: ParsedTransaction) -> None:
    if tx.tx_id != tx.expected_tx_id:
        raise _Invalid("BAD_PROPOSAL_TXID", "tx_id is not SHA-256(nonce || creator)")
    if tx.action_count != 1:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", f"{tx.action_count} actions, expected 1")
    error = tx.action_error
    if error is not None and error.validation_code == _C["INVALID_ENDORSER_TRANSACTION"]:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", error.message)
    action = tx.action
    if action is None:
        return  # a later-stage decode failure, reported where the peer reports it
    header = common_pb2.SignatureHeader()
    try:
        header.ParseFromString(action.signature_header)
    except DecodeError as exc:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", "unreadable action header") from exc
    if not header.nonce or not header.creator:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", "action header lacks nonce or creator")
    expected = proposal_hash(
        tx.channel_header, action.signature_header, action.chaincode_proposal_payload
    )
    if expected != action.proposal_hash:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", "proposal hash does not match")


class _EndorsementCheck:
    """Fabric's v20 policy checker for one namespace of one transaction."""

    def __init__(
        self,
        namespace: str,
        cc_policy: Policy,
        policies: EndorsementPolicies,
        endorsers: Sequence[ValidatedIdentity],
        channel: ChannelConfig,
    ) -> None:
        self.namespace = namespace
        self.cc_policy = cc_policy
        self.policies = policies
        self.endorsers = endorsers
        self.channel = channel
        self.checked: set[str] = set()
        self.some_checked = False

    def _evaluate(self, policy: Policy, what: str) -> None:
        try:
            policy.evaluate_identities(self.endorsers)
        except PolicyNotSatisfiedError as exc:
            raise _Invalid("ENDORSEMENT_POLICY_FAILURE", f"{what}: {exc.message}") from exc
        self.some_checked = True

    def chaincode_policy_if_not_checked(self, collection: str) -> None:
        if collection:
            if collection in self.checked:
                return
            coll_policy = self.policies.collection(self.namespace, collection)
            if coll_policy is not None:
                self._evaluate(coll_policy, f"collection {collection} of {self.namespace}")
                self.checked.add(collection)
                return
        if "" in self.checked:
            return
        self._evaluate(self.cc_policy, f"endorsement policy of {self.namespace}")
        self.checked.add("")

    def key(self, collection: str, key: str, parameter: bytes | None) -> None:
        if not parameter:
            self.chaincode_policy_if_not_checked(collection)
            return
        envelope = policies_pb2.SignaturePolicyEnvelope()
        try:
            envelope.ParseFromString(parameter)
        except DecodeError as exc:
            raise _Invalid("ENDORSEMENT_POLICY_FAILURE", "unreadable key-level policy") from exc
        self._evaluate(SignaturePolicy(envelope, self.channel.msps), f"key-level policy of {key!r}")


def _check_endorsements(
    tx: ParsedTransaction,
    channel: ChannelConfig,
    policies: EndorsementPolicies,
    validation_parameter: ValidationParameterLookup | None,
    updated_parameters: set[tuple[str, str, str]],
    now: datetime | None,
) -> None:
    action = tx.action
    if action is None:
        error = tx.action_error
        assert error is not None
        raise _Invalid(code_name(error.validation_code), error.message)
    cc = action.chaincode_name
    if not cc or cc != action.action_chaincode_name:
        raise _Invalid(
            "INVALID_CHAINCODE",
            f"inconsistent chaincode ids {cc!r}, {action.action_chaincode_name!r}",
        )
    if not action.chaincode_version:
        raise _Invalid("INVALID_CHAINCODE", "chaincode action has no version")
    if action.event is not None and action.event.chaincode_id != cc:
        raise _Invalid("INVALID_OTHER_REASON", "chaincode event names another chaincode")
    seen: set[str] = set()
    written = [cc]
    for ns in action.rwsets:
        if ns.namespace in seen:
            raise _Invalid("ILLEGAL_WRITESET", f"duplicate namespace {ns.namespace!r}")
        seen.add(ns.namespace)
        if ns.has_writes and ns.namespace != cc:
            written.append(ns.namespace)
    endorsers = channel.msps.valid_identities(action.endorsement_signed_data(), now=now)
    for namespace in written:
        cc_policy = policies.namespace(namespace)
        if cc_policy is None:
            raise _Invalid("INVALID_CHAINCODE", f"chaincode {namespace!r} is not defined")
        check = _EndorsementCheck(namespace, cc_policy, policies, endorsers, channel)
        rwset = action.rwset(namespace)
        for collection, key in _written_keys(rwset):
            if (namespace, collection, key) in updated_parameters:
                raise _Invalid(
                    "ENDORSEMENT_POLICY_FAILURE",
                    f"key-level policy of {key!r} changed earlier in this block",
                )
            parameter = (
                validation_parameter(namespace, collection, key) if (validation_parameter) else None
            )
            check.key(collection, key, parameter)
        if not check.some_checked:
            check.chaincode_policy_if_not_checked("")


def _written_keys(rwset: NamespaceRWSet | None) -> list[tuple[str, str]]:
    if rwset is None:
        return []
    keys = [("", w.key) for w in rwset.writes]
    keys += [("", m.key) for m in rwset.metadata_writes]
    for coll in rwset.collections:
        keys += [(coll.collection, w.key_hash.hex()) for w in coll.writes]
        keys += [(coll.collection, m.key) for m in coll.metadata_writes]
    return keys


def _check_config(tx: ParsedTransaction, channel: ChannelConfig, now: datetime | None) -> None:
    """Fabric's ``ValidatorImpl.Validate``: the config is what ``last_update`` makes of ours."""
    envelope = tx.config_envelope
    if envelope is None:
        raise _Invalid("BAD_PAYLOAD", "config transaction without a config envelope")
    if tx.channel_id != channel.channel_id:
        raise _Invalid("INVALID_CONFIG_TRANSACTION", f"config for channel {tx.channel_id!r}")
    sequence = int(envelope.config.sequence)
    if sequence != channel.sequence + 1:
        raise _Invalid(
            "INVALID_CONFIG_TRANSACTION",
            f"config currently at sequence {channel.sequence}, cannot apply sequence {sequence}",
        )
    try:
        update = config_update_from_envelope(envelope.last_update)
        expected = apply_update(channel, update, now=now)
    except ConfigUpdateError as exc:
        raise _Invalid("INVALID_CONFIG_TRANSACTION", f"last_update: {exc.message}") from exc
    if expected != envelope.config:
        raise _Invalid(
            "INVALID_CONFIG_TRANSACTION",
            "the config is not the result of applying its last_update to the config in force",
        )


def _metadata(tx: ParsedTransaction) -> tuple[tuple[str, str, tuple[tuple[str, bytes], ...]], ...]:
    if tx.action is None:
        return ()
    out = []
    for ns in tx.action.rwsets:
        out += [(ns.namespace, m.key, m.entries) for m in ns.metadata_writes]
        for coll in ns.collections:
            hashed_ns = hashed_namespace(ns.namespace, coll.collection)
            out += [(hashed_ns, m.key, m.entries) for m in coll.metadata_writes]
    return tuple(out)


# --- the block ------------------------------------------------------------------------


def _first_pass(
    number: int,
    raw: bytes,
    channel: ChannelConfig,
    policies: EndorsementPolicies,
    tx_id_exists: Callable[[str], bool],
    validation_parameter: ValidationParameterLookup | None,
    updated_parameters: set[tuple[str, str, str]],
    check_time: bool,
) -> tuple[ParsedTransaction | None, int, str]:
    try:
        tx = parse_envelope(raw, strict=False)
    except TransactionFormatError as exc:
        return None, exc.validation_code, exc.message
    now = tx.timestamp if check_time else None
    try:
        if number == 0 and tx.header_type == CONFIG:
            return tx, VALID, ""  # the genesis config is the trust anchor
        _check_headers(tx)
        _check_creator(tx, channel.msps, now)
        if tx.header_type == ENDORSER_TRANSACTION:
            _check_endorser_structure(tx)
            if tx.channel_id != channel.channel_id:
                raise _Invalid("TARGET_CHAIN_NOT_FOUND", f"channel {tx.channel_id!r}")
            if tx_id_exists(tx.tx_id):
                raise _Invalid("DUPLICATE_TXID", "tx_id already committed")
            _check_endorsements(
                tx, channel, policies, validation_parameter, updated_parameters, now
            )
        elif tx.header_type == CONFIG:
            _check_config(tx, channel, now)
        else:
            raise _Invalid("UNSUPPORTED_TX_PAYLOAD", f"{tx.header_type_name} in a block")
    except _Invalid as invalid:
        return tx, invalid.code, invalid.reason
    return tx, VALID, ""


def validate_block(
    block: Any,
    *,
    channel: ChannelConfig,
    policies: EndorsementPolicies,
    committed_version: VersionLookup,
    tx_id_exists: Callable[[str], bool],
    committed_range: RangeLookup | None = None,
    validation_parameter: ValidationParameterLookup | None = None,
    check_time: bool = True,
) -> BlockValidation:
    """Validate every transaction of ``block`` against committed state; see the module doc.

    ``channel`` is the configuration in force for this block. With
    ``check_time``, certificates must also be valid at each transaction's
    timestamp. The block itself is not modified.
    """
    number = int(block.header.number)
    updates = BlockUpdates()
    updated_parameters: set[tuple[str, str, str]] = set()
    seen_ids: set[str] = set()
    results: list[TxResult] = []
    config = None
    for index, raw in enumerate(block.data.data):
        tx, code, reason = _first_pass(
            number,
            bytes(raw),
            channel,
            policies,
            tx_id_exists,
            validation_parameter,
            updated_parameters,
            check_time,
        )
        if code == VALID and tx is not None and tx.header_type == ENDORSER_TRANSACTION:
            # Fabric lets a key-level policy change block later writers of the key
            # once the changing transaction passed endorsement validation.
            for ns, key, entries in _metadata(tx):
                if any(name == VALIDATION_PARAMETER for name, _ in entries):
                    base, _, coll = ns.partition("$$h")
                    updated_parameters.add((base, coll, key))
            if tx.tx_id in seen_ids:
                code, reason = _C["DUPLICATE_TXID"], "tx_id repeated in this block"
            else:
                seen_ids.add(tx.tx_id)
        writes: tuple[StateWrite, ...] = ()
        metadata: tuple[tuple[str, str, tuple[tuple[str, bytes], ...]], ...] = ()
        if code == VALID and tx is not None and tx.header_type == ENDORSER_TRANSACTION:
            try:
                check_reads(tx, committed_version, committed_range, updates)
            except MVCCConflict as conflict:
                code, reason = conflict.code, conflict.reason
            else:
                writes = state_writes(tx, (number, index))
                metadata = _metadata(tx)
                updates.apply(writes)
        if code == VALID and tx is not None and tx.header_type == CONFIG:
            config = tx.config_envelope.config
        results.append(TxResult(index, tx.tx_id if tx else "", code, reason, tx, writes, metadata))
    return BlockValidation(number, tuple(results), config)
