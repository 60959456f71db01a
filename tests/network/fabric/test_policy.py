"""Signature-policy language, cauthdsl evaluation and implicit-meta policies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from network.fabric import blocks
from network.fabric.errors import ConfigError, PolicyNotSatisfiedError, PolicySyntaxError
from network.fabric.msp import MSPRegistry, ValidatedIdentity
from network.fabric.policy import (
    PolicyManager,
    SignaturePolicy,
    evaluate,
    format_signature_policy,
    parse_signature_policy,
)
from network.fabric.transactions import SignedData
from network.fabric.validator import ChannelConfig
from tests.fabric_fixtures import FABRIC_FIXTURES
from tests.network.fabric.test_support import Network, genesis

FIXTURES = FABRIC_FIXTURES


@pytest.fixture(scope="module")
def fabric_channel() -> ChannelConfig:
    return ChannelConfig.from_block(
        blocks.parse_block((FIXTURES / "blocks" / "000000.block").read_bytes())
    )


def _config_policy(channel: ChannelConfig, *path: str) -> bytes:
    group = channel.config.channel_group
    for name in path[:-1]:
        group = group.groups[name]
    return bytes(group.policies[path[-1]].policy.value)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')",
            ("Application", "Org1MSP", "Readers"),
        ),
        ("OR('Org1MSP.admin', 'Org1MSP.client')", ("Application", "Org1MSP", "Writers")),
        ("OR('Org2MSP.admin')", ("Application", "Org2MSP", "Admins")),
        ("OR('Org2MSP.peer')", ("Application", "Org2MSP", "Endorsement")),
        ("OR('OrdererMSP.member')", ("Orderer", "OrdererOrg", "Writers")),
    ],
)
def test_parser_output_is_byte_identical_to_configtxgen(
    fabric_channel: ChannelConfig, text: str, path: tuple[str, ...]
) -> None:
    assert parse_signature_policy(text).SerializeToString() == _config_policy(fabric_channel, *path)


def test_gates_nesting_and_principal_numbering() -> None:
    envelope = parse_signature_policy(
        "AND('A.peer', OR('B.peer', 'A.peer'), OutOf(2, 'C.member', 'D.admin', \"B.peer\"))"
    )
    assert envelope.version == 0
    assert len(envelope.identities) == 4  # A.peer, B.peer, C.member, D.admin; repeats share
    rule = envelope.rule.n_out_of
    assert rule.n == 3
    assert rule.rules[0].signed_by == 0
    assert [r.signed_by for r in rule.rules[1].n_out_of.rules] == [1, 0]
    assert rule.rules[1].n_out_of.n == 1
    assert rule.rules[2].n_out_of.n == 2
    assert [r.signed_by for r in rule.rules[2].n_out_of.rules] == [2, 3, 1]
    assert format_signature_policy(envelope) == (
        "OutOf(3, 'A.peer', OutOf(1, 'B.peer', 'A.peer'), "
        "OutOf(2, 'C.member', 'D.admin', 'B.peer'))"
    )


@pytest.mark.parametrize(
    "text",
    ["and('A.peer','B.peer')", "And('A.peer', 'B.peer')", "AND ( 'A.peer' , 'B.peer' )"],
)
def test_gate_spellings_fabric_accepts(text: str) -> None:
    assert parse_signature_policy(text) == parse_signature_policy("AND('A.peer', 'B.peer')")


def test_single_principal_and_dotted_msp_ids() -> None:
    envelope = parse_signature_policy("'my.org-1.MSP.orderer'")
    assert envelope.rule.signed_by == 0
    assert format_signature_policy(envelope) == "'my.org-1.MSP.orderer'"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("AND(", "ends early"),
        ("AND()", "expected AND, OR, OutOf or a quoted principal"),
        ("OR('A.peer'", "ends early"),
        ("AND('A.peer',)", "expected AND, OR, OutOf or a quoted principal"),
        ("AND('A.peer') 'B.peer'", "unexpected"),
        ("XOR('A.peer', 'B.peer')", "expected AND, OR, OutOf"),
        ("OutOf(3, 'A.peer', 'B.peer')", "between 1 and 2"),
        ("OutOf(0, 'A.peer')", "between 1 and 1"),
        ("OutOf('A.peer', 'B.peer')", "needs a number"),
        ("OutOf(1 'A.peer')", "expected ','"),
        ("'Org1MSP'", "is not 'MSPID.role'"),
        ("'Org1MSP.superuser'", "is not 'MSPID.role'"),
        ("AND('A.peer', 'B.peer", "unexpected character"),
        ("AND('A.peer'; 'B.peer')", "unexpected character"),
        ("Org1MSP.peer", "must be quoted"),
        ("AND(Org1MSP.peer)", "must be quoted"),
    ],
)
def test_malformed_policies_raise_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(PolicySyntaxError, match=message) as info:
        parse_signature_policy(text)
    assert info.value.code == "policy_syntax"


@given(st.text(max_size=60))
def test_parser_never_fails_with_anything_but_a_syntax_error(text: str) -> None:
    try:
        envelope = parse_signature_policy(text)
    except PolicySyntaxError:
        return
    assert envelope.identities


# --- evaluation ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def net() -> Network:
    return Network()


@pytest.fixture(scope="module")
def channel(net: Network) -> ChannelConfig:
    return ChannelConfig.from_block(genesis(net.config))


def _ids(msps: MSPRegistry, *members: Any) -> list[ValidatedIdentity]:
    return [msps.deserialize(m.serialized) for m in members]


def test_signed_by_each_identity_used_once(net: Network, channel: ChannelConfig) -> None:
    both = SignaturePolicy.from_string("AND('Org1MSP.member', 'Org1MSP.member')", channel.msps)
    with pytest.raises(PolicyNotSatisfiedError, match="not satisfied"):
        both.evaluate_identities(_ids(channel.msps, net.peer1))
    both.evaluate_identities(_ids(channel.msps, net.peer1, net.client1))


def test_greedy_matching_is_fabric_s(net: Network, channel: ChannelConfig) -> None:
    """cauthdsl assigns each principal the first unused matching identity and never
    backtracks; the order of signatures therefore matters, exactly as in Fabric."""
    policy = SignaturePolicy.from_string("AND('Org1MSP.member', 'Org1MSP.peer')", channel.msps)
    policy.evaluate_identities(_ids(channel.msps, net.client1, net.peer1))
    with pytest.raises(PolicyNotSatisfiedError):
        policy.evaluate_identities(_ids(channel.msps, net.peer1, net.client1))


def test_roles(net: Network, channel: ChannelConfig) -> None:
    msps = channel.msps
    cases = {
        "OR('Org1MSP.peer')": (net.peer1, net.client1),
        "OR('Org1MSP.client')": (net.client1, net.peer1),
        "OR('Org1MSP.admin')": (net.admin1, net.client1),
        "OR('OrdererMSP.orderer')": (net.orderer, net.peer1),
        "OR('Org2MSP.member')": (net.client2, net.client1),
    }
    for text, (accepted, rejected) in cases.items():
        policy = SignaturePolicy.from_string(text, msps)
        policy.evaluate_identities(_ids(msps, accepted))
        with pytest.raises(PolicyNotSatisfiedError):
            policy.evaluate_identities(_ids(msps, rejected))


def test_out_of(net: Network, channel: ChannelConfig) -> None:
    policy = SignaturePolicy.from_string(
        "OutOf(2, 'Org1MSP.peer', 'Org2MSP.peer', 'OrdererMSP.member')", channel.msps
    )
    policy.evaluate_identities(_ids(channel.msps, net.peer2, net.orderer))
    with pytest.raises(PolicyNotSatisfiedError):
        policy.evaluate_identities(_ids(channel.msps, net.peer2, net.client1))


def test_evaluate_signed_data_drops_bad_signatures(net: Network, channel: ChannelConfig) -> None:
    policy = SignaturePolicy.from_string("AND('Org1MSP.peer', 'Org2MSP.peer')", channel.msps)
    good = [SignedData(m.serialized, b"msg", m.sign(b"msg")) for m in (net.peer1, net.peer2)]
    policy.evaluate_signed_data(good)
    bad = [good[0], SignedData(net.peer2.serialized, b"msg", net.peer2.sign(b"other"))]
    with pytest.raises(PolicyNotSatisfiedError):
        policy.evaluate_signed_data(bad)
    # A repeated signer counts once even if its later copies are valid.
    with pytest.raises(PolicyNotSatisfiedError):
        policy.evaluate_signed_data([good[0], good[0]])


def test_implicit_meta_rules(net: Network, channel: ChannelConfig) -> None:
    pm = channel.policies
    msps = channel.msps
    majority = pm.get("/Channel/Application/Endorsement")  # MAJORITY of 2 = 2
    majority.evaluate_identities(_ids(msps, net.peer1, net.peer2))
    with pytest.raises(PolicyNotSatisfiedError, match=r"MAJORITY\) needs 2 of 2"):
        majority.evaluate_identities(_ids(msps, net.peer1))
    readers = pm.get("/Channel/Application/Readers")  # ANY
    readers.evaluate_identities(_ids(msps, net.client2))
    with pytest.raises(PolicyNotSatisfiedError):
        readers.evaluate_identities(_ids(msps, net.orderer))
    block_validation = pm.get("/Channel/Orderer/BlockValidation")
    block_validation.evaluate_identities(_ids(msps, net.orderer))
    with pytest.raises(PolicyNotSatisfiedError):
        block_validation.evaluate_identities(_ids(msps, net.peer1))
    # /Channel/Writers is ANY of Application/Writers and Orderer/Writers.
    pm.get("/Channel/Writers").evaluate_identities(_ids(msps, net.orderer))
    assert pm.application_org("Org2MSP") == "Org2MSP"
    assert pm.application_org("OrdererMSP") is None


def test_missing_policies(channel: ChannelConfig) -> None:
    with pytest.raises(ConfigError, match="no policy /Channel/Nope"):
        channel.policies.get("/Channel/Nope")


def test_implicit_meta_over_missing_sub_policy_rejects(net: Network) -> None:
    config = net.config.__class__()
    config.CopyFrom(net.config)
    del config.channel_group.groups["Application"].groups["Org2MSP"].policies["Endorsement"]
    channel = ChannelConfig.from_block(genesis(config))
    with pytest.raises(PolicyNotSatisfiedError):
        channel.policies.get("/Channel/Application/Endorsement").evaluate_identities(
            _ids(channel.msps, net.peer1, net.peer2)
        )


def test_policy_manager_lists_every_path(fabric_channel: ChannelConfig) -> None:
    assert isinstance(fabric_channel.policies, PolicyManager)
    assert "/Channel/Application/Org1MSP/Endorsement" in fabric_channel.policies.policies
    assert "/Channel/Application/LifecycleEndorsement" in fabric_channel.policies.policies
    assert len(fabric_channel.policies.policies) == 23


def test_module_level_evaluate(net: Network, channel: ChannelConfig) -> None:
    envelope = parse_signature_policy("AND('Org1MSP.peer', 'Org2MSP.peer')")
    signed = [SignedData(m.serialized, b"m", m.sign(b"m")) for m in (net.peer1, net.peer2)]
    evaluate(envelope, signed, channel.msps)
    with pytest.raises(PolicyNotSatisfiedError):
        evaluate(envelope, signed[1:], channel.msps)
