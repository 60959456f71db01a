"""Read a home's ledger the way an outsider would: raw blocks, parsed with network.fabric.

Nothing here goes through the gateway or the chaincode package: the tests of
tests/invariants check what the blocks themselves say.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from network.engine.network import open_ledger
from network.fabric.blocks import parse_block, transactions_filter
from network.fabric.transactions import ParsedTransaction, parse_envelope

#: AccessLedger's chaincode (namespace) in the demo consortium's network.yaml.
CHAINCODE = "accessledger"
#: Fabric's TxValidationCode VALID.
VALID = 0


def composite(kind: str, *attributes: str) -> str:
    """Fabric's composite key ``U+0000 kind U+0000 (attribute U+0000)*``."""
    return "\x00" + "\x00".join((kind, *attributes)) + "\x00"


def composite_kind(key: str) -> str | None:
    """The ``kind`` of a composite key, or ``None`` for a simple key."""
    if not key.startswith("\x00"):
        return None
    return key[1:].split("\x00", 1)[0]


@dataclass(frozen=True)
class LedgerTx:
    """One transaction as its block holds it, with its recorded validation code."""

    block: int
    index: int
    code: int
    tx: ParsedTransaction

    @property
    def valid(self) -> bool:
        return self.code == VALID

    @property
    def function(self) -> str | None:
        return self.tx.action.function if self.tx.action is not None else None

    def argument(self) -> Any:
        """The JSON argument of an AccessLedger chaincode call."""
        assert self.tx.action is not None
        return json.loads(self.tx.action.args[1])

    def writes(self) -> dict[str, bytes | None]:
        """Key -> value (``None`` for a delete) written in AccessLedger's namespace."""
        action = self.tx.action
        rwset = action.rwset(CHAINCODE) if action is not None else None
        return {
            w.key: (None if w.is_delete else bytes(w.value))
            for w in (rwset.writes if rwset else ())
        }

    def event(self) -> dict[str, Any] | None:
        """The chaincode event's JSON payload, if the transaction set one."""
        action = self.tx.action
        if action is None or action.event is None:
            return None
        payload: dict[str, Any] = json.loads(action.event.payload)
        return payload


def raw_blocks(home: Path) -> list[bytes]:
    """Every stored block's bytes, genesis first (the store verifies the chain on open)."""
    with open_ledger(home) as store:
        return [data for _, data in store.iter_blocks()]


def iter_transactions(blocks: list[bytes]) -> Iterator[LedgerTx]:
    """Every transaction of ``blocks`` in ledger order."""
    for number, data in enumerate(blocks):
        block = parse_block(data)
        codes = transactions_filter(block)
        assert len(codes) == len(block.data.data), f"block {number} lacks validation codes"
        for index, envelope in enumerate(block.data.data):
            yield LedgerTx(number, index, codes[index], parse_envelope(bytes(envelope)))


def ledger_transactions(home: Path) -> list[LedgerTx]:
    """Every transaction of ``home``'s ledger in ledger order."""
    return list(iter_transactions(raw_blocks(home)))


def height(home: Path) -> int:
    """The number of committed blocks of ``home``'s ledger."""
    with open_ledger(home) as store:
        return store.height
