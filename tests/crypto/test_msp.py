"""Tests for crypto.msp: Fabric MSP folder layout and NodeOUs config.yaml."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from crypto.ca import CertificateAuthority
from crypto.errors import CertificateError, CryptoError, KeyFileError
from crypto.msp import (
    node_ous_config,
    read_ca_certs,
    read_local_msp,
    read_node_ous,
    write_local_msp,
    write_org_msp,
)
from tests.fabric_fixtures import FABRIC_FIXTURES

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FABRIC_ORG1 = FABRIC_FIXTURES / "msp" / "peerOrganizations" / "org1.example.com"

EXPECTED_CONFIG = {
    "NodeOUs": {
        "Enable": True,
        "ClientOUIdentifier": {
            "Certificate": "cacerts/ca-cert.pem",
            "OrganizationalUnitIdentifier": "client",
        },
        "PeerOUIdentifier": {
            "Certificate": "cacerts/ca-cert.pem",
            "OrganizationalUnitIdentifier": "peer",
        },
        "AdminOUIdentifier": {
            "Certificate": "cacerts/ca-cert.pem",
            "OrganizationalUnitIdentifier": "admin",
        },
        "OrdererOUIdentifier": {
            "Certificate": "cacerts/ca-cert.pem",
            "OrganizationalUnitIdentifier": "orderer",
        },
    }
}


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        org="Health", msp_id="HealthMSP", domain="health.gov.example", now=NOW
    )


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_config_yaml_matches_cryptogen(ca: CertificateAuthority, tmp_path: Path) -> None:
    write_org_msp(tmp_path / "msp", ca.certificate)
    written = yaml.safe_load((tmp_path / "msp" / "config.yaml").read_text())
    assert written == EXPECTED_CONFIG
    # Same document as Fabric's cryptogen wrote for org1, up to the CA file name.
    fabric = yaml.safe_load((FABRIC_ORG1 / "msp" / "config.yaml").read_text())
    assert yaml.safe_dump(fabric).replace("ca.org1.example.com-cert.pem", "ca-cert.pem") == (
        yaml.safe_dump(written)
    )
    # Key order is cryptogen's too (client, peer, admin, orderer).
    assert list(written["NodeOUs"]) == list(fabric["NodeOUs"])


def test_node_ous_config_follows_the_ca_file_name() -> None:
    config = node_ous_config("ca.example-cert.pem")
    assert config["NodeOUs"]["PeerOUIdentifier"]["Certificate"] == "cacerts/ca.example-cert.pem"


def test_org_msp_layout_is_public_only(ca: CertificateAuthority, tmp_path: Path) -> None:
    msp = tmp_path / "msp"
    write_org_msp(msp, ca.certificate)
    assert _tree(msp) == ["cacerts", "cacerts/ca-cert.pem", "config.yaml"]
    assert read_ca_certs(msp) == [ca.certificate]
    assert read_node_ous(msp) == {
        "client": "cacerts/ca-cert.pem",
        "peer": "cacerts/ca-cert.pem",
        "admin": "cacerts/ca-cert.pem",
        "orderer": "cacerts/ca-cert.pem",
    }


def test_local_msp_layout_and_round_trip(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, key = ca.issue(common_name="peer0.health", node_ou="peer", now=NOW)
    msp = tmp_path / "peer0.health" / "msp"
    write_local_msp(msp, ca_cert=ca.certificate, certificate=cert, private_key=key)
    assert _tree(msp) == [
        "cacerts",
        "cacerts/ca-cert.pem",
        "config.yaml",
        "keystore",
        "keystore/key.pem",
        "signcerts",
        "signcerts/cert.pem",
    ]
    assert stat.S_IMODE((msp / "keystore" / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((msp / "keystore").stat().st_mode) == 0o700
    local = read_local_msp(msp)
    assert local.certificate == cert
    assert local.ca_certs == [ca.certificate]
    assert key is not None
    assert local.private_key is not None
    assert local.private_key.private_numbers() == key.private_numbers()
    assert read_local_msp(msp, with_key=False).private_key is None


def test_local_msp_with_passphrase(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, key = ca.issue(common_name="admin.health", node_ou="admin", now=NOW)
    msp = tmp_path / "msp"
    write_local_msp(
        msp, ca_cert=ca.certificate, certificate=cert, private_key=key, passphrase=b"pw"
    )
    assert read_local_msp(msp, passphrase=b"pw").certificate == cert
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        read_local_msp(msp, passphrase=b"bad")


def test_key_not_matching_signcert_is_rejected(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, _ = ca.issue(common_name="a", node_ou="client", now=NOW)
    _, other_key = ca.issue(common_name="b", node_ou="client", now=NOW)
    msp = tmp_path / "msp"
    write_local_msp(msp, ca_cert=ca.certificate, certificate=cert, private_key=other_key)
    with pytest.raises(CertificateError, match="does not match the signcert"):
        read_local_msp(msp)


def test_malformed_msp_folders_are_rejected(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match="not an MSP folder") as info:
        read_ca_certs(tmp_path)
    assert info.value.code == "msp_invalid"
    (tmp_path / "cacerts").mkdir()
    with pytest.raises(CryptoError, match="holds no CA certificate"):
        read_ca_certs(tmp_path)
    write_org_msp(tmp_path, ca.certificate)
    with pytest.raises(CryptoError, match="exactly one certificate"):
        read_local_msp(tmp_path, with_key=False)


def test_reads_a_real_fabric_msp(tmp_path: Path) -> None:
    """cryptogen's own output (public part) reads with the same code."""
    msp = FABRIC_ORG1 / "users" / "User1@org1.example.com" / "msp"
    local = read_local_msp(msp, with_key=False)
    assert local.ca_certs[0].subject == local.certificate.issuer
    assert read_node_ous(FABRIC_ORG1 / "msp")["peer"] == "cacerts/ca.org1.example.com-cert.pem"
    assert read_node_ous(tmp_path) == {}
