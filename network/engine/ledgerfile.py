"""The embedded engine's ledger file: where it lives, its genesis block, opening and exporting it.

A channel's ledger is one SQLite file, ``HOME/ledger/<channel>.sqlite``
(:func:`ledger_path`). :func:`commit_genesis` writes block 0 into an empty
store, :func:`open_ledger` opens an existing ledger for reading without
starting a network, and :func:`export_ledger` writes the chain out in
Fabric's length-delimited block framing. These file-level helpers live apart
from :mod:`network.engine.network` so that readers (the CLI, audit) need not
reason about the running pipeline; every name stays importable from
:mod:`network.engine.network`.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from crypto.errors import AccessLedgerError
from network.engine.statedb import VALID, StateDB, TxIndexEntry
from network.fabric.blocks import block_header_hash, set_transactions_filter, write_block_stream
from network.fabric.configblock import genesis_block_for_home
from network.fabric.transactions import parse_envelope
from network.topology import Topology

__all__ = [
    "LEDGER_DIR",
    "commit_genesis",
    "export_ledger",
    "ledger_path",
    "open_ledger",
    "require_block",
]

#: Folder of the home holding the ledger databases.
LEDGER_DIR = "ledger"


def ledger_path(home: Path, channel: str) -> Path:
    """``HOME/ledger/<channel>.sqlite``: where the embedded engine keeps a channel's ledger."""
    return Path(home) / LEDGER_DIR / f"{channel}.sqlite"


def open_ledger(home: Path | str, *, verify: Literal["full", "tail"] = "full") -> StateDB:
    """Open the existing ledger of ``home`` for reading (chain verified), without a network.

    Raises ``ledger_missing`` if the network has never been started there.
    """
    home = Path(home)
    topology = Topology.load(home / "network.yaml")
    path = ledger_path(home, topology.channel)
    if not path.is_file():
        raise AccessLedgerError(
            f"{home} has no ledger yet ({path}); it is created when the network first starts",
            code="ledger_missing",
        )
    return StateDB(path, verify=verify)


def commit_genesis(store: StateDB, topology: Topology, home: Path, *, now: datetime) -> None:
    """Build the genesis block from the home's ``network.yaml`` and MSPs; commit it as block 0."""
    genesis = genesis_block_for_home(topology, home, now=now)
    # A Fabric peer records the genesis config transaction as VALID too.
    set_transactions_filter(genesis, [VALID])
    tx_id = parse_envelope(bytes(genesis.data.data[0])).tx_id
    store.commit_block(
        genesis.SerializeToString(),
        block_header_hash(genesis.header),
        transactions=[TxIndexEntry(0, tx_id, VALID)],
        writes=[],
    )


def export_ledger(store: StateDB, path: Path) -> int:
    """Write the store's blocks ``0..height-1`` to ``path`` atomically; return how many."""
    height = store.height
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as stream:
            count = write_block_stream(stream, (data for _, data in store.iter_blocks(0, height)))
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise AccessLedgerError(
                f"cannot write the export to {path}: {exc.strerror or exc}", code="export_failed"
            ) from None
        raise
    return count


def require_block(data: bytes | None) -> bytes:
    """``data``, or ``ledger_corrupt`` if a block the ledger refers to is missing."""
    if data is None:
        raise AccessLedgerError("the ledger is missing a block it refers to", code="ledger_corrupt")
    return data
