"""Channel config updates through the running embedded network (``update_config``).

A fresh demo consortium per test, real signatures, real SQLite: a department
is onboarded by a majority of department admins and can then transact,
refused updates write nothing, a CRL signed by the org's admin locks its
officer out, and all of it survives a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fabric_protos.common import configtx_pb2

from crypto.consortium import Consortium
from crypto.identity import Identity
from network.engine.committer import chaincode_policies
from network.engine.endorser import channel_endorsement_policy
from network.engine.errors import ConfigUpdateRefusedError, EndorseError, SubmitError
from network.engine.network import EmbeddedNetwork
from network.fabric.blocks import last_config_index
from network.fabric.configtx import with_organization, with_revocation_list
from network.fabric.replay import LedgerReplay
from network.fabric.transactions import parse_envelope
from network.fabric.validator import ChannelConfig
from tests.network.configtx_support import (
    DEPARTMENTS,
    MAJORITY,
    NewDepartment,
    crl_pem,
    endorsement_rule,
    new_department,
    register_in_home,
    signed_update,
)
from tests.network.engine.test_pipeline import (
    CC,
    block_codes,
    create_args,
    endorser_msps,
    make_home,
    open_network,
)

# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path, batch_timeout_ms=20)


@pytest.fixture
async def network(home: Path) -> AsyncIterator[EmbeddedNetwork]:
    net = open_network(home)
    yield net
    await net.aclose()


@pytest.fixture
def members(home: Path) -> Consortium:
    return Consortium.load(home)


@pytest.fixture
def transport(tmp_path: Path) -> NewDepartment:
    return new_department(tmp_path / "transport", now=datetime.now(UTC))


def admins(members: Consortium, count: int) -> list[Identity]:
    return [members.identity(f"admin.{org.lower()}") for org in DEPARTMENTS[:count]]


def onboarding(
    network: EmbeddedNetwork, members: Consortium, transport: NewDepartment, signers: list[Identity]
) -> bytes:
    """A CONFIG_UPDATE adding Transport (and its peer to the endorsement policy)."""
    rule = endorsement_rule([f"{org}MSP" for org in DEPARTMENTS] + [transport.spec.msp_id])
    updated = with_organization(
        network.channel.config, transport.spec, transport.msp, endorsement_policy=rule
    )
    return signed_update(
        network.channel.config,
        updated,
        signers,
        creator=members.identity("admin.tax"),
        now=datetime.now(UTC),
    )


def revoking(network: EmbeddedNetwork, members: Consortium, officer: Identity) -> bytes:
    """A CONFIG_UPDATE adding a CRL for ``officer`` to its MSP, signed by its org's admin."""
    ca = members.certificate_authority(officer.org)
    crl = crl_pem(ca, [officer.certificate], datetime.now(UTC))
    updated = with_revocation_list(network.channel.config, officer.msp_id, crl)
    admin = members.identity(f"admin.{officer.org.lower()}")
    return signed_update(
        network.channel.config, updated, [admin], creator=admin, now=datetime.now(UTC)
    )


def update_tx_id(envelope: bytes) -> str:
    return parse_envelope(envelope, strict=False).tx_id


# --- onboarding ------------------------------------------------------------------------------


async def test_majority_of_admins_onboards_a_department_that_can_then_transact(
    home: Path, network: EmbeddedNetwork, members: Consortium, transport: NewDepartment
) -> None:
    seen: list[ChannelConfig] = []
    network.add_config_listener(seen.append)
    await network.submit(
        members.identity("officer.education.sz1"), CC, "CreateAsset", create_args("e1")
    )
    # The department's material reaches the home after the network opened.
    register_in_home(home, transport)
    height = network.height

    commit = await network.update_config(
        onboarding(network, members, transport, admins(members, MAJORITY))
    )

    assert (commit.block_number, commit.sequence) == (height, 1)
    block = network.get_block(commit.block_number)
    assert len(block.data.data) == 1
    tx = parse_envelope(bytes(block.data.data[0]))
    assert (tx.header_type_name, tx.tx_id) == ("CONFIG", commit.tx_id)
    assert tx.creator == members.identity("orderer0.orderer").serialized()
    assert block_codes(block) == ["VALID"]
    assert last_config_index(block) == commit.block_number
    assert network.channel.sequence == 1
    assert "TransportMSP" in network.channel.msps.msps
    assert [c.sequence for c in seen] == [1]
    assert seen[0] is network.channel

    result = await network.submit(transport.officer, CC, "CreateAsset", create_args("t1"))

    assert result.validation_code_name == "VALID"
    assert sorted(endorser_msps(network.get_block(result.block_number), 0)) == [
        "AuditMSP",
        "TransportMSP",
    ]
    later = network.get_block(result.block_number)
    assert last_config_index(later) == commit.block_number


async def test_pending_transactions_are_cut_into_a_block_before_the_config_block(
    tmp_path: Path, transport: NewDepartment
) -> None:
    home = make_home(tmp_path, batch_timeout_ms=60_000, max_message_count=50)
    members = Consortium.load(home)
    network = open_network(home)
    try:
        officer = members.identity("officer.education.sz1")
        submitted = asyncio.create_task(
            network.submit(officer, CC, "CreateAsset", create_args("p1"))
        )
        while network.orderer.pending == 0:
            await asyncio.sleep(0.005)

        commit = await network.update_config(
            onboarding(network, members, transport, admins(members, MAJORITY))
        )
        result = await submitted

        assert result.block_number == commit.block_number - 1
        assert len(network.get_block(result.block_number).data.data) == 1
    finally:
        await network.aclose()


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signers",
    [
        pytest.param(lambda m: admins(m, MAJORITY - 1), id="too-few-admins"),
        pytest.param(
            lambda m: (
                [m.identity(f"officer.{org.lower()}.sz1") for org in ("Education", "HRSS")]
                + [
                    m.identity(f"registrar.{org.lower()}.sz1")
                    for org in ("Tax", "Health", "Housing")
                ]
            ),
            id="officers-not-admins",
        ),
    ],
)
async def test_unauthorized_updates_are_refused_and_write_nothing(
    network: EmbeddedNetwork, members: Consortium, transport: NewDepartment, signers: Any
) -> None:
    envelope = onboarding(network, members, transport, signers(members))
    height, tip = network.height, network.tip_hash

    with pytest.raises(ConfigUpdateRefusedError) as refused:
        await network.update_config(envelope)

    assert refused.value.code == "config_update_unauthorized"
    assert refused.value.tx_id == update_tx_id(envelope)
    assert "/Channel/Application/Admins" in refused.value.message
    assert (network.height, network.tip_hash) == (height, tip)
    assert network.channel.sequence == 0
    assert network.orderer.channel.sequence == 0


async def test_a_stale_update_is_refused(
    network: EmbeddedNetwork, members: Consortium, transport: NewDepartment, tmp_path: Path
) -> None:
    majority = admins(members, MAJORITY)
    first = onboarding(network, members, transport, majority)
    water = new_department(tmp_path / "water", org="Water", now=datetime.now(UTC))
    second = onboarding(network, members, water, majority)  # same original config
    await network.update_config(first)
    height = network.height

    with pytest.raises(ConfigUpdateRefusedError) as refused:
        await network.update_config(second)
    assert refused.value.code == "config_update_stale"
    assert network.height == height
    # Replaying the committed update is refused the same way.
    with pytest.raises(ConfigUpdateRefusedError, match="version"):
        await network.update_config(first)
    assert (network.height, network.channel.sequence) == (height, 1)


async def test_an_update_leaving_the_engine_without_a_policy_it_needs_is_refused(
    network: EmbeddedNetwork, members: Consortium
) -> None:
    updated = configtx_pb2.Config()
    updated.CopyFrom(network.channel.config)
    del updated.channel_group.groups["Application"].policies["Endorsement"]
    envelope = signed_update(
        network.channel.config,
        updated,
        admins(members, MAJORITY),
        creator=members.identity("admin.tax"),
        now=datetime.now(UTC),
    )

    with pytest.raises(ConfigUpdateRefusedError) as refused:
        await network.update_config(envelope)
    assert refused.value.code == "invalid_config_update"
    assert "/Channel/Application/Endorsement" in refused.value.message
    assert network.height == 1


async def test_a_config_update_is_not_an_ordinary_broadcast(
    network: EmbeddedNetwork, members: Consortium, transport: NewDepartment
) -> None:
    envelope = onboarding(network, members, transport, admins(members, MAJORITY))

    with pytest.raises(SubmitError, match="config updates go through update_config"):
        await network.broadcast(envelope)
    assert network.height == 1


async def test_a_closed_network_refuses_config_updates(
    home: Path, members: Consortium, transport: NewDepartment
) -> None:
    network = open_network(home)
    await network.aclose()

    with pytest.raises(ConfigUpdateRefusedError) as refused:
        await network.update_config(onboarding(network, members, transport, admins(members, 8)))
    assert refused.value.code == "network_closed"


# --- revocation and restart --------------------------------------------------------------------


async def test_a_revoked_officer_is_locked_out_and_it_survives_a_restart(
    home: Path, members: Consortium, transport: NewDepartment
) -> None:
    officer = members.identity("officer.tax.sz1")
    colleague = members.identity("officer.tax.cd1")
    network = open_network(home)  # the genesis block is written from network.yaml here
    register_in_home(home, transport)
    try:
        await network.update_config(
            onboarding(network, members, transport, admins(members, MAJORITY))
        )
        # Endorsed while still valid, broadcast after the CRL is in force.
        gateway = network.gateway(officer)
        endorsed = await gateway.endorse(gateway.new_proposal(CC, "CreateAsset", create_args("x1")))
        commit = await network.update_config(revoking(network, members, officer))
        assert commit.sequence == 2

        with pytest.raises(SubmitError, match="revoked"):
            await gateway.submit_transaction(gateway.sign_transaction(endorsed))
        with pytest.raises(EndorseError, match="revoked"):
            await network.submit(officer, CC, "CreateAsset", create_args("x2"))
        ok = await network.submit(colleague, CC, "CreateAsset", create_args("x3"))
        assert ok.validation_code_name == "VALID"
        exported = network.export(home / "export.bin")
    finally:
        await network.aclose()

    reopened = open_network(home)
    try:
        assert reopened.channel.sequence == 2
        assert reopened.height == exported
        with pytest.raises(EndorseError, match="revoked"):
            await reopened.submit(officer, CC, "CreateAsset", create_args("x4"))
        result = await reopened.submit(transport.officer, CC, "CreateAsset", create_args("t2"))
        assert result.validation_code_name == "VALID"
        assert "TransportMSP" in endorser_msps(reopened.get_block(result.block_number), 0)
        blocks = [reopened.get_block(n) for n in range(reopened.height)]
    finally:
        await reopened.aclose()

    # An independent replay reaches the same verdicts, config blocks included.
    # The embedded engine endorses every installed chaincode by the channel's default policy.
    replay = LedgerReplay(
        policies=lambda channel, state: chaincode_policies(
            lambda name: name == CC, channel_endorsement_policy(channel)
        )
    )
    for replayed in replay.replay(blocks):
        assert replayed.mismatches == []
        assert replayed.commit_hash_matches in (None, True)
    assert replay.channel is not None
    assert replay.channel.sequence == 2


async def test_the_config_in_force_at_a_height_is_the_last_config_block_below_it(
    network: EmbeddedNetwork, members: Consortium
) -> None:
    # Key custodians ask with the height of the snapshot they read: a snapshot that holds
    # the revoking config block must see the CRL, one taken just before it must not.
    officer = members.identity("officer.tax.sz1")
    before = network.committer.channel_at(network.height)
    assert not before.msps.msps["TaxMSP"].revokes(officer.certificate)
    commit = await network.update_config(revoking(network, members, officer))
    old = network.committer.channel_at(commit.block_number)
    new = network.committer.channel_at(commit.block_number + 1)
    assert old is before
    assert new.sequence == commit.sequence == before.sequence + 1
    assert new.msps.msps["TaxMSP"].revokes(officer.certificate)
    assert network.committer.channel_at(network.height) is new is network.committer.channel
