"""What an audit reports: findings (verification failures) and their kinds.

A :class:`Finding` is one thing that does not verify, located as precisely
as the check allows: the block number, the transaction's position and ID,
and a message that says what was expected and what was found. Any finding
makes the audit fail. Anomaly flags (:mod:`audit.anomalies`) are different:
they are reported for a human to look at and never fail the audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FindingKind(StrEnum):
    """Stable names of the checks a finding can come from (used in JSON reports)."""

    #: Bytes that should be a block or a block stream do not decode.
    MALFORMED = "block_malformed"
    #: A block is missing, repeated, out of order or does not chain to its predecessor.
    CHAIN = "chain_broken"
    #: A block's data hash does not match its transactions.
    DATA_HASH = "data_hash_mismatch"
    #: The orderer signatures on a block do not satisfy the BlockValidation policy.
    BLOCK_SIGNATURE = "block_signature_invalid"
    #: The channel configuration of a config block cannot be used.
    CONFIG = "config_invalid"
    #: A recorded validation code differs from the one recomputed by replay.
    VALIDATION_CODE = "validation_code_mismatch"
    #: A block records no (or the wrong number of) validation codes.
    VALIDATION_CODES_MISSING = "validation_codes_missing"
    #: The peer's commit hash differs from the one recomputed by replay.
    COMMIT_HASH = "commit_hash_mismatch"
    #: A valid transaction carries an endorsement that is not a member's valid signature.
    ENDORSEMENT = "endorsement_invalid"
    #: The world state rebuilt by replay differs from the engine's stored state.
    STATE = "state_mismatch"
    #: The ledger's tip differs from what the source reports (height, tip hash).
    TIP = "tip_mismatch"
    #: A policy bundle on the ledger is not what governance approved or anchored.
    POLICY_BUNDLE = "policy_bundle_invalid"
    #: An access event is malformed, or not consistent with its transaction.
    ACCESS_EVENT = "access_event_invalid"
    #: A recorded access decision differs from re-evaluation under the anchored policy.
    DECISION = "decision_mismatch"
    #: An off-chain ciphertext does not hash to its on-ledger content address.
    BLOB_MISMATCH = "offchain_blob_mismatch"
    #: An off-chain ciphertext named on the ledger is in no store (and was not erased).
    BLOB_MISSING = "offchain_blob_missing"
    #: A key release that no committed, permitting access event accounts for.
    KEY_RELEASE = "key_release_untraced"
    #: A note key sealed to a citizen that the ledger (event, binding, key, CRLs) does not back.
    NOTE_RELEASE = "note_release_untraced"


@dataclass(frozen=True, slots=True)
class Finding:
    """One verification failure; see the module docstring."""

    kind: FindingKind
    message: str
    block: int | None = None
    tx_index: int | None = None
    tx_id: str | None = None

    def location(self) -> str:
        """``block 13 tx 1 (522f2fb4e5df…)``, or as much of it as is known."""
        parts = []
        if self.block is not None:
            parts.append(f"block {self.block}")
        if self.tx_index is not None:
            parts.append(f"tx {self.tx_index}")
        if self.tx_id:
            parts.append(f"({self.tx_id[:12]}…)" if len(self.tx_id) > 12 else f"({self.tx_id})")
        return " ".join(parts) or "ledger"

    def __str__(self) -> str:
        return f"{self.location()}: {self.kind.value}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "block": self.block,
            "tx_index": self.tx_index,
            "tx_id": self.tx_id,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class InvalidTransaction:
    """A transaction the ledger records as invalid, and whether replay reproduced the code.

    Invalid transactions are normal on a Fabric ledger (MVCC conflicts, failed
    endorsement policies); they are listed, not counted as findings, when the
    recomputed code equals the recorded one.
    """

    block: int
    tx_index: int
    tx_id: str
    code: str
    reason: str
    reproduced: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "tx_index": self.tx_index,
            "tx_id": self.tx_id,
            "code": self.code,
            "reason": self.reason,
            "reproduced": self.reproduced,
        }
