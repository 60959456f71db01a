"""Tampering tools for the tamper suite: what an attacker holding some keys can do.

Every helper works on real ``common.Block`` messages. :func:`rewrite_transaction`
changes a transaction's read-write set, chaincode event or arguments and
re-signs it the way a colluding creator and colluding endorsers would;
:func:`reseal` recomputes data hashes and the hash chain from a block on and,
given the orderer's identity, re-signs the blocks -- a compromised orderer.
Whatever replay still finds after that is what the keys could not hide.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)

from crypto.identity import Identity
from network.fabric import blocks
from network.fabric.policy import EndorsementPolicies
from network.fabric.replay import LedgerReplay
from network.fabric.transactions import parse_envelope, proposal_hash


def load_blocks(path: Path) -> list[Any]:
    return list(blocks.read_block_stream(path))


def save_blocks(path: Path, ledger: Sequence[Any]) -> None:
    blocks.write_block_stream(path, ledger)


def find_tx(ledger: Sequence[Any], tx_id: str) -> tuple[int, int]:
    """``(block number, index)`` of a transaction."""
    for block in ledger:
        for index, raw in enumerate(block.data.data):
            if parse_envelope(bytes(raw)).tx_id == tx_id:
                return int(block.header.number), index
    raise KeyError(tx_id)


def reseal(ledger: Sequence[Any], start: int, orderer: Identity | None = None) -> None:
    """Recompute data hash and previous hash of blocks ``start..``; re-sign if ``orderer``."""
    for position in range(start, len(ledger)):
        block = ledger[position]
        block.header.data_hash = blocks.compute_data_hash(block.data)
        if position > 0:
            block.header.previous_hash = blocks.block_header_hash(ledger[position - 1].header)
        if orderer is not None:
            blocks.sign_block(
                block,
                signer=orderer.signer,
                creator=orderer.serialized(),
                last_config=blocks.last_config_index(block),
            )


def edit_writes(
    results: bytes, namespace: str, edit: Callable[[str, bytes], bytes | None]
) -> bytes:
    """Apply ``edit(key, value) -> new value (None: keep)`` to the writes of ``namespace``."""
    txrw = rwset_pb2.TxReadWriteSet.FromString(results)
    for ns in txrw.ns_rwset:
        if ns.namespace != namespace:
            continue
        kv = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
        for write in kv.writes:
            new = edit(write.key, bytes(write.value))
            if new is not None:
                write.value = new
        ns.rwset = kv.SerializeToString()
    return txrw.SerializeToString()


def json_edit(
    prefix: str, change: Callable[[dict[str, Any]], None]
) -> Callable[[str, bytes], bytes | None]:
    """An :func:`edit_writes` edit changing the JSON value of keys starting with ``prefix``."""

    def edit(key: str, value: bytes) -> bytes | None:
        if not key.startswith(prefix):
            return None
        document = json.loads(value)
        change(document)
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    return edit


def rewrite_transaction(
    block: Any,
    index: int,
    *,
    creator: Identity,
    endorsers: Sequence[Identity],
    results: Callable[[bytes], bytes] | None = None,
    event_payload: Callable[[bytes], bytes] | None = None,
    argument: Callable[[bytes], bytes] | None = None,
    endorsement_signers: Sequence[tuple[bytes, Callable[[bytes], bytes]]] | None = None,
) -> None:
    """Change transaction ``index`` of ``block`` and re-sign it (creator and endorsers).

    ``endorsement_signers`` overrides ``endorsers`` with raw ``(serialized identity,
    signer)`` pairs, e.g. a key the channel's MSPs never issued.
    """
    envelope = common_pb2.Envelope.FromString(block.data.data[index])
    payload = common_pb2.Payload.FromString(envelope.payload)
    tx = transaction_pb2.Transaction.FromString(payload.data)
    action = tx.actions[0]
    cap = transaction_pb2.ChaincodeActionPayload.FromString(action.payload)
    prp = proposal_response_pb2.ProposalResponsePayload.FromString(
        cap.action.proposal_response_payload
    )
    cc_action = proposal_pb2.ChaincodeAction.FromString(prp.extension)
    if results is not None:
        cc_action.results = results(bytes(cc_action.results))
    if event_payload is not None:
        event = chaincode_event_pb2.ChaincodeEvent.FromString(cc_action.events)
        event.payload = event_payload(bytes(event.payload))
        cc_action.events = event.SerializeToString()
    if argument is not None:
        cpp = proposal_pb2.ChaincodeProposalPayload.FromString(cap.chaincode_proposal_payload)
        spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(cpp.input)
        spec.chaincode_spec.input.args[1] = argument(bytes(spec.chaincode_spec.input.args[1]))
        cpp.input = spec.SerializeToString()
        cap.chaincode_proposal_payload = cpp.SerializeToString()
        prp.proposal_hash = proposal_hash(
            bytes(payload.header.channel_header),
            bytes(action.header),
            bytes(cap.chaincode_proposal_payload),
        )
    prp.extension = cc_action.SerializeToString()
    prp_bytes = prp.SerializeToString()
    cap.action.proposal_response_payload = prp_bytes
    signers = endorsement_signers or [(e.serialized(), e.signer) for e in endorsers]
    del cap.action.endorsements[:]
    for serialized, sign in signers:
        cap.action.endorsements.add(endorser=serialized, signature=sign(prp_bytes + serialized))
    action.payload = cap.SerializeToString()
    payload.data = tx.SerializeToString()
    envelope.payload = payload.SerializeToString()
    envelope.signature = creator.sign(envelope.payload)
    block.data.data[index] = envelope.SerializeToString()


def recompute_commit_hashes(ledger: Sequence[Any], chaincode: str = "accessledger") -> None:
    """Redo every block's COMMIT_HASH over the (forged) ledger, as a colluding peer would.

    The commit hash is peer metadata, signed by nobody; a forger holding a peer
    recomputes it over the validation codes and writes of the altered blocks.
    """
    replay = LedgerReplay(
        policies=lambda channel, _state: EndorsementPolicies(
            lambda ns: (
                channel.policies.get("/Channel/Application/Endorsement")
                if ns == chaincode
                else None
            )
        )
    )
    previous = b""
    for block in ledger:
        validation = replay.apply(block).validation
        if int(block.header.number) == 0:
            continue
        previous = blocks.compute_commit_hash(
            previous, bytes(validation.codes), validation.writes()
        )
        if blocks.commit_hash(block) is not None:
            blocks.set_commit_hash(block, previous)
