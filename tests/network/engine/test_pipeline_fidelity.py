"""Blocks written by the engine pass the checks applied to Hyperledger Fabric's own blocks.

The ledger is read back the way an auditor reads it -- from the exported
block file, with only the genesis block as trust anchor -- and checked with
the same ``network.fabric`` primitives the Fabric fixture tests use: data
hashes and the header hash chain, the orderer's signature on every block
against the config block's BlockValidation policy, every creator and
endorsement signature against the MSPs in the config block, and a full
re-validation from empty state that must reproduce the TRANSACTIONS_FILTER
codes the engine recorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from crypto.consortium import Consortium
from network.engine.errors import CommitError
from network.fabric.blocks import (
    last_config_index,
    read_block_stream,
    transactions_filter,
    verify_chain,
)
from network.fabric.policy import SignaturePolicy
from network.fabric.replay import LedgerReplay
from network.fabric.transactions import ENDORSER_TRANSACTION, SignedData, parse_envelope
from network.fabric.validator import (
    VALID,
    ChannelConfig,
    EndorsementPolicies,
    code_name,
    validate_block,
    verify_block_signatures,
)
from tests.network.engine.test_pipeline import CC, create_args, make_home, open_network


def check_fabric_ledger(blocks: list[Any], chaincodes: set[str]) -> dict[tuple[str, str], bytes]:
    """Run the Fabric checks over ``blocks``; return the world state the replay produced."""
    assert verify_chain(blocks) == len(blocks)
    channel = ChannelConfig.from_block(blocks[0])
    policy = channel.policies.get("/Channel/Application/Endorsement")
    assert isinstance(policy, SignaturePolicy)
    policies = EndorsementPolicies(lambda ns: policy if ns in chaincodes else None)
    versions: dict[tuple[str, str], tuple[int, int]] = {}
    values: dict[tuple[str, str], bytes] = {}
    tx_ids = {parse_envelope(bytes(blocks[0].data.data[0])).tx_id}
    for block in blocks[1:]:
        signers = verify_block_signatures(block, channel)
        assert [s.msp_id for s in signers] == ["OrdererMSP"]
        assert last_config_index(block) == 0
        for raw in block.data.data:
            tx = parse_envelope(bytes(raw))
            assert tx.header_type == ENDORSER_TRANSACTION
            assert tx.tx_id == tx.expected_tx_id
            channel.msps.verify(tx.signed_data)
            assert tx.action is not None
            for signed in tx.action.endorsement_signed_data():
                channel.msps.verify(SignedData(signed.identity, signed.data, signed.signature))
        result = validate_block(
            block,
            channel=channel,
            policies=policies,
            committed_version=lambda ns, key: versions.get((ns, key)),
            committed_range=lambda ns, start, end: sorted(
                (k, v)
                for (n, k), v in versions.items()
                if n == ns and k >= start and (not end or k < end)
            ),
            tx_id_exists=tx_ids.__contains__,
        )
        assert result.codes == transactions_filter(block), (
            f"block {block.header.number}: replay gives "
            f"{[code_name(c) for c in result.codes]}, the engine recorded "
            f"{[code_name(c) for c in transactions_filter(block)]}"
        )
        for write in result.writes():
            if write.value is None:
                versions.pop((write.namespace, write.key), None)
                values.pop((write.namespace, write.key), None)
            else:
                versions[(write.namespace, write.key)] = write.version
                values[(write.namespace, write.key)] = write.value
        tx_ids.update(r.tx_id for r in result.results if r.tx_id)
    return values


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path, max_message_count=5)


async def test_engine_blocks_pass_the_fabric_checks(home: Path, tmp_path: Path) -> None:
    members = Consortium.load(home)
    officer = members.identity("officer.publicsecurity.sz1")
    other = members.identity("officer.tax.cd1")
    async with open_network(home) as network:
        for i in range(3):
            await network.submit(officer, CC, "CreateAsset", create_args(f"a{i}"))
        # Two updates of one key in one block: VALID and MVCC_READ_CONFLICT.
        outcomes = await asyncio.gather(
            network.submit(officer, CC, "TransferAsset", ["a0", "alice"]),
            network.submit(other, CC, "TransferAsset", ["a0", "bob"]),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["CommitError", "SubmitResult"]
        # One endorsement where two are required: ENDORSEMENT_POLICY_FAILURE.
        with pytest.raises(CommitError):
            await network.submit(other, CC, "CreateAsset", create_args("z"), endorsing_orgs=["Tax"])
        await network.submit(officer, CC, "DeleteAsset", ["a2"])
        await network.submit(other, CC, "ReadAsset", ["a1"])  # reads only
        path = tmp_path / "ledger.bin"
        assert network.export(path) == network.height
        engine_state = {(CC, kv.key): kv.value for kv in network.store.get_state_range(CC, "", "")}

    blocks = list(read_block_stream(path))
    recorded = [code_name(c) for b in blocks[1:] for c in transactions_filter(b)]
    assert recorded.count("MVCC_READ_CONFLICT") == 1
    assert recorded.count("ENDORSEMENT_POLICY_FAILURE") == 1
    assert recorded.count("VALID") == len(recorded) - 2

    replayed = check_fabric_ledger(blocks, {CC})
    assert replayed == engine_state
    assert (CC, "a2") not in replayed
    assert (CC, "a1") in replayed

    # The project's ledger checker (the one run over the Fabric fixtures) agrees.
    replay = LedgerReplay(
        policies=lambda channel, _state: EndorsementPolicies(
            lambda ns: (
                channel.policies.get("/Channel/Application/Endorsement") if ns == CC else None
            )
        )
    )
    outcomes = replay.replay(blocks)
    assert [o.mismatches for o in outcomes] == [[] for _ in blocks]
    assert [o.commit_hash_matches for o in outcomes[1:]] == [True] * (len(blocks) - 1)
    assert {(CC, k): v for k, v in replay.state.namespace(CC).items()} == engine_state


async def test_checker_rejects_a_block_signed_by_someone_else(home: Path, tmp_path: Path) -> None:
    from network.fabric.blocks import sign_block
    from network.fabric.errors import BlockSignatureError

    members = Consortium.load(home)
    officer = members.identity("officer.publicsecurity.sz1")
    async with open_network(home) as network:
        result = await network.submit(officer, CC, "CreateAsset", create_args("s"))
        blocks = [network.get_block(n) for n in range(network.height)]
    channel = ChannelConfig.from_block(blocks[0])
    # A genuine channel member, but not the ordering service.
    imposter = members.identity("peer0.tax")
    block = blocks[result.block_number]
    assert transactions_filter(block) == [VALID]
    assert len(verify_block_signatures(block, channel)) == 1
    sign_block(block, signer=imposter.signer, creator=imposter.serialized(), last_config=0)
    with pytest.raises(BlockSignatureError):
        verify_block_signatures(block, channel)
