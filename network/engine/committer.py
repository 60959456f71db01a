"""Validation and commit: a committing peer's work on each ordered block.

For every block the orderer cuts, :class:`Committer`:

1. checks the orderer's signature on the block against the channel's
   ``/Channel/Orderer/BlockValidation`` policy (a peer does this before it
   accepts a block from the ordering service);
2. validates every transaction with :func:`network.fabric.validator.validate_block`
   -- creator signature and certificate, endorsement signatures and the
   endorsement policy, duplicate transaction ids (in the block and against the
   ledger's tx index), MVCC read versions and phantom reads against committed
   state and the block's earlier writes -- giving Fabric's ``TxValidationCode``
   per transaction;
3. records the codes in the block's TRANSACTIONS_FILTER slot and the
   peer's chained commit hash (over the codes and the block's state updates,
   Fabric's ``kvLedger.addBlockCommitHash``) in the COMMIT_HASH slot -- both
   outside the signed header, as Fabric does -- so an auditor replaying the
   ledger can check the peer's outcome block by block;
4. hands the block, the writes of its *valid* transactions, the history
   entries and the tx index to :meth:`StateDB.commit_block`, which writes them
   in one SQLite transaction. Invalid transactions stay in the block and
   change nothing.
5. after a valid config transaction (a channel config update), validates
   every later block under the new configuration.

Only when ``commit_block`` has returned -- the SQLite transaction is durable
(WAL, ``synchronous=FULL``) -- is the block returned to the caller, and only
then are clients told their transactions committed. That ordering is what
makes "reported committed" survive a kill -9 (invariant I6).

Methods are synchronous and CPU-bound; the network runs them on one worker
thread, so blocks commit strictly in order while the event loop keeps
endorsing and ordering.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fabric_protos.common import common_pb2 as _common_pb2
from google.protobuf.message import DecodeError

from network.engine.errors import CommitStatusError
from network.engine.statedb import VALID, StateDB, StateWrite, TxIndexEntry
from network.fabric.blocks import (
    block_header_hash,
    commit_hash,
    compute_commit_hash,
    parse_block,
    set_commit_hash,
    set_transactions_filter,
)
from network.fabric.msp import MSP, MSPRegistry, ValidatedIdentity
from network.fabric.policy import Policy, PolicyManager
from network.fabric.transactions import SignedData, Version
from network.fabric.validator import (
    BlockValidation,
    ChannelConfig,
    EndorsementPolicies,
    code_name,
    validate_block,
    verify_block_signatures,
)

common_pb2: Any = _common_pb2

_NANOS = 1_000_000_000
#: Signatures verified at broadcast and not yet re-checked by the validator.
PENDING_SIGNATURES = 16384


class CachingMSPRegistry(MSPRegistry):
    """Channel MSPs that remember creator signatures verified at broadcast.

    The orderer verifies each envelope's creator signature when it is
    broadcast, and the committer verifies it again when it validates the
    block. Both run in this process against the same channel MSPs, so the
    second check is answered from a record of the first, kept only until it
    is used once: the record maps the signature to the exact signer identity
    and signed bytes it was verified against, and a hit requires both to be
    byte-for-byte equal, so any change to either is verified afresh. ECDSA
    verification is deterministic; a hit gives exactly the answer a new
    verification would. Identity validity (MSP membership, certificate
    times) is checked on every call, and endorsement signatures, which are
    only ever checked by the validator, are always verified.
    """

    def __init__(self, msps: Sequence[MSP], *, capacity: int = PENDING_SIGNATURES) -> None:
        super().__init__(msps)
        self._capacity = capacity
        self._pending: dict[bytes, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()

    def verify(self, signed: SignedData, *, now: datetime | None = None) -> ValidatedIdentity:
        """Deserialize the signer and verify its signature, using a broadcast-time check."""
        identity = self.deserialize(signed.identity, now=now)
        with self._lock:
            earlier = self._pending.pop(signed.signature, None)
        if earlier is not None and earlier == (signed.identity, signed.data):
            return identity
        identity.verify(signed.data, signed.signature)
        return identity

    def remember(self, signed: SignedData, *, now: datetime | None = None) -> ValidatedIdentity:
        """Verify as :meth:`verify` does and keep the result for one later :meth:`verify`."""
        identity = self.deserialize(signed.identity, now=now)
        identity.verify(signed.data, signed.signature)
        with self._lock:
            if len(self._pending) >= self._capacity:
                # Oldest first: transactions that never reached a block.
                del self._pending[next(iter(self._pending))]
            self._pending[signed.signature] = (signed.identity, signed.data)
        return identity


def channel_config(block: Any) -> ChannelConfig:
    """The :class:`ChannelConfig` of a config block, with a :class:`CachingMSPRegistry`."""
    base = ChannelConfig.from_block(block)
    return channel_config_from(base.channel_id, base.config)


def channel_config_from(channel_id: str, config: Any) -> ChannelConfig:
    """The :class:`ChannelConfig` of a ``configtx.Config``, with a :class:`CachingMSPRegistry`."""
    base = MSPRegistry.from_config(config)
    msps = CachingMSPRegistry(list(base.msps.values()))
    return ChannelConfig(channel_id, config, msps, PolicyManager(config, msps))


@dataclass(frozen=True)
class TxStatus:
    """The commit status of a transaction: its validation code and block."""

    tx_id: str
    validation_code: int
    block_number: int

    @property
    def valid(self) -> bool:
        return self.validation_code == VALID

    @property
    def validation_code_name(self) -> str:
        return code_name(self.validation_code)


@dataclass(frozen=True)
class CommittedBlock:
    """A block as committed: the block (with its TRANSACTIONS_FILTER) and its validation."""

    number: int
    block: Any
    validation: BlockValidation
    #: The configuration in force after this block, when the block changed it.
    channel: ChannelConfig | None = None

    @property
    def codes(self) -> list[int]:
        """The validation code of each transaction, in block order."""
        return self.validation.codes


def chaincode_policies(installed: Callable[[str], bool], policy: Policy) -> EndorsementPolicies:
    """Endorsement policies for a channel whose chaincodes all use the channel default.

    A namespace that is not an installed chaincode has no definition, so a
    transaction writing it is ``INVALID_CHAINCODE``, as on Fabric.
    """
    return EndorsementPolicies(lambda name: policy if installed(name) else None)


class Committer:
    """Validates ordered blocks and commits them to the store (see the module docstring)."""

    def __init__(
        self,
        *,
        store: StateDB,
        channel: ChannelConfig,
        policies: EndorsementPolicies,
        check_time: bool = True,
        policies_for: Callable[[ChannelConfig], EndorsementPolicies] | None = None,
    ) -> None:
        self.store = store
        self.channel = channel
        self.policies = policies
        self.check_time = check_time
        self._policies_for = policies_for
        self._prepared: dict[int, ChannelConfig] = {}
        # (first ledger height it governs, config): the config in force for a snapshot of
        # any height from the store's height at start on. Appended before a config
        # block's commit, so a reader that sees the block also sees its config.
        self._configs: list[tuple[int, ChannelConfig]] = [(0, channel)]
        self._commit_hash = self._stored_commit_hash()

    def _stored_commit_hash(self) -> bytes:
        """The commit hash of the last block (empty after the genesis block)."""
        if self.store.height <= 1:
            return b""
        tip = self.store.get_block(self.store.height - 1)
        return (commit_hash(parse_block(tip)) if tip else None) or b""

    # -- state lookups for the validator ----------------------------------------------

    def _version(self, namespace: str, key: str) -> Version | None:
        current = self.store.get_state(namespace, key)
        if current is None:
            return None
        return (current.version.block_num, current.version.tx_num)

    def _range(self, namespace: str, start: str, end: str) -> Iterable[tuple[str, Version]]:
        return [
            (kv.key, (kv.version.block_num, kv.version.tx_num))
            for kv in self.store.get_state_range(namespace, start, end)
        ]

    # -- the steps ---------------------------------------------------------------------

    def _tx_id_lookup(self, block: Any) -> Callable[[str], bool]:
        """``tx_id_exists`` for the validator, answered by one tx-index query per block.

        The block's tx ids are read from the channel headers and looked up
        together; any other id (there should be none) is looked up on its own.
        """
        in_block: set[str] = set()
        for raw in block.data.data:
            try:
                envelope = common_pb2.Envelope.FromString(raw)
                payload = common_pb2.Payload.FromString(envelope.payload)
                header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            except DecodeError:
                continue  # the validator reports it; it never reaches the duplicate check
            in_block.add(str(header.tx_id))
        committed = self.store.committed_tx_ids(in_block)

        def tx_id_exists(tx_id: str) -> bool:
            if tx_id in in_block:
                return tx_id in committed
            return self.store.tx_exists(tx_id)

        return tx_id_exists

    def validate(self, block: Any) -> BlockValidation:
        """Check the orderer's signature, then every transaction of ``block``.

        Raises :class:`~network.fabric.errors.BlockSignatureError` if the block
        is not properly signed by the ordering service; nothing is committed then.
        """
        verify_block_signatures(block, self.channel)
        return validate_block(
            block,
            channel=self.channel,
            policies=self.policies,
            committed_version=self._version,
            committed_range=self._range,
            tx_id_exists=self._tx_id_lookup(block),
            check_time=self.check_time,
        )

    def commit(self, block: Any) -> CommittedBlock:
        """Validate ``block`` and commit it with its effects in one SQLite transaction."""
        validation = self.validate(block)
        set_transactions_filter(block, validation.codes)
        chained = compute_commit_hash(
            self._commit_hash, bytes(validation.codes), validation.writes()
        )
        set_commit_hash(block, chained)
        entries: list[TxIndexEntry] = []
        writes: list[StateWrite] = []
        for result in validation.results:
            nanos = result.parsed.timestamp_nanos if result.parsed is not None else 0
            entries.append(
                TxIndexEntry(
                    tx_num=result.index,
                    tx_id=result.tx_id,
                    validation_code=result.code,
                    timestamp_seconds=nanos // _NANOS,
                    timestamp_nanos=nanos % _NANOS,
                )
            )
            if result.valid:
                writes.extend(
                    StateWrite(result.index, w.namespace, w.key, w.value) for w in result.writes
                )
        number = int(block.header.number)
        channel = None
        if validation.config is not None:
            channel = self._config_for(number, validation.config)
            self._configs = [*(c for c in self._configs if c[0] <= number), (number + 1, channel)]
        self.store.commit_block(
            block.SerializeToString(),
            block_header_hash(block.header),
            transactions=entries,
            writes=writes,
        )
        self._commit_hash = chained
        if channel is not None:
            self._adopt(channel)
        return CommittedBlock(number, block, validation, channel)

    def channel_at(self, height: int) -> ChannelConfig:
        """The channel config in force for a snapshot of the ledger at ``height`` blocks.

        That is the config of the last config block below ``height``. Key
        custodians ask it with the height of the snapshot they just read, so a
        certificate revoked in a block they can see is refused even before the
        gateway's own membership view has caught up with that block. Heights
        from before this committer started get the config it started with:
        nobody reads a snapshot older than the store it opened.
        """
        configs = self._configs
        for since, channel in reversed(configs):
            if since <= height:
                return channel
        return configs[0][1]

    def prepare_config(self, number: int, channel: ChannelConfig) -> None:
        """Offer the orderer's :class:`ChannelConfig` for config block ``number``.

        If the block commits with exactly that config, the committer adopts
        this object, so orderer and committer keep sharing one MSP registry
        (and its record of signatures verified at broadcast).
        """
        self._prepared[number] = channel

    def _config_for(self, number: int, config: Any) -> ChannelConfig:
        """The :class:`ChannelConfig` of config block ``number`` (the orderer's, if it matches)."""
        channel = self._prepared.pop(number, None)
        if channel is None or channel.config != config:
            channel = channel_config_from(self.channel.channel_id, config)
        return channel

    def _adopt(self, channel: ChannelConfig) -> None:
        """Switch to a committed config: later blocks are validated under it."""
        self.channel = channel
        if self._policies_for is not None:
            self.policies = self._policies_for(channel)


class CommitWaiters:
    """Clients waiting for their transactions to commit, by transaction id.

    :meth:`resolve` is called with a block only after ``commit_block``
    returned, so a resolved waiter always reports a durable commit. A
    transaction id that appears twice in a block resolves with its first
    occurrence. Used on the event loop thread only.
    """

    def __init__(self) -> None:
        self._futures: dict[str, list[asyncio.Future[TxStatus]]] = {}

    def add(self, tx_id: str, future: asyncio.Future[TxStatus]) -> None:
        self._futures.setdefault(tx_id, []).append(future)

    def discard(self, tx_id: str, future: asyncio.Future[TxStatus]) -> None:
        """Forget ``future`` (and cancel it if still pending)."""
        futures = self._futures.get(tx_id)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._futures[tx_id]
        future.cancel()

    def resolve(self, committed: CommittedBlock) -> None:
        """Report every transaction of a committed block to its waiters."""
        for result in committed.validation.results:
            if not result.tx_id:
                continue
            for future in self._futures.pop(result.tx_id, ()):
                if not future.done():
                    future.set_result(TxStatus(result.tx_id, result.code, committed.number))

    def fail(self, message: str) -> None:
        """Fail every pending waiter with :class:`CommitStatusError` (network stopped)."""
        futures, self._futures = self._futures, {}
        for tx_id, pending in futures.items():
            for future in pending:
                if not future.done():
                    future.set_exception(CommitStatusError(message, tx_id=tx_id))
