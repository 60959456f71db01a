"""Opening a home's channel ledger: everything the embedded network needs before it runs.

:func:`open_home_ledger` reads the home's ``network.yaml`` and consortium,
takes the ledger's writer lock (one process writes a ledger at a time),
opens the store and verifies its hash chain, commits the genesis block built
from the home on first use, reads the channel configuration in force from
the last config block, and wraps each installed chaincode in a
:class:`~network.engine.chaincode_host.ChaincodeHost`.

It lives apart from :mod:`network.engine.network` because it runs once,
before any of the running network's state exists:
:meth:`EmbeddedNetwork.open <network.engine.network.EmbeddedNetwork.open>`
wires the pipeline around the :class:`OpenedLedger` it returns. Whatever
fails on the way releases what was already taken.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from crypto.consortium import Consortium
from network.engine.chaincode_host import ChaincodeHost
from network.engine.committer import channel_config
from network.engine.ledgerfile import commit_genesis, ledger_path, require_block
from network.engine.statedb import StateDB
from network.engine.writerlock import WriterLock
from network.fabric.blocks import last_config_index, parse_block
from network.fabric.validator import ChannelConfig
from network.topology import Topology


@dataclass(frozen=True)
class OpenedLedger:
    """A home's verified ledger, held under its writer lock, with what runs on it."""

    topology: Topology
    consortium: Consortium
    store: StateDB
    #: The channel configuration in force (from the last config block).
    channel: ChannelConfig
    #: The installed chaincodes by name.
    chaincodes: dict[str, ChaincodeHost]
    writer_lock: WriterLock

    def close(self) -> None:
        """Close the store and release the lock (when no network could be built on them)."""
        self.store.close()
        self.writer_lock.release()


def chaincode_host(name: str, value: object, version: str) -> ChaincodeHost:
    """A :class:`ChaincodeHost` from a host, a chaincode/contract object, a class or a factory."""
    if isinstance(value, ChaincodeHost):
        return value
    if inspect.isclass(value) or (callable(value) and not hasattr(value, "invoke")):
        value = value()
    return ChaincodeHost(value, name=name, version=version)


def open_home_ledger(
    home: Path,
    *,
    chaincodes: Mapping[str, object],
    clock: Callable[[], datetime],
    verify: Literal["full", "tail"],
) -> OpenedLedger:
    """Open (creating on first use) the ledger of ``home``; see the module docstring.

    ``clock`` dates the genesis block if one is made. The caller owns the
    result and must :meth:`~OpenedLedger.close` it if it cannot use it.
    """
    topology = Topology.load(home / "network.yaml")
    consortium = Consortium.load(home)
    path = ledger_path(home, topology.channel)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer_lock = WriterLock(path)
    writer_lock.acquire()
    try:
        store = StateDB(path, verify=verify)
    except BaseException:
        writer_lock.release()
        raise
    try:
        if store.height == 0:
            commit_genesis(store, topology, home, now=clock())
        tip = parse_block(require_block(store.get_block(store.height - 1)))
        config_block = parse_block(require_block(store.get_block(last_config_index(tip))))
        channel = channel_config(config_block)
        version = topology.chaincode.version
        hosts = {
            name: chaincode_host(name, value, version if name == topology.chaincode.name else "1.0")
            for name, value in chaincodes.items()
        }
    except BaseException:
        store.close()
        writer_lock.release()
        raise
    return OpenedLedger(topology, consortium, store, channel, hosts, writer_lock)
