"""Errors and value types of the ledger store (:mod:`network.engine.statedb`).

The records a query returns (:class:`Version`, :class:`VersionedValue`,
:class:`VersionedKV`, :class:`HistoryEntry`, :class:`TxLocation`), the
records a commit takes (:class:`TxIndexEntry`, :class:`StateWrite`), the
read-side protocol chaincode simulation uses (:class:`StateReader`) and the
store's errors. They sit apart from the store so that both the read-write
engine and its read-only snapshots (:mod:`network.engine.snapshot`) share
them without importing each other; every name stays importable from
:mod:`network.engine.statedb`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from crypto.errors import AccessLedgerError

__all__ = [
    "VALID",
    "HistoryEntry",
    "LedgerCorruptionError",
    "LedgerError",
    "StateReader",
    "StateWrite",
    "TxIndexEntry",
    "TxLocation",
    "Version",
    "VersionedKV",
    "VersionedValue",
    "key_bytes",
    "one_line",
]

#: Fabric's ``TxValidationCode.VALID``.
VALID = 0


class LedgerError(AccessLedgerError):
    """The ledger store refused an operation (bad block, bad write, I/O failure)."""

    code = "ledger_error"


def one_line(exc: BaseException, limit: int = 120) -> str:
    """A printable, single-line, bounded rendering of ``exc`` for error messages (I7)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(exc)).strip()
    return (text[:limit] + "...") if len(text) > limit else text or type(exc).__name__


class LedgerCorruptionError(LedgerError):
    """The stored chain does not verify; the message names the block and the check."""

    code = "ledger_corrupt"


class Version(NamedTuple):
    """Fabric's key version: the height (block, transaction) of the last write.

    A tuple, so it compares equal to the ``(block_num, tx_num)`` pairs that
    :mod:`network.fabric.transactions` decodes from read sets.
    """

    block_num: int
    tx_num: int


class VersionedValue(NamedTuple):
    """A committed value and its version; unpacks as ``value, version``."""

    value: bytes
    version: Version


class VersionedKV(NamedTuple):
    """One row of a range scan."""

    key: str
    value: bytes
    version: Version


@dataclass(frozen=True)
class HistoryEntry:
    """One committed write of a key, as ``GetHistoryForKey`` reports it."""

    block_num: int
    tx_num: int
    tx_id: str
    is_delete: bool
    value: bytes
    timestamp_seconds: int
    timestamp_nanos: int


@dataclass(frozen=True)
class TxLocation:
    """Where a transaction id was committed and with which validation code."""

    tx_id: str
    block_num: int
    tx_num: int
    validation_code: int


@dataclass(frozen=True)
class TxIndexEntry:
    """One transaction of the block being committed (for the tx and history indexes).

    ``timestamp_*`` is the client's channel-header timestamp; Fabric reports it
    as the time of each history entry the transaction wrote.
    """

    tx_num: int
    tx_id: str
    validation_code: int
    timestamp_seconds: int = 0
    timestamp_nanos: int = 0


@dataclass(frozen=True)
class StateWrite:
    """A write of a *valid* transaction of the block; ``value=None`` deletes the key."""

    tx_num: int
    namespace: str
    key: str
    value: bytes | None


class StateReader(Protocol):
    """Read access to committed state, as chaincode simulation needs it."""

    def get_state(self, namespace: str, key: str) -> VersionedValue | None: ...

    def get_state_range(
        self, namespace: str, start_key: str, end_key: str, *, limit: int | None = None
    ) -> list[VersionedKV]: ...

    def get_history(self, namespace: str, key: str) -> list[HistoryEntry]: ...


def key_bytes(key: str) -> bytes:
    """``key`` as UTF-8, the form the state tables store; ``invalid_key`` otherwise."""
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LedgerError(f"key {key!r} is not valid UTF-8", code="invalid_key") from exc
