"""Test support: identities from a throwaway CA and direct commits into a StateDB.

These tests exercise storage and simulation, not the validating pipeline, so
:func:`commit` stores a real Fabric block (hash-chained, data-hashed) whose
envelopes are placeholders, and applies the given writes as if every
transaction were valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from crypto.ca import CertificateAuthority
from crypto.identity import Identity, IdentityKind
from network.engine.statedb import StateDB, StateWrite, TxIndexEntry
from network.engine.stub import SimulationResult
from network.fabric.blocks import block_header_hash, new_block

CHANNEL = "testchannel"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

_KINDS = {"client": IdentityKind.OFFICER, "peer": IdentityKind.PEER, "admin": IdentityKind.ADMIN}


@cache
def _ca(msp_id: str) -> CertificateAuthority:
    org = msp_id.removesuffix("MSP")
    return CertificateAuthority.create(
        org=org, msp_id=msp_id, domain=f"{org.lower()}.example.com", now=NOW - timedelta(days=1)
    )


@cache
def make_identity(
    name: str = "user1", msp_id: str = "Org1MSP", node_ou: str = "client"
) -> Identity:
    """A P-256 identity with a certificate from ``msp_id``'s throwaway CA."""
    ca = _ca(msp_id)
    cert, key = ca.issue(common_name=name, node_ou=node_ou, now=NOW - timedelta(days=1))
    return Identity(
        name=name,
        kind=_KINDS[node_ou],
        org=ca.org,
        msp_id=msp_id,
        certificate=cert,
        private_key=key,
        attributes={},
    )


def commit(
    db: StateDB,
    txs: Sequence[Mapping[str, Mapping[str, bytes | None]]],
    *,
    tx_ids: Sequence[str] | None = None,
    codes: Sequence[int] | None = None,
    timestamp: datetime = NOW,
) -> int:
    """Commit one block whose transaction ``i`` writes ``txs[i]`` (``{ns: {key: value}}``).

    ``None`` deletes. Writes of transactions whose code (default 0, VALID) is
    not valid are not applied, as a committing peer would do.
    """
    tx_ids = (
        list(tx_ids) if tx_ids is not None else [f"tx-{db.height}-{i}" for i in range(len(txs))]
    )
    codes = list(codes) if codes is not None else [0] * len(txs)
    envelopes = [f"envelope {tx_id}".encode() for tx_id in tx_ids]
    block = new_block(db.height, db.tip_hash, envelopes)
    seconds = int(timestamp.timestamp())
    entries = [
        TxIndexEntry(tx_num=i, tx_id=tx_ids[i], validation_code=codes[i], timestamp_seconds=seconds)
        for i in range(len(txs))
    ]
    writes = [
        StateWrite(tx_num=i, namespace=ns, key=key, value=value)
        for i, tx in enumerate(txs)
        if codes[i] == 0
        for ns, kvs in tx.items()
        for key, value in kvs.items()
    ]
    return db.commit_block(
        block.SerializeToString(),
        block_header_hash(block.header),
        transactions=entries,
        writes=writes,
    )


def writes_of(result: SimulationResult) -> dict[str, dict[str, bytes | None]]:
    """The writes of a simulation, per namespace, as :func:`commit` takes them."""
    out: dict[str, dict[str, bytes | None]] = {}
    for ns in result.rwset.ns_rwset:
        kv = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
        out[ns.namespace] = {w.key: None if w.is_delete else bytes(w.value) for w in kv.writes}
    return out


def commit_results(db: StateDB, *results: SimulationResult, timestamp: datetime = NOW) -> int:
    """Commit simulations as one block of valid transactions (no MVCC check: tests only)."""
    return commit(
        db,
        [writes_of(r) for r in results],
        tx_ids=[r.tx_id for r in results],
        timestamp=timestamp,
    )


def kv_rwset(result: SimulationResult, namespace: str) -> Any:
    """The decoded ``KVRWSet`` of ``namespace`` in a simulation result (or ``None``)."""
    for ns in result.rwset.ns_rwset:
        if ns.namespace == namespace:
            return kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
    return None


__all__ = [
    "CHANNEL",
    "NOW",
    "commit",
    "commit_results",
    "kv_rwset",
    "make_identity",
    "writes_of",
]
