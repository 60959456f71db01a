"""The pure verification core: feed blocks in order, collect findings.

:class:`LedgerVerifier` is a state machine in the style of python-tuf's
``TrustedMetadataSet``: it holds everything verified so far (the channel
configuration in force, the world state, the chain head) and accepts the next
block only through :meth:`LedgerVerifier.update`. It performs no I/O; the
shell (:mod:`audit.replay`) reads blocks from an export, a home or a gateway
and hands over their bytes.

The Fabric-level work -- hash chain, data hash, orderer signatures against
``BlockValidation``, every transaction's validation code recomputed with the
MSPs and endorsement policies of the configuration in force, MVCC over the
replayed state, the peer's commit hash -- is
:class:`network.fabric.replay.LedgerReplay`'s. This module turns its results
into :class:`~audit.findings.Finding` objects that name the block and the
transaction, pinpoints which transaction a failed data hash comes from, and
adds what a committing peer does not check: that *every* endorsement on a
valid transaction is a member's valid signature, not only enough of them.

Endorsement policies: a Fabric ledger defines chaincodes through
``_lifecycle``; a ledger written by the embedded engine has no
``_lifecycle`` and endorses its chaincodes (AccessLedger's, from
``network.yaml``) under the channel's ``/Channel/Application/Endorsement``
policy, exactly as the engine's committer does. The verifier applies the
second rule only while ``_lifecycle`` holds no definitions at all.

Once a block fails an integrity check (chain, data hash, orderer signature,
undecodable bytes) nothing after it can be tied to the genesis block, so
verification halts there; later blocks are counted as unverified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fabric_protos.peer import transaction_pb2 as _transaction_pb2

from audit.findings import Finding, FindingKind, InvalidTransaction
from audit.signatures import SignatureOracle, checked_channel
from crypto.errors import VerificationError
from network.fabric import blocks
from network.fabric.errors import (
    BlockFormatError,
    BlockIntegrityError,
    BlockSignatureError,
    ConfigError,
    FabricError,
    MSPError,
)
from network.fabric.policy import (
    LIFECYCLE_NAMESPACE,
    EndorsementPolicies,
    LifecyclePolicies,
    Policy,
)
from network.fabric.replay import LedgerReplay, MemoryState, ReplayedBlock
from network.fabric.transactions import ENDORSER_TRANSACTION
from network.fabric.validator import (
    VALID,
    ChannelConfig,
    TxResult,
    code_name,
    validate_block,
)

transaction_pb2: Any = _transaction_pb2

#: AccessLedger's chaincode name when ``network.yaml`` does not say otherwise.
DEFAULT_CHAINCODE = "accessledger"
#: The channel-wide endorsement policy the embedded engine applies to its chaincodes.
CHANNEL_ENDORSEMENT = "/Channel/Application/Endorsement"
_ENDORSEMENT_POLICY_FAILURE: int = transaction_pb2.TxValidationCode.Value(
    "ENDORSEMENT_POLICY_FAILURE"
)


class BlockObserver(Protocol):
    """Something that looks at every replayed block (access events, records, policies)."""

    def observe(self, replayed: ReplayedBlock, findings: list[Finding]) -> None:
        """Inspect a block that passed integrity checks; append findings."""


@dataclass
class ReplayStats:
    """Counters for the summary and the JSON report."""

    blocks: int = 0
    transactions: int = 0
    valid: int = 0
    invalid: int = 0
    config_blocks: int = 0
    signatures: int = 0
    signatures_verified_ahead: int = 0
    unverified_blocks: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "blocks": self.blocks,
            "transactions": self.transactions,
            "valid": self.valid,
            "invalid": self.invalid,
            "config_blocks": self.config_blocks,
            "signatures": self.signatures,
            "signatures_verified_ahead": self.signatures_verified_ahead,
            "unverified_blocks": self.unverified_blocks,
        }


@dataclass(frozen=True)
class VerifierOptions:
    """What the verifier needs to know beyond the blocks themselves.

    ``chaincode`` is AccessLedger's namespace; ``extra_chaincodes`` are
    further chaincodes an engine ledger ran. ``check_time`` also requires
    every certificate to be valid at its transaction's timestamp.
    """

    chaincode: str = DEFAULT_CHAINCODE
    extra_chaincodes: tuple[str, ...] = ()
    check_time: bool = True


@dataclass
class _Head:
    header: Any = None
    hash: bytes = b""
    commit_hash_failures: int = 0


@dataclass
class LedgerVerifier:
    """Verify a ledger block by block; see the module docstring."""

    options: VerifierOptions = field(default_factory=VerifierOptions)
    oracle: SignatureOracle = field(default_factory=SignatureOracle)
    observers: Sequence[BlockObserver] = ()

    def __post_init__(self) -> None:
        self.findings: list[Finding] = []
        self.invalid: list[InvalidTransaction] = []
        self.stats = ReplayStats()
        self.halted: Finding | None = None
        #: Every namespace any transaction touched (valid or not), for the state comparison.
        self.namespaces: set[str] = set()
        self._head = _Head()
        self._replay = LedgerReplay(check_time=self.options.check_time, policies=self._policies)

    # -- what has been verified ------------------------------------------------------

    @property
    def height(self) -> int:
        """Number of blocks verified (the next block's number)."""
        return self._replay.height

    @property
    def tip_hash(self) -> bytes:
        """Header hash of the last verified block (``b""`` before genesis)."""
        return self._head.hash

    @property
    def state(self) -> MemoryState:
        """The world state rebuilt from the valid transactions so far."""
        return self._replay.state

    @property
    def channel(self) -> ChannelConfig | None:
        """The channel configuration in force for the next block."""
        return self._replay.channel

    @property
    def ok(self) -> bool:
        """Whether nothing failed so far."""
        return not self.findings

    # -- policies ----------------------------------------------------------------------

    def _policies(self, channel: ChannelConfig, state: MemoryState) -> EndorsementPolicies:
        lifecycle = LifecyclePolicies(channel.policies, state.value)
        if state.entries.get(LIFECYCLE_NAMESPACE):
            return lifecycle
        engine_names = {self.options.chaincode, *self.options.extra_chaincodes}

        def namespace(name: str) -> Policy | None:
            defined = lifecycle.namespace(name)
            if defined is None and name in engine_names:
                return channel.policies.get(CHANNEL_ENDORSEMENT)
            return defined

        return EndorsementPolicies(namespace, lifecycle.collection)

    # -- the one entry point -----------------------------------------------------------

    def update(self, raw: bytes) -> ReplayedBlock | None:
        """Verify the next block (its serialized bytes); return the replay, or ``None``.

        Never raises for anything wrong with the ledger: problems become
        findings. ``None`` means the block was not verified (verification
        has halted, now or earlier).
        """
        if self.halted is not None:
            self.stats.unverified_blocks += 1
            return None
        self.oracle.forget()
        try:
            block = blocks.parse_block(raw)
        except BlockFormatError as exc:
            self._halt(Finding(FindingKind.MALFORMED, exc.message, block=self.height))
            return None
        number = int(block.header.number)
        try:
            replayed = self._replay.apply(block)
        except BlockSignatureError as exc:
            self._halt(Finding(FindingKind.BLOCK_SIGNATURE, exc.message, block=number))
            return None
        except BlockIntegrityError as exc:
            self._halt(self._integrity_finding(block, exc))
            return None
        except (ConfigError, FabricError) as exc:
            kind = FindingKind.CONFIG if isinstance(exc, ConfigError) else FindingKind.MALFORMED
            self._halt(Finding(kind, f"block {number}: {exc.message}", block=number))
            return None
        self._head.header = block.header
        self._head.hash = blocks.block_header_hash(block.header)
        assert self._replay.channel is not None
        # Config blocks replace the channel; keep signature checks going through the oracle.
        self._replay.channel = checked_channel(self._replay.channel, self.oracle)
        self._account(block, replayed)
        for observer in self.observers:
            observer.observe(replayed, self.findings)
        return replayed

    def _halt(self, finding: Finding) -> None:
        self.findings.append(finding)
        self.halted = finding

    # -- after a successful replay -----------------------------------------------------

    def _account(self, block: Any, replayed: ReplayedBlock) -> None:
        number = replayed.number
        results = replayed.validation.results
        stats = self.stats
        stats.blocks += 1
        stats.transactions += len(results)
        stats.config_blocks += replayed.validation.config is not None
        recorded = replayed.recorded_codes
        # An orderer-made genesis block carries no codes until a peer commits it; the
        # embedded engine stores it as made. Nothing in it is validated but the config.
        genesis_unvalidated = number == 0 and not recorded
        if len(recorded) != len(results) and not genesis_unvalidated:
            what = "no validation codes" if not recorded else f"{len(recorded)} validation codes"
            self.findings.append(
                Finding(
                    FindingKind.VALIDATION_CODES_MISSING,
                    f"block records {what} for {len(results)} transactions",
                    block=number,
                )
            )
            recorded = ()
        for result in results:
            if result.parsed is not None and result.parsed.action is not None:
                self.namespaces.update(ns.namespace for ns in result.parsed.action.rwsets)
            if result.valid:
                stats.valid += 1
                self._check_endorsements(number, result)
            else:
                stats.invalid += 1
            stored = recorded[result.index] if recorded else None
            if stored is not None and stored != result.code:
                detail = f": {result.reason}" if result.reason else ""
                if result.code == _ENDORSEMENT_POLICY_FAILURE:
                    detail += "".join(f"; {r}" for r in self._rejected_endorsements(result))
                self.findings.append(
                    Finding(
                        FindingKind.VALIDATION_CODE,
                        f"recorded {code_name(stored)}, replay gives {result.code_name}{detail}",
                        block=number,
                        tx_index=result.index,
                        tx_id=result.tx_id,
                    )
                )
            if not result.valid:
                self.invalid.append(
                    InvalidTransaction(
                        number,
                        result.index,
                        result.tx_id,
                        result.code_name,
                        result.reason,
                        reproduced=stored == result.code,
                    )
                )
        if replayed.commit_hash_matches is False:
            # Commit hashes chain, so only the first divergence is news.
            self._head.commit_hash_failures += 1
            if self._head.commit_hash_failures == 1:
                self.findings.append(
                    Finding(
                        FindingKind.COMMIT_HASH,
                        "the peer's COMMIT_HASH differs from the hash of the replayed "
                        "validation codes and state updates",
                        block=number,
                    )
                )
        stats.signatures = self.oracle.verified
        stats.signatures_verified_ahead = self.oracle.verified_ahead

    def _rejected_endorsements(self, result: TxResult) -> list[str]:
        """Why each endorsement that does not count is rejected (empty when all count)."""
        tx = result.parsed
        if tx is None or tx.header_type != ENDORSER_TRANSACTION or tx.action is None:
            return []
        channel = self._replay.channel
        assert channel is not None
        now = tx.timestamp if self.options.check_time else None
        rejected = []
        for position, signed in enumerate(tx.action.endorsement_signed_data()):
            if self.oracle.seen(signed.identity, signed.data, signed.signature):
                continue  # accepted by the validator in this block: a member's valid signature
            try:
                identity = channel.msps.deserialize(signed.identity, now=now)
                identity.verify(signed.data, signed.signature)
            except (MSPError, VerificationError) as exc:
                rejected.append(f"endorsement {position} is not a valid member signature: {exc}")
        return rejected

    def _check_endorsements(self, number: int, result: TxResult) -> None:
        for problem in self._rejected_endorsements(result):
            self.findings.append(
                Finding(
                    FindingKind.ENDORSEMENT,
                    problem,
                    block=number,
                    tx_index=result.index,
                    tx_id=result.tx_id,
                )
            )

    # -- naming what broke -------------------------------------------------------------

    def _integrity_finding(self, block: Any, exc: BlockIntegrityError) -> Finding:
        number = int(block.header.number)
        previous = self._head.header
        if previous is None:
            return Finding(FindingKind.CHAIN, exc.message, block=number)
        expected = int(previous.number) + 1
        if number > expected:
            missing = (
                f"block {expected}"
                if number == expected + 1
                else (f"blocks {expected}..{number - 1}")
            )
            return Finding(
                FindingKind.CHAIN,
                f"{missing} missing: block {number} follows block {previous.number}",
                block=expected,
            )
        if number < expected:
            return Finding(
                FindingKind.CHAIN,
                f"block {number} appears again (or out of order) after block {previous.number}",
                block=number,
            )
        if bytes(block.header.previous_hash) != self._head.hash:
            return Finding(
                FindingKind.CHAIN,
                f"previous_hash is not the header hash of block {previous.number}: the block "
                "was replaced or inserted, or an earlier block was altered",
                block=number,
            )
        return self._data_hash_finding(block)

    def _data_hash_finding(self, block: Any) -> Finding:
        """Name the transactions that no longer verify in a block whose data hash failed."""
        number = int(block.header.number)
        message = "data hash does not match the transactions"
        channel = self._replay.channel
        if channel is None:
            return Finding(FindingKind.DATA_HASH, message, block=number)
        state = self._replay.state
        try:
            validation = validate_block(
                block,
                channel=channel,
                policies=self._policies(channel, state),
                committed_version=state.version,
                tx_id_exists=state.tx_exists,
                committed_range=state.range,
                check_time=self.options.check_time,
            )
        except FabricError:
            return Finding(FindingKind.DATA_HASH, message, block=number)
        recorded = blocks.transactions_filter(block)
        changed = [
            r
            for r in validation.results
            if (recorded[r.index] if r.index < len(recorded) else VALID) != r.code
        ]
        if not changed:
            return Finding(
                FindingKind.DATA_HASH,
                f"{message}; every transaction still verifies on its own, so transactions were "
                "reordered, added or removed",
                block=number,
            )

        def describe(result: TxResult) -> str:
            stored = recorded[result.index] if result.index < len(recorded) else VALID
            return f"recorded {code_name(stored)} now fails {result.code_name}: {result.reason}"

        single = changed[0] if len(changed) == 1 else None
        if single is not None:  # the finding's location names the transaction
            details = [describe(single)]
        else:
            details = [
                f"tx {r.index}" + (f" ({r.tx_id[:12]}…) " if r.tx_id else " ") + describe(r)
                for r in changed
            ]
        return Finding(
            FindingKind.DATA_HASH,
            f"{message}; {'; '.join(details)}",
            block=number,
            tx_index=single.index if single else None,
            tx_id=single.tx_id if single else None,
        )
