"""Audit replay re-decides every channel config update from the blocks alone.

An embedded ledger onboards a department (signed by a majority of department
admins), the new department transacts, and a CRL revokes an officer; the
export replays clean. A compromised orderer that slips an extra organisation
into a committed config, and re-signs everything, is caught at that block:
the config is not what its ``last_update`` makes of the previous one. A
hand-written ledger shows the switch of configuration: once a genuine,
majority-signed update removes a department, its endorsements no longer count.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.peer import proposal_response_pb2

from audit.findings import FindingKind
from crypto.consortium import Consortium, create_demo_consortium
from crypto.identity import Identity
from network.engine.network import EmbeddedNetwork
from network.engine.proposal import Proposal, create_proposal_response, create_signed_transaction
from network.fabric import blocks
from network.fabric.configblock import genesis_block_for_home
from network.fabric.configtx import (
    apply_update,
    config_update_from_envelope,
    with_organization,
    with_revocation_list,
)
from network.fabric.transactions import channel_config
from network.fabric.validator import ChannelConfig
from network.topology import Topology
from tests.audit.conftest import replay
from tests.audit.forge import load_blocks, reseal, save_blocks
from tests.network.configtx_support import (
    CHANNEL,
    DEPARTMENTS,
    MAJORITY,
    config_transaction,
    crl_pem,
    endorsement_rule,
    new_department,
    register_in_home,
    signed_update,
)
from tests.network.engine.samples.asset_transfer_shim import AssetTransferChaincode

EPF = 10  # ENDORSEMENT_POLICY_FAILURE


def _admins(members: Consortium, orgs: tuple[str, ...]) -> list[Identity]:
    return [members.identity(f"admin.{org.lower()}") for org in orgs]


async def _engine_ledger(root: Path) -> tuple[Path, Path, int]:
    """A home whose ledger holds two config updates; returns (home, export, onboarding block)."""
    home = root / "home"
    now = datetime.now(UTC)
    create_demo_consortium(home, now=now)
    members = Consortium.load(home)
    network = EmbeddedNetwork.open(home, chaincodes={"accessledger": AssetTransferChaincode})
    try:
        transport = new_department(root / "transport", now=now)
        register_in_home(home, transport)
        rule = endorsement_rule([f"{o}MSP" for o in DEPARTMENTS] + [transport.spec.msp_id])
        onboarded = await network.update_config(
            signed_update(
                network.channel.config,
                with_organization(
                    network.channel.config, transport.spec, transport.msp, endorsement_policy=rule
                ),
                _admins(members, DEPARTMENTS[:MAJORITY]),
                creator=members.identity("admin.audit"),
                now=now,
            )
        )
        await network.submit(
            transport.officer, "accessledger", "CreateAsset", ["t1", "blue", "5", "tom", "100"]
        )
        officer = members.identity("officer.tax.sz1")
        crl = crl_pem(members.certificate_authority("Tax"), [officer.certificate], now)
        tax_admin = members.identity("admin.tax")
        await network.update_config(
            signed_update(
                network.channel.config,
                with_revocation_list(network.channel.config, "TaxMSP", crl),
                [tax_admin],
                creator=tax_admin,
                now=now,
            )
        )
        export = root / "ledger.bin"
        network.export(export)
    finally:
        await network.aclose()
    return home, export, onboarded.block_number


def _forge_config(block: Any, extra: Any, orderer: Identity) -> None:
    """Add organisation group ``extra`` to the block's committed config; re-sign as the orderer."""
    envelope = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(envelope.payload)
    config_envelope = configtx_pb2.ConfigEnvelope.FromString(payload.data)
    config_envelope.config.channel_group.groups["Application"].groups["Rogue"].CopyFrom(extra)
    payload.data = config_envelope.SerializeToString()
    signed = payload.SerializeToString()
    block.data.data[0] = common_pb2.Envelope(
        payload=signed, signature=orderer.sign(signed)
    ).SerializeToString()


async def test_config_updates_replay_clean_and_a_forged_config_is_named(tmp_path: Path) -> None:
    home, export, onboarding_block = await _engine_ledger(tmp_path)

    clean = replay(export).report
    assert clean.ok, [str(f) for f in clean.findings]
    assert clean.stats.config_blocks == 3  # genesis, onboarding, revocation

    ledger = load_blocks(export)
    application = read_config(ledger[onboarding_block]).channel_group.groups["Application"]
    _forge_config(
        ledger[onboarding_block],
        application.groups["Transport"],
        Consortium.load(home).identity("orderer0.orderer"),
    )
    reseal(ledger, onboarding_block, Consortium.load(home).identity("orderer0.orderer"))
    forged = tmp_path / "forged.bin"
    save_blocks(forged, ledger)

    report = replay(forged).report
    assert not report.ok
    first = report.findings[0]
    assert (first.kind, first.block) == (FindingKind.VALIDATION_CODE, onboarding_block)
    assert "INVALID_CONFIG_TRANSACTION" in first.message


def read_config(block: Any) -> Any:
    return channel_config(block.data.data)


# --- a department removed by a genuine update --------------------------------------------


def _endorsed_tx(members: Consortium, now: datetime, key: str) -> bytes:
    officer = members.identity("officer.education.sz1")
    proposal = Proposal.build(
        creator=officer.serialized(), channel_id=CHANNEL, chaincode_name="accessledger",
        function="put", args=[key, "v"], now=now,
    )  # fmt: skip
    responses = []
    for name in ("peer0.tax", "peer0.education"):
        peer = members.identity(name)
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
    envelope: bytes = create_signed_transaction(
        proposal, responses, officer.signer
    ).SerializeToString()
    return envelope


def _removal_ledger(home: Path, now: datetime, last_code: int, target: Path) -> Path:
    members = Consortium.load(home)
    orderer = members.identity("orderer0.orderer")
    genesis = genesis_block_for_home(Topology.load(home / "network.yaml"), home, now=now)
    config = channel_config(genesis.data.data)
    without_tax = configtx_pb2.Config()
    without_tax.CopyFrom(config)
    del without_tax.channel_group.groups["Application"].groups["Tax"]
    signers = _admins(members, tuple(o for o in DEPARTMENTS if o != "Tax")[:MAJORITY])
    update = signed_update(config, without_tax, signers, creator=signers[0], now=now)
    committed = apply_update(
        ChannelConfig.from_config(CHANNEL, config), config_update_from_envelope(update), now=now
    )
    contents = [
        (_endorsed_tx(members, now + timedelta(minutes=1), "a"), 0, 0),
        (config_transaction(committed, update, orderer, now + timedelta(minutes=2)), 0, 2),
        (_endorsed_tx(members, now + timedelta(minutes=3), "b"), last_code, 2),
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
    correct = replay(_removal_ledger(demo_home, now, EPF, tmp_path / "correct.bin")).report
    assert correct.ok, [str(f) for f in correct.findings]
    assert correct.stats.config_blocks == 2
    assert [(t.block, t.code, t.reproduced) for t in correct.invalid] == [
        (3, "ENDORSEMENT_POLICY_FAILURE", True)
    ]

    claimed_valid = replay(_removal_ledger(demo_home, now, 0, tmp_path / "claimed.bin")).report
    first = claimed_valid.findings[0]
    assert (first.kind, first.block) == (FindingKind.VALIDATION_CODE, 3)
    assert "unknown MSP 'TaxMSP'" in first.message


def test_a_removal_signed_by_too_few_admins_is_an_invalid_config_block(
    demo_home: Path, demo_now: datetime, tmp_path: Path
) -> None:
    # The same ledger with the update signed by one admin short of a majority: a peer
    # records INVALID_CONFIG_TRANSACTION and keeps the old config, so Tax still counts.
    now = demo_now + timedelta(hours=1)
    members = Consortium.load(demo_home)
    orderer = members.identity("orderer0.orderer")
    genesis = genesis_block_for_home(Topology.load(demo_home / "network.yaml"), demo_home, now=now)
    config = channel_config(genesis.data.data)
    without_tax = configtx_pb2.Config()
    without_tax.CopyFrom(config)
    del without_tax.channel_group.groups["Application"].groups["Tax"]
    signers = _admins(members, DEPARTMENTS[: MAJORITY - 1])
    update = signed_update(config, without_tax, signers, creator=signers[0], now=now)
    without_tax.sequence = 1
    without_tax.channel_group.groups["Application"].version = 1
    block = blocks.new_block(
        1,
        blocks.block_header_hash(genesis.header),
        [config_transaction(without_tax, update, orderer, now + timedelta(minutes=1))],
    )
    blocks.set_transactions_filter(block, [0])
    blocks.sign_block(block, signer=orderer.signer, creator=orderer.serialized(), last_config=1)
    target = tmp_path / "weak.bin"
    blocks.write_block_stream(target, [genesis, block])

    report = replay(target).report
    first = report.findings[0]
    assert (first.kind, first.block) == (FindingKind.VALIDATION_CODE, 1)
    assert "INVALID_CONFIG_TRANSACTION" in first.message
