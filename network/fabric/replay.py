"""Replay a Fabric ledger from its genesis block, verifying everything a peer would.

:class:`LedgerReplay` is the checker both for ledgers written by Fabric and
for ledgers written by the embedded engine. Fed blocks in order, it checks
the hash chain and data hash, the orderer signatures against the channel
configuration in force, recomputes every transaction's validation code over
an in-memory world state (:class:`MemoryState`), compares them with the
codes recorded in ``TRANSACTIONS_FILTER`` and, where the block carries one,
with the peer's ``COMMIT_HASH``; config blocks switch the configuration for
the blocks that follow. Integrity failures raise; code and commit-hash
mismatches are reported in :class:`ReplayedBlock` so the caller can name
every finding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from network.fabric import blocks
from network.fabric.errors import BlockIntegrityError
from network.fabric.msp import ValidatedIdentity
from network.fabric.policy import EndorsementPolicies, LifecyclePolicies
from network.fabric.transactions import Version
from network.fabric.validator import (
    BlockValidation,
    ChannelConfig,
    StateWrite,
    validate_block,
    verify_block_signatures,
)


class MemoryState:
    """World state in memory: ``(namespace, key) -> (value, version)`` and committed tx ids."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, tuple[bytes, Version]]] = {}
        self.tx_ids: set[str] = set()

    def version(self, namespace: str, key: str) -> Version | None:
        """Committed version of a key, or ``None`` if absent."""
        entry = self.entries.get(namespace, {}).get(key)
        return entry[1] if entry else None

    def value(self, namespace: str, key: str) -> bytes | None:
        """Committed value of a key, or ``None`` if absent."""
        entry = self.entries.get(namespace, {}).get(key)
        return entry[0] if entry else None

    def range(self, namespace: str, start: str, end: str) -> Iterator[tuple[str, Version]]:
        """Committed ``(key, version)`` with ``start <= key < end`` (no bound if ``end == ""``)."""
        items = self.entries.get(namespace, {})
        for key in sorted(items):
            if key >= start and (not end or key < end):
                yield key, items[key][1]

    def tx_exists(self, tx_id: str) -> bool:
        """Whether a transaction with this ID was already committed (valid or not)."""
        return tx_id in self.tx_ids

    def apply(self, writes: Iterable[StateWrite]) -> None:
        """Commit writes in order; ``None`` values delete."""
        for w in writes:
            namespace = self.entries.setdefault(w.namespace, {})
            if w.value is None:
                namespace.pop(w.key, None)
            else:
                namespace[w.key] = (w.value, w.version)

    def namespace(self, namespace: str) -> dict[str, bytes]:
        """Current ``key -> value`` of one namespace."""
        return {k: v for k, (v, _) in self.entries.get(namespace, {}).items()}


@dataclass(frozen=True, slots=True)
class ReplayedBlock:
    """What replaying one block found."""

    number: int
    validation: BlockValidation
    recorded_codes: tuple[int, ...]
    orderer_signers: tuple[ValidatedIdentity, ...]
    commit_hash_matches: bool | None

    @property
    def mismatches(self) -> list[tuple[int, int, int]]:
        """``(tx index, recorded code, recomputed code)`` wherever they differ."""
        if not self.recorded_codes:
            return []
        return [
            (i, rec, got)
            for i, (rec, got) in enumerate(
                zip(self.recorded_codes, self.validation.codes, strict=True)
            )
            if rec != got
        ]


def _lifecycle_policies(channel: ChannelConfig, state: MemoryState) -> EndorsementPolicies:
    return LifecyclePolicies(channel.policies, state.value)


class LedgerReplay:
    """Feed blocks in order with :meth:`apply`; see the module documentation.

    ``policies`` builds the endorsement-policy lookup for a configuration
    and state (default: Fabric's ``_lifecycle`` rules, :class:`LifecyclePolicies`).
    """

    def __init__(
        self,
        *,
        check_time: bool = True,
        policies: Callable[[ChannelConfig, MemoryState], EndorsementPolicies] | None = None,
    ) -> None:
        self.state = MemoryState()
        self.channel: ChannelConfig | None = None
        self.check_time = check_time
        self._policies = policies or _lifecycle_policies
        self._previous: Any = None
        self._commit_hash = b""

    @property
    def height(self) -> int:
        """Number of blocks replayed so far."""
        return 0 if self._previous is None else int(self._previous.number) + 1

    def apply(self, block: Any) -> ReplayedBlock:
        """Verify and replay the next block; raise :class:`BlockIntegrityError` on tampering."""
        number = int(block.header.number)
        if self._previous is None:
            if number != 0 or block.header.previous_hash:
                raise BlockIntegrityError(
                    f"ledger starts at block {number}, not a genesis block", block_number=number
                )
            self.channel = ChannelConfig.from_block(block)
        else:
            blocks.verify_chain_link(self._previous, block)
        blocks.verify_data_hash(block)
        assert self.channel is not None
        signers = verify_block_signatures(block, self.channel)
        endorsement: EndorsementPolicies = self._policies(self.channel, self.state)
        validation = validate_block(
            block,
            channel=self.channel,
            policies=endorsement,
            committed_version=self.state.version,
            tx_id_exists=self.state.tx_exists,
            committed_range=self.state.range,
            check_time=self.check_time,
        )
        recorded = tuple(blocks.transactions_filter(block))
        matches = None
        if number > 0:
            # The peer hashes the codes it recorded; recompute over ours so a
            # code mismatch also shows up as a commit-hash mismatch.
            self._commit_hash = blocks.compute_commit_hash(
                self._commit_hash, bytes(validation.codes), validation.writes()
            )
            stored = blocks.commit_hash(block)
            matches = None if stored is None else stored == self._commit_hash
        self.state.apply(validation.writes())
        self.state.tx_ids.update(r.tx_id for r in validation.results if r.tx_id)
        if validation.config is not None and number > 0:
            self.channel = ChannelConfig.from_config(self.channel.channel_id, validation.config)
        self._previous = block.header
        return ReplayedBlock(number, validation, recorded, tuple(signers), matches)

    def replay(self, ledger: Iterable[Any]) -> list[ReplayedBlock]:
        """Apply every block of ``ledger`` in order."""
        return [self.apply(block) for block in ledger]
