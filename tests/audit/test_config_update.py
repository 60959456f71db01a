"""Signatures are judged against the MSPs of the configuration in force at each block.

A small ledger is written by hand with genuine signatures: a transaction
endorsed by the Tax and Education peers (valid), a config update that removes
the Tax department from the channel, then the same kind of transaction again.
After the update, Tax's endorsement no longer counts, so a correct peer
records ENDORSEMENT_POLICY_FAILURE; a ledger claiming VALID is caught.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.peer import proposal_response_pb2

from audit.findings import FindingKind
from crypto.consortium import Consortium
from network.engine.proposal import (
    Proposal,
    create_proposal_response,
    create_signed_transaction,
    timestamp_from_datetime,
)
from network.fabric import blocks
from network.fabric.configblock import genesis_block_for_home
from network.fabric.transactions import channel_config, compute_tx_id
from network.topology import Topology
from tests.audit.conftest import replay

CHANNEL = "accessledger"
EPF = 10  # ENDORSEMENT_POLICY_FAILURE


def _endorsed_tx(consortium: Consortium, now: datetime, key: str) -> bytes:
    officer = consortium.identity("officer.education.sz1")
    proposal = Proposal.build(
        creator=officer.serialized(), channel_id=CHANNEL, chaincode_name="accessledger",
        function="put", args=[key, "v"], now=now,
    )  # fmt: skip
    responses = []
    for name in ("peer0.tax", "peer0.education"):
        peer = consortium.identity(name)
        responses.append(
            create_proposal_response(
                proposal,
                response=proposal_response_pb2.Response(status=200),
                results=b"",
                events=b"",
                chaincode_name="accessledger",
                chaincode_version="1.0",
                endorser=peer.serialized(),
                signer=peer.signer,
            )
        )
    return create_signed_transaction(proposal, responses, officer.signer).SerializeToString()


def _config_update(consortium: Consortium, config: Any, now: datetime) -> bytes:
    """A CONFIG transaction removing the Tax organisation, signed by an admin and the orderer."""
    updated = configtx_pb2.Config()
    updated.CopyFrom(config)
    updated.sequence = config.sequence + 1
    del updated.channel_group.groups["Application"].groups["Tax"]
    admin = consortium.identity("admin.publicsecurity")
    update = configtx_pb2.ConfigUpdate(channel_id=CHANNEL).SerializeToString()
    admin_header = common_pb2.SignatureHeader(
        creator=admin.serialized(), nonce=os.urandom(24)
    ).SerializeToString()
    envelope = configtx_pb2.ConfigUpdateEnvelope(
        config_update=update,
        signatures=[
            configtx_pb2.ConfigSignature(
                signature_header=admin_header, signature=admin.sign(admin_header + update)
            )
        ],
    )
    update_payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=common_pb2.ChannelHeader(
                type=common_pb2.HeaderType.CONFIG_UPDATE, channel_id=CHANNEL
            ).SerializeToString(),
            signature_header=admin_header,
        ),
        data=envelope.SerializeToString(),
    ).SerializeToString()
    config_envelope = configtx_pb2.ConfigEnvelope(
        config=updated,
        last_update=common_pb2.Envelope(
            payload=update_payload, signature=admin.sign(update_payload)
        ),
    )
    orderer = consortium.identity("orderer0.orderer")
    nonce = os.urandom(24)
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=common_pb2.ChannelHeader(
                type=common_pb2.HeaderType.CONFIG,
                channel_id=CHANNEL,
                tx_id=compute_tx_id(nonce, orderer.serialized()),
                timestamp=timestamp_from_datetime(now),
            ).SerializeToString(),
            signature_header=common_pb2.SignatureHeader(
                creator=orderer.serialized(), nonce=nonce
            ).SerializeToString(),
        ),
        data=config_envelope.SerializeToString(),
    ).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=orderer.sign(payload)).SerializeToString()


def _ledger(home: Path, now: datetime, last_code: int, target: Path) -> Path:
    consortium = Consortium.load(home)
    orderer = consortium.identity("orderer0.orderer")
    genesis = genesis_block_for_home(Topology.load(home / "network.yaml"), home, now=now)
    contents = [
        (_endorsed_tx(consortium, now + timedelta(minutes=1), "a"), 0, 0),
        (_config_update(consortium, channel_config(genesis.data.data), now), 0, 0),
        (_endorsed_tx(consortium, now + timedelta(minutes=3), "b"), last_code, 2),
    ]
    ledger = [genesis]
    for envelope, code, last_config in contents:
        block = blocks.new_block(
            len(ledger), blocks.block_header_hash(ledger[-1].header), [envelope]
        )
        blocks.set_transactions_filter(block, [code])
        blocks.sign_block(
            block, signer=orderer.signer, creator=orderer.serialized(), last_config=last_config
        )
        ledger.append(block)
    blocks.write_block_stream(target, ledger)
    return target


def test_endorsement_by_a_removed_department_no_longer_counts(
    demo_home: Path, demo_now: datetime, tmp_path: Path
) -> None:
    now = demo_now + timedelta(hours=1)
    correct = replay(_ledger(demo_home, now, EPF, tmp_path / "correct.bin")).report
    assert correct.ok, [str(f) for f in correct.findings]
    assert correct.stats.config_blocks == 2
    assert [(t.block, t.code, t.reproduced) for t in correct.invalid] == [
        (3, "ENDORSEMENT_POLICY_FAILURE", True)
    ]
    assert correct.invalid[0].reason.endswith("(EducationMSP:peer0.education)")

    claimed_valid = replay(_ledger(demo_home, now, 0, tmp_path / "claimed.bin")).report
    first = claimed_valid.findings[0]
    assert (first.kind, first.block) == (FindingKind.VALIDATION_CODE, 3)
    assert "unknown MSP 'TaxMSP'" in first.message
