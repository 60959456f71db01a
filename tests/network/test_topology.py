"""Loading and validating network.yaml (network.topology)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from network.topology import BatchSettings, Topology, TopologyError, split_address

BASE: dict[str, Any] = {
    "version": 1,
    "channel": "accessledger",
    "orderer": {
        "org": "Orderer",
        "msp_id": "OrdererMSP",
        "identity": "orderer0.orderer",
        "address": "127.0.0.1:7050",
        "batch": {
            "max_message_count": 100,
            "batch_timeout_ms": 200,
            "absolute_max_bytes": 10485760,
            "preferred_max_bytes": 524288,
        },
    },
    "organizations": [
        {
            "name": "PublicSecurity",
            "msp_id": "PublicSecurityMSP",
            "domain": "publicsecurity.gov.example",
            "msp_dir": "orgs/PublicSecurity/msp",
            "peers": [{"identity": "peer0.publicsecurity", "address": "127.0.0.1:7051"}],
        },
        {
            "name": "Education",
            "msp_id": "EducationMSP",
            "domain": "education.gov.example",
            "msp_dir": "orgs/Education/msp",
            "peers": [{"identity": "peer0.education", "address": "127.0.0.1:7061"}],
        },
    ],
    "chaincode": {"name": "accessledger", "version": "1.0"},
    "endorsement_policy": "OutOf(2, 'PublicSecurityMSP.peer', 'EducationMSP.peer')",
    "gateway": {"url": "http://127.0.0.1:8000"},
}


def variant(path: str, value: Any) -> dict[str, Any]:
    """BASE with the field at dotted ``path`` replaced (``...`` deletes it)."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return data


def test_loads_the_documented_format(tmp_path: Path) -> None:
    (tmp_path / "network.yaml").write_text(yaml.safe_dump(BASE), encoding="utf-8")
    topology = Topology.load(tmp_path / "network.yaml")
    assert topology.channel == "accessledger"
    assert topology.msp_ids == ("PublicSecurityMSP", "EducationMSP")
    assert topology.orderer.batch == BatchSettings(100, 200, 10485760, 524288)
    assert topology.orderer.host == "127.0.0.1"
    assert topology.orderer.port == 7050
    assert topology.orderer.msp_dir == "orgs/Orderer/msp"  # default derived from the org
    education = topology.organization("EducationMSP")
    assert education is topology.organization("Education")
    assert education.peers[0].port == 7061
    assert education.peers[0].anchor is True
    assert education.peer_hostname(education.peers[0]) == "peer0.education.gov.example"
    assert education.msp_path(tmp_path) == tmp_path / "orgs/Education/msp"
    assert [peer.identity for _, peer in topology.peers()] == [
        "peer0.publicsecurity",
        "peer0.education",
    ]
    # A home directory works as well as the file.
    assert Topology.load(tmp_path) == topology


def test_round_trips_through_dict_and_yaml(tmp_path: Path) -> None:
    topology = Topology.from_dict(BASE)
    assert Topology.from_dict(topology.to_dict()) == topology
    topology.save(tmp_path / "network.yaml")
    assert Topology.load(tmp_path / "network.yaml") == topology
    # The canonical form keeps every documented key and value.
    out = topology.to_dict()
    assert out["organizations"][0]["peers"][0] == {
        "identity": "peer0.publicsecurity",
        "address": "127.0.0.1:7051",
        "anchor": True,
    }
    assert out["orderer"]["batch"] == BASE["orderer"]["batch"]
    assert out["endorsement_policy"] == BASE["endorsement_policy"]


def test_topology_is_immutable() -> None:
    topology = Topology.from_dict(BASE)
    with pytest.raises(AttributeError):
        topology.channel = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("version", 2, "version"),
        ("channel", "Access_Ledger", "channel"),
        ("channel", ..., "channel"),
        ("orderer.address", "127.0.0.1", "orderer.address"),
        ("orderer.address", "127.0.0.1:99999", "orderer.address"),
        ("orderer.batch.max_message_count", 0, "orderer.batch.max_message_count"),
        ("orderer.batch.batch_timeout_ms", "200ms", "orderer.batch.batch_timeout_ms"),
        ("orderer.batch.preferred_max_bytes", 20000000, "orderer.batch.preferred_max_bytes"),
        ("orderer.batch.absolute_max_bytes", True, "orderer.batch.absolute_max_bytes"),
        ("orderer.batch", ..., "orderer.batch"),
        ("organizations", [], "organizations"),
        ("organizations", {"name": "x"}, "organizations"),
        ("organizations.1.msp_id", "Education MSP", "organizations[1].msp_id"),
        # Department names travel into policy principals (no '_'), the contract (no '.' or
        # '-') and `department add`: a genesis department must be one these all accept.
        ("organizations.1.name", "Civil_Affairs", "organizations[1].name"),
        ("organizations.1.name", "civil-affairs", "organizations[1].name"),
        ("organizations.1.msp_id", "Education_MSP", "organizations[1].msp_id"),
        ("organizations.1.msp_id", "Education.MSP", "organizations[1].msp_id"),
        ("organizations.1.domain", "-bad-.example", "organizations[1].domain"),
        ("organizations.1.msp_dir", 7, "organizations[1].msp_dir"),
        ("organizations.1.peers.0.address", "localhost:x", "organizations[1].peers[0].address"),
        ("organizations.1.peers.0.anchor", "yes", "organizations[1].peers[0].anchor"),
        ("organizations.1.peers.0.identity", ..., "organizations[1].peers[0].identity"),
        ("organizations.1.peers.0.tls", "x", "organizations[1].peers[0].tls"),
        ("organizations.1.name", "PublicSecurity", "organizations[1].name"),
        ("organizations.1.msp_id", "OrdererMSP", "organizations[1].msp_id"),
        ("organizations.1.peers.0.address", "127.0.0.1:7051", "organizations[1].peers[0].address"),
        ("chaincode.name", "access ledger", "chaincode.name"),
        ("endorsement_policy", "", "endorsement_policy"),
        ("endorsement_policy", "OutOf(2, 'EducationMSP.peer'", "endorsement_policy"),
        (
            "endorsement_policy",
            "OutOf(3, 'EducationMSP.peer', 'PublicSecurityMSP.peer')",
            "endorsement_policy",
        ),
        ("endorsement_policy", "AND('EducationMSP.peer', 'TaxMSP.peer')", "endorsement_policy"),
        ("endorsement_policy", "MOST Endorsement", "endorsement_policy"),
        ("endorsement_policy", 42, "endorsement_policy"),
        ("gateway.url", "ftp://x", "gateway.url"),
        ("gateway", "http://127.0.0.1:8000", "gateway"),
        ("extra", 1, "extra"),
    ],
)
def test_malformed_input_names_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(TopologyError) as caught:
        Topology.from_dict(variant(path, value))
    assert caught.value.code == "invalid_topology"
    assert caught.value.message.startswith(f"{field}:"), caught.value.message


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="expected a mapping"):
        Topology.from_dict(["not", "a", "mapping"])
    with pytest.raises(TopologyError, match="not valid YAML"):
        Topology.from_yaml("channel: [unclosed")
    with pytest.raises(TopologyError, match="cannot read"):
        Topology.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "policy",
    [
        "MAJORITY Endorsement",
        "AND('EducationMSP.peer', 'PublicSecurityMSP.peer')",
        "OR('EducationMSP.member', AND('PublicSecurityMSP.peer', 'EducationMSP.admin'))",
    ],
)
def test_accepts_fabric_policy_forms(policy: str) -> None:
    assert Topology.from_dict(variant("endorsement_policy", policy)).endorsement_policy == policy


def test_unknown_organisation_lookup() -> None:
    with pytest.raises(TopologyError, match="Nowhere"):
        Topology.from_dict(BASE).organization("Nowhere")


def test_optional_orderer_fields_round_trip() -> None:
    data = variant("orderer.tls_cert", "orgs/Orderer/tls/server.crt")
    data["orderer"]["domain"] = "orderer.gov.example"
    data["orderer"]["msp_dir"] = "elsewhere/msp"
    topology = Topology.from_dict(data)
    assert topology.orderer.tls_cert_path(Path("/h")) == Path("/h/orgs/Orderer/tls/server.crt")
    assert topology.orderer.msp_path(Path("/h")) == Path("/h/elsewhere/msp")
    assert Topology.from_dict(topology.to_dict()) == topology
    # Without tls_cert the orderer identity's signing certificate stands in.
    default = Topology.from_dict(BASE).orderer.tls_cert_path(Path("/h"))
    assert default == Path("/h/orgs/Orderer/identities/orderer0.orderer/msp/signcerts/cert.pem")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:7051", ("127.0.0.1", 7051)),
        ("peer0.org1.example.com:443", ("peer0.org1.example.com", 443)),
        ("[::1]:7050", ("::1", 7050)),
    ],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["", ":7050", "host:", "host:0", "ho st:1", "[zz]:1"])
def test_split_address_rejects(address: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        split_address(address)
