"""The channel genesis block (network.fabric.configblock), checked against real Fabric output."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2, policies_pb2
from fabric_protos.msp import msp_config_pb2, msp_principal_pb2
from fabric_protos.orderer import configuration_pb2 as orderer_pb2
from fabric_protos.orderer.etcdraft import configuration_pb2 as etcdraft_pb2
from fabric_protos.peer import configuration_pb2 as peer_pb2

from crypto.ca import CertificateAuthority
from crypto.consortium import Consortium
from crypto.identity import IdentityKind
from crypto.msp import write_local_msp, write_org_msp
from network.fabric.blocks import verify_data_hash
from network.fabric.configblock import (
    batch_settings_from_config,
    build_channel_config,
    endorsement_policy_from_config,
    endorsement_policy_to_proto,
    format_go_duration,
    genesis_block_for_home,
    load_msp_config,
    parse_go_duration,
    read_config,
)
from network.fabric.errors import ConfigError, PolicyNotSatisfiedError
from network.fabric.msp import MSPRegistry
from network.fabric.policy import PolicyManager
from network.fabric.transactions import SignedData
from network.topology import BatchSettings, Topology, TopologyError
from tests.fabric_fixtures import FABRIC_FIXTURES

FIXTURES = FABRIC_FIXTURES
NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
ROLE = msp_principal_pb2.MSPRole


def small_topology(policy: str = "OutOf(2, 'AlphaMSP.peer', 'BetaMSP.peer')") -> Topology:
    return Topology.from_dict(
        {
            "version": 1,
            "channel": "accessledger",
            "orderer": {
                "org": "Orderer",
                "msp_id": "OrdererMSP",
                "identity": "orderer0.orderer",
                "address": "127.0.0.1:7050",
                "batch": {
                    "max_message_count": 50,
                    "batch_timeout_ms": 250,
                    "absolute_max_bytes": 1048576,
                    "preferred_max_bytes": 65536,
                },
            },
            "organizations": [
                {
                    "name": name,
                    "msp_id": f"{name}MSP",
                    "domain": f"{name.lower()}.gov.example",
                    "msp_dir": f"orgs/{name}/msp",
                    "peers": [
                        {"identity": f"peer0.{name.lower()}", "address": f"127.0.0.1:{port}"}
                    ],
                }
                for name, port in (("Alpha", 7051), ("Beta", 8051))
            ],
            "chaincode": {"name": "accessledger", "version": "1.0"},
            "endorsement_policy": policy,
            "gateway": {"url": "http://127.0.0.1:8000"},
        }
    )


def write_home(home: Path, topology: Topology) -> None:
    """A real (if small) home: one P-256 root CA per org, org MSPs and the orderer's own MSP."""
    for org in topology.organizations:
        ca = CertificateAuthority.create(
            org=org.name, msp_id=org.msp_id, domain=org.domain, now=NOW
        )
        write_org_msp(org.msp_path(home), ca.certificate)
    spec = topology.orderer
    ca = CertificateAuthority.create(
        org=spec.org, msp_id=spec.msp_id, domain="orderer.gov.example", now=NOW
    )
    write_org_msp(spec.msp_path(home), ca.certificate)
    cert, key = ca.issue(common_name=spec.identity, node_ou="orderer", now=NOW)
    local = home / "orgs" / spec.org / "identities" / spec.identity / "msp"
    write_local_msp(local, ca_cert=ca.certificate, certificate=cert, private_key=key)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_home(tmp_path, small_topology())
    return tmp_path


def fabric_msp(config_value: bytes) -> msp_config_pb2.FabricMSPConfig:
    msp = msp_config_pb2.MSPConfig.FromString(config_value)
    assert msp.type == 0
    return msp_config_pb2.FabricMSPConfig.FromString(msp.config)


def signature_policy(policy: policies_pb2.Policy) -> tuple[int, list[tuple[str, int]]]:
    """(n of the top-level NOutOf, [(msp id, role) of each identity]) of a SIGNATURE policy."""
    assert policy.type == policies_pb2.Policy.SIGNATURE
    envelope = policies_pb2.SignaturePolicyEnvelope.FromString(policy.value)
    principals = []
    for identity in envelope.identities:
        role = ROLE.FromString(identity.principal)
        principals.append((role.msp_identifier, role.role))
    assert [r.signed_by for r in envelope.rule.n_out_of.rules] == list(range(len(principals)))
    return envelope.rule.n_out_of.n, principals


# -- a genesis block from a home --------------------------------------------------------


def test_genesis_block_round_trips_and_carries_the_msps(home: Path) -> None:
    topology = small_topology()
    nonce = bytes(range(24))
    block = genesis_block_for_home(topology, home, now=NOW, nonce=nonce)
    parsed = common_pb2.Block.FromString(block.SerializeToString())

    assert parsed.header.number == 0
    assert parsed.header.previous_hash == b""
    assert parsed.header.data_hash == hashlib.sha256(b"".join(parsed.data.data)).digest()
    verify_data_hash(parsed)  # and the engine's own block code agrees
    assert len(parsed.data.data) == 1

    envelope = common_pb2.Envelope.FromString(parsed.data.data[0])
    assert envelope.signature == b""
    payload = common_pb2.Payload.FromString(envelope.payload)
    header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    assert header.type == common_pb2.HeaderType.CONFIG
    assert header.channel_id == "accessledger"
    assert header.version == 1
    assert header.timestamp.seconds == int(NOW.timestamp())
    assert header.tx_id == hashlib.sha256(nonce).hexdigest()
    signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
    assert signature_header.creator == b""
    assert signature_header.nonce == nonce

    config = read_config(parsed)
    assert config.sequence == 0
    application = config.channel_group.groups["Application"]
    assert set(application.groups) == {"Alpha", "Beta"}
    for org in topology.organizations:
        group = application.groups[org.name]
        msp = fabric_msp(group.values["MSP"].value)
        ca_pem = (org.msp_path(home) / "cacerts" / "ca-cert.pem").read_bytes()
        assert msp.name == org.msp_id
        assert list(msp.root_certs) == [ca_pem]
        assert msp.fabric_node_ous.enable
        ous = msp.fabric_node_ous
        for identifier, ou in (
            (ous.client_ou_identifier, "client"),
            (ous.peer_ou_identifier, "peer"),
            (ous.admin_ou_identifier, "admin"),
            (ous.orderer_ou_identifier, "orderer"),
        ):
            assert identifier.organizational_unit_identifier == ou
            assert identifier.certificate == ca_pem
        anchors = peer_pb2.AnchorPeers.FromString(group.values["AnchorPeers"].value)
        assert [(a.host, a.port) for a in anchors.anchor_peers] == [
            (p.host, p.port) for p in org.peers
        ]
        assert signature_policy(group.policies["Endorsement"].policy) == (
            1,
            [(org.msp_id, ROLE.PEER)],
        )
        assert signature_policy(group.policies["Writers"].policy) == (
            1,
            [(org.msp_id, ROLE.ADMIN), (org.msp_id, ROLE.CLIENT)],
        )

    assert batch_settings_from_config(config) == topology.orderer.batch
    endorsement = endorsement_policy_from_config(config)
    assert isinstance(endorsement, policies_pb2.SignaturePolicyEnvelope)
    assert endorsement.rule.n_out_of.n == 2
    assert [ROLE.FromString(i.principal).msp_identifier for i in endorsement.identities] == [
        "AlphaMSP",
        "BetaMSP",
    ]
    assert {ROLE.FromString(i.principal).role for i in endorsement.identities} == {ROLE.PEER}
    lifecycle = policies_pb2.ImplicitMetaPolicy.FromString(
        application.policies["LifecycleEndorsement"].policy.value
    )
    assert (lifecycle.rule, lifecycle.sub_policy) == (
        policies_pb2.ImplicitMetaPolicy.MAJORITY,
        "Endorsement",
    )

    orderer = config.channel_group.groups["Orderer"]
    consensus = orderer_pb2.ConsensusType.FromString(orderer.values["ConsensusType"].value)
    assert consensus.type == "etcdraft"
    raft = etcdraft_pb2.ConfigMetadata.FromString(consensus.metadata)
    orderer_cert = (
        home / "orgs/Orderer/identities/orderer0.orderer/msp/signcerts/cert.pem"
    ).read_bytes()
    assert [(c.host, c.port) for c in raft.consenters] == [("127.0.0.1", 7050)]
    assert raft.consenters[0].server_tls_cert == orderer_cert
    assert fabric_msp(orderer.groups["Orderer"].values["MSP"].value).name == "OrdererMSP"
    assert "BlockValidation" in orderer.policies


def test_same_inputs_give_identical_bytes(home: Path) -> None:
    topology = small_topology()
    first = genesis_block_for_home(topology, home, now=NOW, nonce=b"n" * 24)
    second = genesis_block_for_home(topology, home, now=NOW, nonce=b"n" * 24)
    third = genesis_block_for_home(topology, home, now=NOW)
    assert first.SerializeToString() == second.SerializeToString()
    assert third.header.data_hash != first.header.data_hash  # a fresh random nonce


def test_implicit_meta_endorsement_policy(home: Path) -> None:
    block = genesis_block_for_home(small_topology("ANY Endorsement"), home, now=NOW)
    policy = endorsement_policy_from_config(read_config(block))
    assert isinstance(policy, policies_pb2.ImplicitMetaPolicy)
    assert (policy.rule, policy.sub_policy) == (policies_pb2.ImplicitMetaPolicy.ANY, "Endorsement")


def test_unknown_msp_in_the_endorsement_policy_is_refused() -> None:
    with pytest.raises(TopologyError, match=r"^endorsement_policy: 'GammaMSP'"):
        endorsement_policy_to_proto("OR('AlphaMSP.peer', 'GammaMSP.peer')", ("AlphaMSP",))


def test_msp_folder_problems_are_reported(home: Path) -> None:
    msp_dir = home / "orgs/Alpha/msp"
    (msp_dir / "config.yaml").write_text("NodeOUs:\n  Enable: false\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="NodeOUs"):
        load_msp_config(msp_dir, "AlphaMSP")
    (msp_dir / "cacerts" / "ca-cert.pem").unlink()
    with pytest.raises(ConfigError, match="no CA certificate"):
        genesis_block_for_home(small_topology(), home, now=NOW)


def test_missing_msp_config_is_an_error() -> None:
    with pytest.raises(ConfigError, match="BetaMSP"):
        build_channel_config(small_topology(), {"AlphaMSP": msp_config_pb2.MSPConfig()}, b"")


def test_read_config_rejects_a_non_config_block(home: Path) -> None:
    block = genesis_block_for_home(small_topology(), home, now=NOW)
    envelope = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(envelope.payload)
    header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    header.type = common_pb2.HeaderType.ENDORSER_TRANSACTION
    payload.header.channel_header = header.SerializeToString()
    envelope.payload = payload.SerializeToString()
    block.data.data[0] = envelope.SerializeToString()
    with pytest.raises(ConfigError, match="not a config block"):
        read_config(block)
    block.data.data[0] = b"\xff\xff"
    with pytest.raises(ConfigError, match="malformed"):
        read_config(block)


def test_genesis_policies_judge_the_demo_identities(consortium: Consortium) -> None:
    """Fed our genesis block, the engine's MSP and policy code accept exactly the right signers."""
    topology = Topology.load(consortium.home)
    config = read_config(genesis_block_for_home(topology, consortium.home, now=NOW))
    msps = MSPRegistry.from_config(config)
    policies = PolicyManager(config, msps)

    def signed(*names: str) -> list[SignedData]:
        data = b"proposal response payload"
        return [
            SignedData(
                identity=consortium.identity(n).serialized(),
                data=data,
                signature=consortium.identity(n).sign(data),
            )
            for n in names
        ]

    peers = [i.name for i in consortium.identities(kind=IdentityKind.PEER)]
    officers = [i.name for i in consortium.identities(kind=IdentityKind.OFFICER)]
    assert len(peers) == len(topology.organizations)
    for peer in peers:
        assert msps.deserialize(consortium.identity(peer).serialized()).node_ou == "peer"

    endorsement = policies.get("/Channel/Application/Endorsement")
    endorsement.evaluate_signed_data(signed(peers[0], peers[-1]))  # OutOf(2, any two peers)
    with pytest.raises(PolicyNotSatisfiedError):
        endorsement.evaluate_signed_data(signed(peers[0]))
    with pytest.raises(PolicyNotSatisfiedError):
        endorsement.evaluate_signed_data(signed(*officers[:2]))  # clients are not peers
    policies.get("/Channel/Orderer/BlockValidation").evaluate_signed_data(
        signed(topology.orderer.identity)
    )
    policies.get("/Channel/Application/Writers").evaluate_signed_data(signed(officers[0]))


# -- fidelity with the real Fabric 2.5 genesis block ------------------------------------


def fixture_topology() -> Topology:
    """The fixture network (test-network style) described as an AccessLedger topology."""
    msp = FIXTURES / "msp"
    orgs = [
        {
            "name": f"Org{n}MSP",
            "msp_id": f"Org{n}MSP",
            "domain": f"org{n}.example.com",
            "msp_dir": str(msp / f"peerOrganizations/org{n}.example.com/msp"),
            # The fixture's anchor peers were added later, by config updates (blocks 1 and 2).
            "peers": [
                {"identity": f"peer0.org{n}", "address": f"127.0.0.1:{port}", "anchor": False}
            ],
        }
        for n, port in ((1, 7051), (2, 9051))
    ]
    orderer_dir = msp / "ordererOrganizations/example.com"
    return Topology.from_dict(
        {
            "version": 1,
            "channel": "mychannel",
            "orderer": {
                "org": "OrdererOrg",
                "msp_id": "OrdererMSP",
                "identity": "orderer.example.com",
                "address": "127.0.0.1:7050",
                "msp_dir": str(orderer_dir / "msp"),
                "tls_cert": str(orderer_dir / "orderers/orderer.example.com/tls/server.crt"),
                "batch": {
                    "max_message_count": 10,
                    "batch_timeout_ms": 2000,
                    "absolute_max_bytes": 99 * 1024 * 1024,
                    "preferred_max_bytes": 512 * 1024,
                },
            },
            "organizations": orgs,
            "chaincode": {"name": "simple", "version": "1.0"},
            "endorsement_policy": "MAJORITY Endorsement",
            "gateway": {"url": "http://127.0.0.1:8000"},
        }
    )


def fixture_genesis() -> common_pb2.Block:
    return common_pb2.Block.FromString((FIXTURES / "orderer-blocks/000000.block").read_bytes())


def test_rebuilds_the_fabric_fixture_genesis_block() -> None:
    """Given the fixture's inputs, the builder reproduces Fabric's own genesis block."""
    fabric = fixture_genesis()
    fabric_payload = common_pb2.Payload.FromString(
        common_pb2.Envelope.FromString(fabric.data.data[0]).payload
    )
    fabric_header = common_pb2.ChannelHeader.FromString(fabric_payload.header.channel_header)
    nonce = common_pb2.SignatureHeader.FromString(fabric_payload.header.signature_header).nonce

    ours = genesis_block_for_home(
        fixture_topology(),
        Path("/"),
        now=datetime.fromtimestamp(fabric_header.timestamp.seconds, tz=UTC),
        nonce=nonce,
    )
    ours_payload = common_pb2.Payload.FromString(
        common_pb2.Envelope.FromString(ours.data.data[0]).payload
    )
    # Headers byte for byte; the configuration as a message (Go orders map entries at random).
    assert ours_payload.header.SerializeToString() == fabric_payload.header.SerializeToString()
    assert read_config(ours) == read_config(fabric)
    assert list(ours.metadata.metadata) == list(fabric.metadata.metadata)
    assert ours.header.previous_hash == fabric.header.previous_hash == b""
    assert ours.header.data_hash == hashlib.sha256(ours.data.data[0]).digest()


def test_reads_batch_settings_and_policy_from_the_fabric_block() -> None:
    config = read_config(fixture_genesis())
    assert batch_settings_from_config(config) == BatchSettings(
        max_message_count=10,
        batch_timeout_ms=2000,
        absolute_max_bytes=103809024,
        preferred_max_bytes=524288,
    )
    policy = endorsement_policy_from_config(config)
    assert isinstance(policy, policies_pb2.ImplicitMetaPolicy)
    assert (policy.rule, policy.sub_policy) == (
        policies_pb2.ImplicitMetaPolicy.MAJORITY,
        "Endorsement",
    )


@pytest.mark.parametrize(("number", "org", "port"), [(1, "Org1MSP", 7051), (2, "Org2MSP", 9051)])
def test_reads_later_fabric_config_blocks(number: int, org: str, port: int) -> None:
    block = common_pb2.Block.FromString((FIXTURES / f"blocks/{number:06d}.block").read_bytes())
    config = read_config(block)
    assert config.sequence == number
    group = config.channel_group.groups["Application"].groups[org]
    anchors = peer_pb2.AnchorPeers.FromString(group.values["AnchorPeers"].value)
    assert [(a.host, a.port) for a in anchors.anchor_peers] == [("127.0.0.1", port)]


def test_read_config_refuses_a_transaction_block() -> None:
    block = common_pb2.Block.FromString((FIXTURES / "blocks/000007.block").read_bytes())
    with pytest.raises(ConfigError, match="ENDORSER_TRANSACTION"):
        read_config(block)


def test_fabric_msp_folder_loads_like_configtxgen() -> None:
    fabric_org1 = (
        read_config(fixture_genesis()).channel_group.groups["Application"].groups["Org1MSP"]
    )
    msp_dir = FIXTURES / "msp/peerOrganizations/org1.example.com/msp"
    assert load_msp_config(msp_dir, "Org1MSP").SerializeToString() == (
        fabric_org1.values["MSP"].value
    )


# -- Go durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (200, "200ms"),
        (999, "999ms"),
        (1000, "1s"),
        (1500, "1.5s"),
        (2000, "2s"),
        (61_250, "1m1.25s"),
        (3_600_000, "1h0m0s"),
    ],
)
def test_go_duration_format_and_parse(ms: int, text: str) -> None:
    assert format_go_duration(ms) == text
    assert parse_go_duration(text) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1m30s", 90_000), ("2000000000ns", 2000), (".5s", 500), ("1500000us", 1500), ("0", 0)],
)
def test_go_duration_parse_other_spellings(text: str, ms: int) -> None:
    assert parse_go_duration(text) == ms


def test_go_duration_below_a_millisecond_is_refused() -> None:
    with pytest.raises(ValueError, match="whole number of milliseconds"):
        parse_go_duration("1500us")


@pytest.mark.parametrize("text", ["", "2", "2 s", "s", "-1s", "1.2.3s"])
def test_go_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_go_duration(text)
