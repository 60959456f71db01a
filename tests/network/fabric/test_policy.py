"""Signature-policy language, cauthdsl evaluation and implicit-meta policies."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from network.fabric import blocks
from network.fabric.errors import (
    ConfigError,
    FabricError,
    PolicyNotSatisfiedError,
    PolicySyntaxError,
)
from network.fabric.msp import MSPRegistry, ValidatedIdentity
from network.fabric.policy import (
    PolicyManager,
    RejectPolicy,
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
    """Fabric's numbering: nested gates first, then the gate's own principals; no sharing."""
    envelope = parse_signature_policy(
        "AND('A.peer', OR('B.peer', 'A.peer'), OutOf(2, 'C.member', 'D.admin', \"B.peer\"))"
    )
    assert envelope.version == 0
    assert [format_signature_policy(_single(p)) for p in envelope.identities] == [
        "'B.peer'",
        "'A.peer'",
        "'C.member'",
        "'D.admin'",
        "'B.peer'",
        "'A.peer'",
    ]
    rule = envelope.rule.n_out_of
    assert rule.n == 3
    assert rule.rules[0].signed_by == 5
    assert [r.signed_by for r in rule.rules[1].n_out_of.rules] == [0, 1]
    assert rule.rules[1].n_out_of.n == 1
    assert rule.rules[2].n_out_of.n == 2
    assert [r.signed_by for r in rule.rules[2].n_out_of.rules] == [2, 3, 4]
    assert format_signature_policy(envelope) == (
        "OutOf(3, 'A.peer', OutOf(1, 'B.peer', 'A.peer'), "
        "OutOf(2, 'C.member', 'D.admin', 'B.peer'))"
    )


def _single(principal: Any) -> Any:
    """An envelope whose rule is ``SignedBy(0)`` of ``principal`` (to render one principal)."""
    envelope = parse_signature_policy("'X.member'")
    envelope.identities[0].CopyFrom(principal)
    return envelope


# Known answers. Fabric's common/policydsl/policyparser.go (secondPass) appends an
# MSPPrincipal and emits SignedBy(IDNum) for *every* quoted principal it meets
# ("TODO: deduplicate principals"), and its expression evaluator evaluates a gate's
# arguments -- the nested gates -- before the gate numbers its own principals
# (Fabric's TestComplex1: OR('A.member', AND('B.member', 'C.member')) has identities
# B, C, A). The bytes below were written out by hand from that rule and the protobuf
# wire format (field numbers from common/policies.proto and msp/msp_principal.proto),
# not produced by this code:
#   SignaturePolicyEnvelope: version=1 (0, omitted), rule=2 -> tag 0x12, identities=3 -> 0x1a
#   SignaturePolicy: signed_by=1 (oneof, so 0 is written: 08 00), n_out_of=2 -> 0x12
#   NOutOf: n=1 -> 08 nn, rules=2 -> 0x12
#   MSPPrincipal: classification=1 (ROLE = 0, omitted), principal=2 -> 0x12
#   MSPRole: msp_identifier=1 -> 0a 01 'A'(41), role=2 -> 10 rr (MEMBER 0 omitted,
#   ADMIN 1, PEER 3)
_A_PEER = "1a07" + "1205" + "0a0141" + "1003"  # identities { principal: MSPRole{A, PEER} }
_B_MEMBER = "1a05" + "1203" + "0a0142"  # MSPRole{B, MEMBER}: role 0 omitted
_C_ADMIN = "1a07" + "1205" + "0a0143" + "1001"
KNOWN_ANSWERS = {
    # rule OutOf(2, SignedBy(0), SignedBy(1)); identities A.peer, A.peer
    "AND('A.peer','A.peer')": (
        "120c" + "120a" + "0802" + "12020800" + "12020801" + _A_PEER + _A_PEER
    ),
    # nested gate numbered first: B.member=0, A.peer=1; then the outer gate's own
    # principals: A.peer=2, C.admin=3. rule OutOf(2, SignedBy(2),
    # OutOf(1, SignedBy(0), SignedBy(1)), SignedBy(3))
    "OutOf(2, 'A.peer', OutOf(1, 'B.member', 'A.peer'), 'C.admin')": (
        "121a"
        + "1218"
        + "0802"
        + "12020802"
        + ("120c" + "120a" + "0801" + "12020800" + "12020801")
        + "12020803"
        + _B_MEMBER
        + _A_PEER
        + _A_PEER
        + _C_ADMIN
    ),
}


@pytest.mark.parametrize(("text", "expected_hex"), sorted(KNOWN_ANSWERS.items()))
def test_parser_encodes_byte_for_byte_as_fabric_policydsl(text: str, expected_hex: str) -> None:
    assert parse_signature_policy(text).SerializeToString().hex() == expected_hex


def test_repeated_principals_are_not_merged() -> None:
    envelope = parse_signature_policy("AND('A.peer','A.peer')")
    assert len(envelope.identities) == 2
    assert envelope.identities[0] == envelope.identities[1]
    assert [r.signed_by for r in envelope.rule.n_out_of.rules] == [0, 1]


def test_fabric_s_own_complex_example() -> None:
    """Fabric's TestComplex1: nested principals come first in ``identities``."""
    envelope = parse_signature_policy("OR('A.member', AND('B.member', 'C.member'))")
    assert [format_signature_policy(_single(p)) for p in envelope.identities] == [
        "'B.member'",
        "'C.member'",
        "'A.member'",
    ]
    rule = envelope.rule.n_out_of
    assert rule.n == 1
    assert rule.rules[0].signed_by == 2
    assert rule.rules[1].n_out_of.n == 2
    assert [r.signed_by for r in rule.rules[1].n_out_of.rules] == [0, 1]


def test_nesting_depth_is_bounded_with_a_syntax_error() -> None:
    parse_signature_policy("AND(" * 40 + "'A.peer'" + ")" * 40)
    with pytest.raises(PolicySyntaxError, match="nested more than"):
        parse_signature_policy("OR(" * 41 + "'A.peer'" + ")" * 41)


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


def test_is_satisfied_by_answers_like_evaluate_identities(
    net: Network, channel: ChannelConfig
) -> None:
    pm = channel.policies
    msps = channel.msps
    members = (net.peer1, net.peer2, net.client1, net.client2, net.admin1, net.orderer)
    policies = [
        pm.get("/Channel/Application/Endorsement"),  # implicit meta, MAJORITY
        pm.get("/Channel/Application/Readers"),  # implicit meta, ANY
        pm.get("/Channel/Orderer/BlockValidation"),  # signature
        RejectPolicy("/Channel/Nope"),
        SignaturePolicy.from_string(
            "OutOf(2, 'Org1MSP.peer', OR('Org2MSP.peer', 'Org2MSP.client'), 'OrdererMSP.member')",
            msps,
        ),
    ]
    answers = []
    for policy in policies:
        for size in (0, 1, 2):
            for chosen in itertools.permutations(members, size):
                identities = _ids(msps, *chosen)
                try:
                    policy.evaluate_identities(identities)
                except PolicyNotSatisfiedError:
                    expected = False
                else:
                    expected = True
                assert policy.is_satisfied_by(identities) is expected
                answers.append(expected)
    assert True in answers
    assert False in answers


def test_nested_gate_that_fails_gives_back_the_identities_it_took(
    net: Network, channel: ChannelConfig
) -> None:
    """cauthdsl evaluates each sub-rule on a copy of the used flags (nested gates roll back)."""
    policy = SignaturePolicy.from_string(
        "OR(AND('Org1MSP.member', 'Org2MSP.member'), 'Org1MSP.peer')", channel.msps
    )
    # AND takes peer1 for Org1MSP.member, then fails on Org2MSP: peer1 must be free again.
    assert policy.is_satisfied_by(_ids(channel.msps, net.peer1))
    policy.evaluate_identities(_ids(channel.msps, net.peer1))
    assert not policy.is_satisfied_by(_ids(channel.msps, net.client1))


def test_policy_evaluation_uses_no_exceptions_for_non_matching_signers(
    net: Network, channel: ChannelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[str] = []
    original = FabricError.__init__

    def counting(self: FabricError, message: str, **kwargs: Any) -> None:
        created.append(type(self).__name__)
        original(self, message, **kwargs)

    monkeypatch.setattr(FabricError, "__init__", counting)
    msps = channel.msps
    endorsement = SignaturePolicy.from_string(
        "OutOf(2, 'Org1MSP.peer', 'Org2MSP.peer', 'OrdererMSP.orderer')", msps
    )
    # Each principal is tried against identities of other MSPs and roles first.
    signers = _ids(msps, net.client1, net.client2, net.orderer, net.peer2, net.peer1)
    endorsement.evaluate_identities(signers)
    assert endorsement.is_satisfied_by(signers)
    assert not endorsement.is_satisfied_by(signers[:2])
    meta = channel.policies.get("/Channel/Application/Endorsement")
    assert not meta.is_satisfied_by(_ids(msps, net.peer1))
    meta.evaluate_identities(_ids(msps, net.client1, net.peer2, net.peer1))
    assert created == []
    with pytest.raises(PolicyNotSatisfiedError):
        endorsement.evaluate_identities(signers[:2])
    assert created == ["PolicyNotSatisfiedError"]  # only the answer "no" raises
