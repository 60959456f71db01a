"""Chaincode simulation in worker processes: endorsement off the gateway's GIL.

A Fabric network simulates proposals on many peers at once. The embedded
engine runs every peer inside one Python process, where each simulation --
the contract's reads, its Cedar evaluation, its signature checks -- competes
for one GIL with HTTP, block validation and key release. A
:class:`SimulationPool` runs :meth:`ChaincodeHost.execute` in worker
processes instead, each with its own read-only connection to the ledger file.

This is safe because a simulation is a pure function of the signed proposal
and the committed state it reads, and nothing else: it writes nothing, and
its read-write set records the version of every key it read. A worker reads
the state at the height committed when its read transaction begins (SQLite
WAL shows other processes each block atomically, once committed), exactly as
a Fabric peer simulates at its own height; MVCC validation at commit refuses
a transaction whose reads a later block changed. The parent keeps everything
that holds a key or decides validity: it checks the proposal, chooses the
endorsing peers and signs as them, orders, validates and commits.

Workers are spawned (never forked: the parent runs threads), import the
chaincode by reference (a class, or any picklable chaincode object), and
each keeps one event loop for the coroutines of the contract API. A worker
that dies breaks the pool: the proposal it was simulating fails with
:class:`SimulationPoolError` (the gateway answers ``503``) and the pool
starts fresh workers for the next one. Workers end with the gateway, even
when it is killed: each watches its parent's process sentinel.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabric_protos.ledger.rwset import rwset_pb2 as _rwset_pb2
from fabric_protos.peer import chaincode_event_pb2 as _chaincode_event_pb2
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2

from crypto.errors import AccessLedgerError
from network.engine.chaincode_host import DEFAULT_TIMEOUT, ChaincodeHost
from network.engine.heap import settle_heap
from network.engine.proposal import Proposal
from network.engine.snapshot import StateSnapshot
from network.engine.stub import SimulationResult

chaincode_event_pb2: Any = _chaincode_event_pb2
proposal_response_pb2: Any = _proposal_response_pb2
rwset_pb2: Any = _rwset_pb2

__all__ = ["ChaincodeSpec", "SimulationPool", "SimulationPoolError"]


class SimulationPoolError(AccessLedgerError):
    """The pool cannot simulate: a chaincode it cannot ship, or a worker that died."""

    code = "simulation_pool_error"


@dataclass(frozen=True)
class ChaincodeSpec:
    """How a worker builds an installed chaincode: what :class:`ChaincodeHost` was given."""

    name: str
    chaincode: object
    version: str
    timeout: float | None

    @classmethod
    def of(cls, host: ChaincodeHost) -> ChaincodeSpec:
        return cls(host.name, host.source, host.version, host.timeout)


# -- the worker side (module level, so the spawned interpreter can find it) ----------------


class _Readers:
    """A worker's read-only connections to the ledger, handed out as snapshots."""

    def __init__(self, path: str) -> None:
        self._uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        self._idle: list[sqlite3.Connection] = []

    def snapshot(self) -> StateSnapshot:
        conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = sqlite3.connect(self._uri, uri=True, isolation_level=None, timeout=10.0)
        return StateSnapshot(self, conn)

    def _release_reader(self, conn: sqlite3.Connection) -> None:
        self._idle.append(conn)


@dataclass
class _Worker:
    hosts: dict[str, ChaincodeHost]
    readers: _Readers
    loop: asyncio.AbstractEventLoop


_worker: _Worker | None = None


def _exit_with_parent() -> None:
    """End this worker when the gateway process dies, even by SIGKILL (no orphan keeps the
    ledger file open): a daemon thread waits on the parent's process sentinel."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _start_worker(ledger_path: str, specs: list[ChaincodeSpec]) -> None:
    global _worker
    _exit_with_parent()
    hosts = {
        spec.name: ChaincodeHost(
            spec.chaincode, name=spec.name, version=spec.version, timeout=spec.timeout
        )
        for spec in specs
    }
    _worker = _Worker(hosts, _Readers(ledger_path), asyncio.new_event_loop())
    settle_heap()


def _simulate(
    proposal_bytes: bytes, signature: bytes | None
) -> tuple[str, str, bytes, bytes, bytes]:
    """Simulate one proposal on the committed state; the result as serialized messages."""
    worker = _worker
    if worker is None:
        raise RuntimeError("simulation worker not started")
    proposal = Proposal.from_bytes(proposal_bytes, signature)
    host = worker.hosts[proposal.chaincode_name]
    with worker.readers.snapshot() as view:
        result = worker.loop.run_until_complete(host.execute(proposal, view))
    return (
        result.tx_id,
        result.namespace,
        result.response.SerializeToString(),
        result.rwset_bytes,
        result.event_bytes,
    )


# -- the parent side -----------------------------------------------------------------------


class SimulationPool:
    """Worker processes that simulate proposals for the installed chaincodes (module docstring)."""

    def __init__(
        self, ledger_path: Path | str, hosts: Mapping[str, ChaincodeHost], *, workers: int
    ) -> None:
        if workers < 1:
            raise SimulationPoolError("a simulation pool needs at least one worker")
        specs = [ChaincodeSpec.of(host) for host in hosts.values()]
        try:
            pickle.dumps(specs)
        except Exception as exc:
            raise SimulationPoolError(
                f"the installed chaincodes cannot be sent to worker processes ({exc});"
                " install them by class or run simulations in process"
            ) from exc
        self.workers = workers
        self._names = frozenset(hosts)
        self._initargs = (str(ledger_path), specs)
        self._lock = threading.Lock()
        self._closed = False
        self._executor = self._spawn()
        #: Longest a simulation may take in a worker (the chaincodes' own execute timeout,
        #: plus a margin) before the parent gives up on it.
        self.timeout = max((h.timeout or DEFAULT_TIMEOUT for h in hosts.values()), default=0) + 10

    def _spawn(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=self._initargs,
        )

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Start fresh workers in place of a pool a dead worker broke (once per breakage)."""
        with self._lock:
            if self._closed or self._executor is not broken:
                return
            self._executor = self._spawn()
        broken.shutdown(wait=False, cancel_futures=True)

    def __contains__(self, chaincode: object) -> bool:
        return chaincode in self._names

    async def execute(self, proposal: Proposal) -> SimulationResult:
        """What :meth:`ChaincodeHost.execute` returns, computed in a worker process."""
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            call = loop.run_in_executor(
                executor, _simulate, proposal.proposal_bytes, proposal.signature
            )
            tx_id, namespace, response, rwset, event = await asyncio.wait_for(call, self.timeout)
        except BrokenProcessPool as exc:
            # The next proposal gets new workers; this one is reported, not retried (the
            # chaincode may have been what killed the worker).
            self._replace(executor)
            raise SimulationPoolError(
                f"a simulation worker died while simulating {proposal.tx_id}; the pool was"
                " restarted"
            ) from exc
        except TimeoutError as exc:
            raise SimulationPoolError(
                f"no simulation worker answered for {proposal.tx_id} within {self.timeout:.0f} s"
            ) from exc
        except Exception as exc:
            # Chaincode failures come back as error responses; anything raised here is the
            # pool's own (a ledger file it cannot open, a pool shut down under the call).
            raise SimulationPoolError(
                f"simulating {proposal.tx_id} in a worker failed: {type(exc).__name__}"
            ) from exc
        return SimulationResult(
            tx_id=tx_id,
            namespace=namespace,
            response=proposal_response_pb2.Response.FromString(response),
            rwset=rwset_pb2.TxReadWriteSet.FromString(rwset),
            event=chaincode_event_pb2.ChaincodeEvent.FromString(event) if event else None,
        )

    def warm_up(self) -> None:
        """Start every worker now (spawning takes about a second), not on the first proposal."""
        futures = [self._executor.submit(_noop) for _ in range(self.workers)]
        for future in futures:
            future.result()

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers."""
        processes = getattr(self._executor, "_processes", None) or {}
        return sorted(int(pid) for pid in processes)

    def close(self, *, grace: float = 5.0) -> None:
        """Stop the workers: queued simulations are cancelled, a running one gets ``grace``
        seconds to finish before its worker is terminated."""
        with self._lock:
            self._closed = True
            executor = self._executor
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(1.0)


def _noop() -> None:
    return None
