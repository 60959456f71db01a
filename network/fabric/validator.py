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

Steps 1-4, and the CONFIG checks below, live in :mod:`network.fabric.txchecks`.

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from network.fabric import blocks
from network.fabric.errors import BlockSignatureError, ConfigError, PolicyNotSatisfiedError
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
from network.fabric.policy import EndorsementPolicies, PolicyManager
from network.fabric.transactions import (
    CONFIG,
    ENDORSER_TRANSACTION,
    ParsedTransaction,
    hashed_namespace,
    parse_envelope,
)
from network.fabric.txchecks import (
    CODES,
    VALID,
    ValidationParameterLookup,
    check_transaction,
    code_name,
)

__all__ = [
    "VALID",
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

#: Key-metadata entry holding a state-based endorsement policy.
VALIDATION_PARAMETER = "VALIDATION_PARAMETER"


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
        tx, code, reason = check_transaction(
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
                code, reason = CODES["DUPLICATE_TXID"], "tx_id repeated in this block"
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
