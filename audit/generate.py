"""Write large, genuinely signed ledgers for replay benchmarks.

:func:`generate_ledger` writes a block stream (the ``ledger export`` format)
for a demo consortium: block 0 is the home's genesis config block; every
later block holds ``per_block`` endorser transactions of AccessLedger's
chaincode namespace, each built the way the embedded engine builds them --
a proposal signed into its transaction ID by an officer, a proposal response
endorsed by two departments' peers (the demo channel's ``OutOf(2, ...)``
policy), the envelope signed by the officer -- and the block is signed by
the orderer and carries VALID validation codes.

Each transaction reads and rewrites one of ``keys`` state keys (``n mod
keys``) at the version the previous writer left, so replay has real MVCC
work but no conflicts (``keys >= per_block`` keeps a block from touching a
key twice). Nothing here runs chaincode: the read-write sets are built
directly, which is what makes a million transactions take minutes.

Envelopes are built in worker processes; only block assembly, hashing and
the orderer's signature are sequential.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fabric_protos.ledger.rwset import rwset_pb2 as _rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2 as _kv_rwset_pb2
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2

from audit.errors import AuditInputError
from crypto.consortium import Consortium
from crypto.identity import Identity, IdentityKind
from network.engine.proposal import (
    Proposal,
    create_proposal_response,
    create_signed_transaction,
)
from network.fabric import blocks
from network.fabric.configblock import genesis_block_for_home
from network.topology import Topology

rwset_pb2: Any = _rwset_pb2
kv_rwset_pb2: Any = _kv_rwset_pb2
proposal_response_pb2: Any = _proposal_response_pb2

#: Transactions a worker builds per task.
_TASK_BLOCKS = 4


@dataclass(frozen=True)
class LedgerSpec:
    """What to generate; ``start`` is the first transaction's timestamp."""

    home: Path
    transactions: int
    per_block: int
    keys: int
    start: datetime

    def __post_init__(self) -> None:
        if self.transactions < 1 or self.per_block < 1:
            raise AuditInputError("need at least one transaction and one per block")
        if self.keys < self.per_block:
            raise AuditInputError("keys must be at least per_block (no key twice in a block)")

    @property
    def blocks(self) -> int:
        """Number of transaction blocks (block 0, the genesis block, not counted)."""
        return -(-self.transactions // self.per_block)


@dataclass(frozen=True)
class GeneratedLedger:
    path: Path
    blocks: int
    transactions: int
    bytes: int


class _Actors:
    """The identities that sign: two officers, two endorsing peers, the orderer."""

    def __init__(self, home: Path) -> None:
        consortium = Consortium.load(home)
        topology = Topology.load(home / "network.yaml")
        self.channel = topology.channel
        self.chaincode = topology.chaincode.name
        self.version = topology.chaincode.version
        officers = [i for i in consortium.identities() if i.kind == IdentityKind.OFFICER]
        peers = [i for i in consortium.identities() if i.kind == IdentityKind.PEER]
        if len(officers) < 1 or len(peers) < 2:
            raise AuditInputError(f"{home} needs at least one officer and two peers")
        self.officers: list[Identity] = officers[:2]
        self.peers: list[Identity] = peers[:2]
        self.orderer = consortium.identity(topology.orderer.identity)
        self.officer_ids = [o.serialized() for o in self.officers]
        self.peer_ids = [p.serialized() for p in self.peers]


# Loaded once per worker process (loading keys takes longer than a block of envelopes).
_actors: dict[Path, _Actors] = {}


def _worker_actors(home: Path) -> _Actors:
    if home not in _actors:
        _actors[home] = _Actors(home)
    return _actors[home]


def _rwset(namespace: str, key: str, version: tuple[int, int] | None, value: bytes) -> bytes:
    read = kv_rwset_pb2.KVRead(key=key)
    if version is not None:
        read.version.block_num, read.version.tx_num = version
    kv = kv_rwset_pb2.KVRWSet(reads=[read], writes=[kv_rwset_pb2.KVWrite(key=key, value=value)])
    return bytes(
        rwset_pb2.TxReadWriteSet(
            data_model=rwset_pb2.TxReadWriteSet.KV,
            ns_rwset=[rwset_pb2.NsReadWriteSet(namespace=namespace, rwset=kv.SerializeToString())],
        ).SerializeToString()
    )


def _version_of(n: int, spec: LedgerSpec) -> tuple[int, int] | None:
    """Where transaction ``n``'s key was last written (``None``: never)."""
    previous = n - spec.keys
    if previous < 0:
        return None
    return 1 + previous // spec.per_block, previous % spec.per_block


def _envelope(n: int, spec: LedgerSpec, actors: _Actors) -> bytes:
    officer = actors.officers[n % len(actors.officers)]
    key = f"bench/{n % spec.keys:08d}"
    value = f"value {n}".encode()
    proposal = Proposal.build(
        creator=actors.officer_ids[n % len(actors.officers)],
        channel_id=actors.channel,
        chaincode_name=actors.chaincode,
        function="put",
        args=[key, value],
        now=spec.start + timedelta(milliseconds=n),
    )
    response = proposal_response_pb2.Response(status=200)
    first = create_proposal_response(
        proposal,
        response=response,
        results=_rwset(actors.chaincode, key, _version_of(n, spec), value),
        events=b"",
        chaincode_name=actors.chaincode,
        chaincode_version=actors.version,
        endorser=actors.peer_ids[0],
        signer=actors.peers[0].signer,
    )
    second = proposal_response_pb2.ProposalResponse()
    second.CopyFrom(first)
    payload = bytes(first.payload)
    second.endorsement.endorser = actors.peer_ids[1]
    second.endorsement.signature = actors.peers[1].sign(payload + actors.peer_ids[1])
    envelope = create_signed_transaction(proposal, [first, second], officer.signer)
    return bytes(envelope.SerializeToString())


def build_block_envelopes(spec: LedgerSpec, first_block: int, count: int) -> list[list[bytes]]:
    """Worker task: the envelopes of transaction blocks ``first_block .. first_block+count-1``."""
    actors = _worker_actors(spec.home)
    out = []
    for number in range(first_block, first_block + count):
        start = (number - 1) * spec.per_block
        stop = min(spec.transactions, start + spec.per_block)
        out.append([_envelope(n, spec, actors) for n in range(start, stop)])
    return out


def _envelope_batches(spec: LedgerSpec, workers: int) -> Iterator[list[bytes]]:
    tasks = [
        (first, min(_TASK_BLOCKS, spec.blocks - first + 1))
        for first in range(1, spec.blocks + 1, _TASK_BLOCKS)
    ]
    if workers <= 0:
        for first, count in tasks:
            yield from build_block_envelopes(spec, first, count)
        return
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # Bounded read-ahead: submit a window of tasks, consume in order.
        window = 4 * workers
        futures = [pool.submit(build_block_envelopes, spec, f, c) for f, c in tasks[:window]]
        next_task = window
        while futures:
            batch = futures.pop(0).result()
            if next_task < len(tasks):
                first, count = tasks[next_task]
                futures.append(pool.submit(build_block_envelopes, spec, first, count))
                next_task += 1
            yield from batch


def generate_ledger(
    path: Path,
    spec: LedgerSpec,
    *,
    workers: int = 0,
    on_block: Callable[[int, int], None] | None = None,
) -> GeneratedLedger:
    """Write the ledger ``spec`` describes to ``path``; see the module docstring.

    ``on_block(block_number, transactions_so_far)`` reports progress.
    """
    actors = _Actors(spec.home)
    topology = Topology.load(spec.home / "network.yaml")
    genesis = genesis_block_for_home(topology, spec.home, now=spec.start - timedelta(seconds=1))
    orderer_id = actors.orderer.serialized()
    written = 0
    with path.open("wb") as stream:
        written += stream.write(blocks.encode_delimited(genesis))
        previous = blocks.block_header_hash(genesis.header)
        number = 0
        transactions = 0
        for envelopes in _envelope_batches(spec, workers):
            number += 1
            block = blocks.new_block(number, previous, envelopes)
            blocks.set_transactions_filter(block, [0] * len(envelopes))
            blocks.sign_block(
                block, signer=actors.orderer.signer, creator=orderer_id, last_config=0
            )
            written += stream.write(blocks.encode_delimited(block))
            previous = blocks.block_header_hash(block.header)
            transactions += len(envelopes)
            if on_block is not None:
                on_block(number, transactions)
    return GeneratedLedger(path, number + 1, transactions, written)
