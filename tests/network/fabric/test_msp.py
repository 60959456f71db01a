"""Channel MSPs: membership, NodeOU classification and principals, as a Fabric peer decides."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.msp import identities_pb2, msp_config_pb2, msp_principal_pb2

from network.fabric import blocks
from network.fabric.errors import ConfigError, MSPError
from network.fabric.msp import MSP, MSPRegistry
from network.fabric.policy import role_principal
from network.fabric.validator import ChannelConfig
from tests.fabric_fixtures import FABRIC_FIXTURES
from tests.network.fabric.test_support import NOW, Network, Org, channel_config, pem

FIXTURES = FABRIC_FIXTURES
MSP_DIR = FIXTURES / "msp"


@pytest.fixture(scope="module")
def fabric_msps() -> MSPRegistry:
    block = blocks.parse_block((FIXTURES / "blocks" / "000000.block").read_bytes())
    return ChannelConfig.from_block(block).msps


def _serialized(msp_id: str, path: Path) -> bytes:
    return identities_pb2.SerializedIdentity(
        mspid=msp_id, id_bytes=path.read_bytes()
    ).SerializeToString()


ORG1 = MSP_DIR / "peerOrganizations" / "org1.example.com"
ORG2 = MSP_DIR / "peerOrganizations" / "org2.example.com"
ORDERER = MSP_DIR / "ordererOrganizations" / "example.com"


@pytest.mark.parametrize(
    ("msp_id", "path", "node_ou", "cn"),
    [
        (
            "Org1MSP",
            ORG1 / "peers/peer0.org1.example.com/msp/signcerts/peer0.org1.example.com-cert.pem",
            "peer",
            "peer0.org1.example.com",
        ),
        (
            "Org1MSP",
            ORG1 / "users/Admin@org1.example.com/msp/signcerts/Admin@org1.example.com-cert.pem",
            "admin",
            "Admin@org1.example.com",
        ),
        (
            "Org1MSP",
            ORG1 / "users/User1@org1.example.com/msp/signcerts/User1@org1.example.com-cert.pem",
            "client",
            "User1@org1.example.com",
        ),
        (
            "Org2MSP",
            ORG2 / "peers/peer0.org2.example.com/msp/signcerts/peer0.org2.example.com-cert.pem",
            "peer",
            "peer0.org2.example.com",
        ),
        (
            "OrdererMSP",
            ORDERER / "orderers/orderer.example.com/msp/signcerts/orderer.example.com-cert.pem",
            "orderer",
            "orderer.example.com",
        ),
        (
            "OrdererMSP",
            ORDERER / "users/Admin@example.com/msp/signcerts/Admin@example.com-cert.pem",
            "admin",
            "Admin@example.com",
        ),
    ],
)
def test_cryptogen_identities_are_classified_by_node_ou(
    fabric_msps: MSPRegistry, msp_id: str, path: Path, node_ou: str, cn: str
) -> None:
    identity = fabric_msps.deserialize(_serialized(msp_id, path))
    assert identity.msp_id == msp_id
    assert identity.node_ou == node_ou
    assert identity.common_name == cn
    assert len(identity.chain) == 2  # leaf, root
    assert (
        identity.certifiers_identifier
        == hashlib.sha256(identity.chain[1].public_bytes(Encoding.DER)).digest()
    )
    assert fabric_msps.deserialize(_serialized(msp_id, path)) is identity  # cached


def test_registry_holds_the_channel_msps(fabric_msps: MSPRegistry) -> None:
    assert sorted(fabric_msps.msps) == ["OrdererMSP", "Org1MSP", "Org2MSP"]
    assert all(m.node_ous_enabled for m in fabric_msps.msps.values())


@pytest.mark.parametrize(
    ("msp_id", "path", "message"),
    [
        (
            "Org2MSP",
            ORG1 / "users/User1@org1.example.com/msp/signcerts/User1@org1.example.com-cert.pem",
            "not issued by a CA of Org2MSP",
        ),
        (
            "Org1MSP",
            ORG1 / "peers/peer0.org1.example.com/tls/server.crt",
            "not issued by a CA of Org1MSP",
        ),
        (
            "Org1MSP",
            ORG1 / "msp/cacerts/ca.org1.example.com-cert.pem",
            "CA certificate cannot be used",
        ),
        (
            "Org9MSP",
            ORG1 / "users/User1@org1.example.com/msp/signcerts/User1@org1.example.com-cert.pem",
            "unknown MSP 'Org9MSP'",
        ),
    ],
)
def test_non_members_are_rejected(
    fabric_msps: MSPRegistry, msp_id: str, path: Path, message: str
) -> None:
    with pytest.raises(MSPError, match=message):
        fabric_msps.deserialize(_serialized(msp_id, path))


def test_garbage_identities_are_rejected(fabric_msps: MSPRegistry) -> None:
    with pytest.raises(MSPError, match="not a PEM"):
        fabric_msps.deserialize(
            identities_pb2.SerializedIdentity(mspid="Org1MSP", id_bytes=b"junk").SerializeToString()
        )
    with pytest.raises(MSPError, match="unreadable"):
        fabric_msps.deserialize(b"\xff\xff")


def test_validity_at_an_injected_time(fabric_msps: MSPRegistry) -> None:
    user = _serialized(
        "Org1MSP",
        ORG1 / "users/User1@org1.example.com/msp/signcerts/User1@org1.example.com-cert.pem",
    )
    fabric_msps.deserialize(user, now=datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(MSPError, match="not valid at"):
        fabric_msps.deserialize(user, now=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(MSPError, match="not valid at"):
        fabric_msps.deserialize(user, now=datetime(2037, 1, 1, tzinfo=UTC))
    fabric_msps.deserialize(user)  # no time given: Fabric's time-independent check


def test_role_principals_on_fabric_identities(fabric_msps: MSPRegistry) -> None:
    peer = fabric_msps.deserialize(
        _serialized(
            "Org1MSP",
            ORG1 / "peers/peer0.org1.example.com/msp/signcerts/peer0.org1.example.com-cert.pem",
        )
    )
    fabric_msps.satisfies_principal(peer, role_principal("Org1MSP", "peer"))
    fabric_msps.satisfies_principal(peer, role_principal("Org1MSP", "member"))
    with pytest.raises(MSPError, match="needs a client"):
        fabric_msps.satisfies_principal(peer, role_principal("Org1MSP", "client"))
    with pytest.raises(MSPError, match="not an admin"):
        fabric_msps.satisfies_principal(peer, role_principal("Org1MSP", "admin"))
    with pytest.raises(MSPError, match="principal needs Org2MSP"):
        fabric_msps.satisfies_principal(peer, role_principal("Org2MSP", "peer"))


def _principal(kind: str, message: object) -> object:
    return msp_principal_pb2.MSPPrincipal(
        principal_classification=msp_principal_pb2.MSPPrincipal.Classification.Value(kind),
        principal=message.SerializeToString(),  # type: ignore[attr-defined]
    )


def test_identity_ou_combined_and_anonymity_principals() -> None:
    net = Network()
    msps = MSPRegistry.from_config(net.config)
    peer = msps.deserialize(net.peer1.serialized)
    other = msps.deserialize(net.client1.serialized)
    exact = _principal(
        "IDENTITY", identities_pb2.SerializedIdentity.FromString(net.peer1.serialized)
    )
    msps.satisfies_principal(peer, exact)
    with pytest.raises(MSPError, match="not the one"):
        msps.satisfies_principal(other, exact)
    ou = _principal(
        "ORGANIZATION_UNIT",
        msp_principal_pb2.OrganizationUnit(
            msp_identifier="Org1MSP",
            organizational_unit_identifier="peer",
            certifiers_identifier=peer.certifiers_identifier,
        ),
    )
    msps.satisfies_principal(peer, ou)
    with pytest.raises(MSPError, match="not in OU"):
        msps.satisfies_principal(other, ou)
    combined = _principal(
        "COMBINED",
        msp_principal_pb2.CombinedPrincipal(
            principals=[role_principal("Org1MSP", "member"), role_principal("Org1MSP", "peer")]
        ),
    )
    msps.satisfies_principal(peer, combined)
    with pytest.raises(MSPError):
        msps.satisfies_principal(other, combined)
    nominal = _principal(
        "ANONYMITY",
        msp_principal_pb2.MSPIdentityAnonymity(
            anonymity_type=msp_principal_pb2.MSPIdentityAnonymity.NOMINAL
        ),
    )
    msps.satisfies_principal(peer, nominal)


def test_node_ou_rules() -> None:
    org = Org("Org1MSP")
    msps = MSPRegistry.from_config(channel_config([org], Org("OrdererMSP")))
    for ous, message in [
        (["peer", "client"], "exactly one of client, peer, admin or orderer"),
        ([], "exactly one"),
        (["sales"], "exactly one"),
    ]:
        with pytest.raises(MSPError, match=message):
            msps.deserialize(org.member("x", ous).serialized)
    # Extra, non-NodeOU OUs are fine.
    assert msps.deserialize(org.member("y", ["peer", "sales"]).serialized).node_ou == "peer"


def test_node_ous_disabled() -> None:
    org = Org("Org1MSP", node_ous=False)
    msps = MSPRegistry.from_config(channel_config([org], Org("OrdererMSP")))
    identity = msps.deserialize(org.member("x", []).serialized)
    assert identity.node_ou is None
    msps.satisfies_principal(identity, role_principal("Org1MSP", "member"))
    with pytest.raises(MSPError, match="NodeOUs disabled"):
        msps.satisfies_principal(identity, role_principal("Org1MSP", "peer"))


def test_intermediate_ca_chain_and_certifiers() -> None:
    org = Org("Org1MSP")
    ica = org.intermediate()
    member = org.member("via-ica", ["client"], issuer=ica)
    # NodeOUs certified by the root do not cover identities issued by the
    # intermediate: Fabric compares the whole certification path.
    msps = MSPRegistry.from_config(channel_config([org], Org("OrdererMSP")))
    with pytest.raises(MSPError, match="certified by another CA"):
        msps.deserialize(member.serialized)
    org.ou_certificate = ica[0]
    msps = MSPRegistry.from_config(channel_config([org], Org("OrdererMSP")))
    identity = msps.deserialize(member.serialized)
    assert [c.subject for c in identity.chain] == [
        member.cert.subject,
        ica[0].subject,
        org.ca_cert.subject,
    ]
    assert (
        identity.certifiers_identifier
        == hashlib.sha256(
            ica[0].public_bytes(Encoding.DER) + org.ca_cert.public_bytes(Encoding.DER)
        ).digest()
    )
    # Without the intermediate in the MSP the chain cannot be built.
    bare = Org("Org2MSP")
    bare.ca_key, bare.ca_cert = org.ca_key, org.ca_cert
    msps2 = MSPRegistry.from_config(channel_config([bare], Org("OrdererMSP")))
    with pytest.raises(MSPError, match="not issued by a CA"):
        msps2.deserialize(member.serialized.replace(b"Org1MSP", b"Org2MSP"))


def test_revoked_certificates_are_rejected() -> None:
    org = Org("Org1MSP")
    good, bad = org.member("good"), org.member("bad")
    org.revoke(bad)
    msps = MSPRegistry.from_config(channel_config([org], Org("OrdererMSP")))
    msps.deserialize(good.serialized)
    with pytest.raises(MSPError, match="revoked"):
        msps.deserialize(bad.serialized)


def test_explicit_admin_certificates() -> None:
    org = Org("Org1MSP")
    admin = org.member("boss", ["client"])
    config = channel_config([org], Org("OrdererMSP"))
    group = config.channel_group.groups["Application"].groups["Org1MSP"]
    msp_config = msp_config_pb2.MSPConfig.FromString(group.values["MSP"].value)
    fabric = msp_config_pb2.FabricMSPConfig.FromString(msp_config.config)
    fabric.admins.append(pem(admin.cert))
    msp_config.config = fabric.SerializeToString()
    group.values["MSP"].value = msp_config.SerializeToString()
    msps = MSPRegistry.from_config(config)
    msps.satisfies_principal(msps.deserialize(admin.serialized), role_principal("Org1MSP", "admin"))


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"not X\.509"):
        MSP.from_msp_config(msp_config_pb2.MSPConfig(type=1))
    with pytest.raises(ConfigError, match="no root certificate"):
        MSP(msp_config_pb2.FabricMSPConfig(name="X"))
    org = Org("Org1MSP")
    stray = Org("Other")
    fabric = msp_config_pb2.FabricMSPConfig.FromString(org.msp_config().config)
    fabric.fabric_node_ous.peer_ou_identifier.certificate = pem(stray.ca_cert)
    with pytest.raises(ConfigError, match="OU certificate is not one of its CA"):
        MSP(fabric)


def test_expired_intermediate_at_injected_time() -> None:
    org = Org("Org1MSP")
    member = org.member("short", ["client"], not_after=NOW + timedelta(days=1))
    msps = MSPRegistry.from_config(channel_config([org], Org("OrdererMSP")))
    msps.deserialize(member.serialized, now=NOW)
    with pytest.raises(MSPError, match="not valid at"):
        msps.deserialize(member.serialized, now=NOW + timedelta(days=2))


def test_registry_from_block_equals_from_config() -> None:
    block = blocks.parse_block((FIXTURES / "blocks" / "000001.block").read_bytes())
    registry = MSPRegistry.from_block(block)
    assert sorted(registry.msps) == ["OrdererMSP", "Org1MSP", "Org2MSP"]


def test_principal_checks_without_exceptions_agree_with_satisfies_principal() -> None:
    """The non-raising principal checks give exactly the answer of ``satisfies_principal``."""
    net = Network()
    msps = MSPRegistry.from_config(net.config)
    members = [net.peer1, net.client1, net.admin1, net.peer2, net.client2, net.orderer]
    identities = [msps.deserialize(m.serialized) for m in members]
    peer = identities[0]
    principals = [
        role_principal(msp, role)
        for msp in ("Org1MSP", "Org2MSP", "OrdererMSP", "NoSuchMSP")
        for role in ("member", "admin", "client", "peer", "orderer")
    ]
    principals += [
        _principal("IDENTITY", identities_pb2.SerializedIdentity.FromString(net.peer1.serialized)),
        _principal(
            "ORGANIZATION_UNIT",
            msp_principal_pb2.OrganizationUnit(
                msp_identifier="Org1MSP",
                organizational_unit_identifier="peer",
                certifiers_identifier=peer.certifiers_identifier,
            ),
        ),
        _principal(
            "COMBINED",
            msp_principal_pb2.CombinedPrincipal(
                principals=[role_principal("Org1MSP", "member"), role_principal("Org1MSP", "peer")]
            ),
        ),
        msp_principal_pb2.MSPPrincipal(principal_classification=0, principal=b"\xff\xff"),
    ]
    matched = 0
    for principal in principals:
        matcher = msps.principal_matcher(principal)
        for identity in identities:
            problem = msps.principal_mismatch(identity, principal)
            if problem is None:
                matched += 1
                msps.satisfies_principal(identity, principal)
                assert msps.is_satisfied(identity, principal)
                assert matcher(identity)
            else:
                with pytest.raises(MSPError) as info:
                    msps.satisfies_principal(identity, principal)
                assert info.value.message == problem
                assert not msps.is_satisfied(identity, principal)
                assert not matcher(identity)
    # Each identity is a member and has its NodeOU role (12); peer1 is also the exact
    # identity, in the 'peer' OU and in the combined principal (3).
    assert matched == 15
