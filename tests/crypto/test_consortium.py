"""Tests for crypto.consortium: the demo home, its identities, keys and network.yaml."""

from __future__ import annotations

import shutil
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.public import PrivateKey

from crypto.certificates import node_ou, validate_certificate
from crypto.consortium import (
    CHENGDU,
    DEPARTMENTS,
    SHENZHEN,
    Consortium,
    create_demo_consortium,
)
from crypto.errors import AccessLedgerError, CertificateError, KeyFileError
from crypto.identity import NODE_OU_FOR_KIND, IdentityKind
from crypto.signing import verify

DEPARTMENT_NAMES = [name for name, _ in DEPARTMENTS]


def test_departments_are_the_eight_of_the_issue() -> None:
    assert DEPARTMENT_NAMES == [
        "PublicSecurity",
        "HRSS",
        "Housing",
        "Education",
        "Health",
        "Tax",
        "CivilAffairs",
        "Audit",
    ]


def test_every_org_has_its_own_root_ca(consortium: Consortium, demo_now: datetime) -> None:
    names = [org.name for org in consortium.orgs()]
    assert names == ["Orderer", *DEPARTMENT_NAMES]
    roots: dict[str, ec.EllipticCurvePublicKey] = {}
    for org in consortium.orgs():
        (ca_cert,) = consortium.org_ca_certs(org.msp_id)
        validate_certificate(ca_cert, ca_certs=[ca_cert], now=demo_now, usage="ca")
        assert ca_cert.not_valid_after_utc - ca_cert.not_valid_before_utc == timedelta(days=3650)
        assert consortium.org_ca_certs(org.name) == [ca_cert]
        assert consortium.certificate_authority(org.name).certificate == ca_cert
        key = ca_cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        roots[org.name] = key
    points = {
        key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint) for key in roots.values()
    }
    assert len(points) == len(roots)


def test_identities_validate_only_under_their_own_org(
    consortium: Consortium, demo_now: datetime
) -> None:
    tax_ca = consortium.org_ca_certs("Tax")
    for identity in consortium.identities():
        consortium.validate_identity(identity, now=demo_now)
        assert (
            identity.certificate.not_valid_after_utc - identity.certificate.not_valid_before_utc
            == (timedelta(days=730))
        )
        if identity.org != "Tax":
            with pytest.raises(CertificateError, match="not issued by the organisation's CA"):
                validate_certificate(identity.certificate, ca_certs=tax_ca, now=demo_now)


def test_certificates_expire_after_two_years(consortium: Consortium, demo_now: datetime) -> None:
    officer = consortium.identity("officer.education.sz1")
    with pytest.raises(CertificateError, match="expired"):
        consortium.validate_identity(officer, now=demo_now + timedelta(days=731))


def test_node_ous_and_kinds_agree(consortium: Consortium) -> None:
    for identity in consortium.identities():
        assert node_ou(identity.certificate) == NODE_OU_FOR_KIND[identity.kind]
        assert identity.msp_id == f"{identity.org}MSP"


def test_peers_admins_and_orderer(consortium: Consortium) -> None:
    for org in DEPARTMENT_NAMES:
        peers = consortium.identities(kind=IdentityKind.PEER, org=org)
        assert [p.name for p in peers] == [f"peer0.{org.lower()}"]
        admins = consortium.identities(kind=IdentityKind.ADMIN, org=org)
        assert [a.name for a in admins] == [f"admin.{org.lower()}"]
        assert peers[0].attributes == {}
    (orderer,) = consortium.identities(kind=IdentityKind.ORDERER)
    assert (orderer.name, orderer.org, orderer.msp_id) == (
        "orderer0.orderer",
        "Orderer",
        "OrdererMSP",
    )


def test_officers_have_realistic_roles_in_two_regions(consortium: Consortium) -> None:
    officers = consortium.identities(kind=IdentityKind.OFFICER)
    roles = {(o.org, o.role) for o in officers}
    for expected in [
        ("Education", "enrolment_officer"),
        ("HRSS", "social_security_officer"),
        ("HRSS", "labour_inspector"),
        ("PublicSecurity", "hukou_officer"),
        ("PublicSecurity", "investigator"),
        ("Health", "medical_settlement_officer"),
        ("Tax", "caseworker"),
        ("Housing", "registrar"),
        ("CivilAffairs", "registrar"),
    ]:
        assert expected in roles
    assert {o.region for o in officers} == {SHENZHEN, CHENGDU}
    for officer in officers:
        assert officer.clearance is not None
        assert 0 <= officer.clearance <= 3
        assert officer.attributes["hf.EnrollmentID"] == officer.name
        assert officer.attributes["hf.Type"] == "client"
    # Every record-owning department has registrars in both regions.
    registrars = {(o.org, o.region) for o in officers if o.role == "registrar"}
    for org in DEPARTMENT_NAMES:
        if org != "Audit":
            assert {(org, SHENZHEN), (org, CHENGDU)} <= registrars


def test_auditors_and_citizens(consortium: Consortium) -> None:
    auditors = consortium.identities(kind=IdentityKind.AUDITOR)
    assert auditors
    assert all(a.org == "Audit" and a.role == "auditor" for a in auditors)
    citizens = consortium.identities(kind=IdentityKind.CITIZEN)
    assert len(citizens) >= 3
    for citizen in citizens:
        assert citizen.org == "CivilAffairs"
        assert citizen.msp_id == "CivilAffairsMSP"
        assert node_ou(citizen.certificate) == "client"
        assert citizen.role == "citizen"
        assert "region" not in citizen.attributes


def test_identity_keys_sign_for_their_certificates(consortium: Consortium) -> None:
    for identity in consortium.identities():
        signature = identity.sign(identity.name.encode())
        verify(identity.public_key, identity.name.encode(), signature)


def test_unknown_names_raise_stable_codes(consortium: Consortium) -> None:
    with pytest.raises(AccessLedgerError) as info:
        consortium.identity("officer.nowhere.1")
    assert info.value.code == "unknown_identity"
    with pytest.raises(AccessLedgerError) as info:
        consortium.org_ca_certs("NoSuchMSP")
    assert info.value.code == "unknown_org"


def test_encryption_keys(consortium: Consortium) -> None:
    holders = [i for i in consortium.identities() if i.kind in {"officer", "auditor", "citizen"}]
    keys = {consortium.encryption_key(i.name) for i in holders}
    assert len(keys) == len(holders)
    assert all(len(k) == 32 for k in keys)
    officer = holders[0].name
    assert consortium.encryption_public_key(officer) == bytes(
        PrivateKey(consortium.encryption_key(officer)).public_key
    )
    for name in ("peer0.tax", "admin.tax", "orderer0.orderer"):
        with pytest.raises(AccessLedgerError) as info:
            consortium.encryption_key(name)
        assert info.value.code == "no_encryption_key"


def test_custodian_keys(consortium: Consortium) -> None:
    keys = {org: consortium.custodian_key(org) for org in DEPARTMENT_NAMES}
    assert len(set(keys.values())) == len(DEPARTMENT_NAMES)
    assert consortium.custodian_key("TaxMSP") == keys["Tax"]
    assert consortium.custodian_public_key("Tax") == bytes(PrivateKey(keys["Tax"]).public_key)
    with pytest.raises(AccessLedgerError) as info:
        consortium.custodian_key("Orderer")
    assert info.value.code == "no_custodian"


def test_consortium_secret(consortium: Consortium, demo_home: Path) -> None:
    secret = consortium.consortium_secret()
    assert len(secret) == 32
    assert stat.S_IMODE((demo_home / "consortium.secret").stat().st_mode) == 0o600


def test_private_files_are_0600(demo_home: Path) -> None:
    private = [
        *demo_home.glob("orgs/*/ca/ca-key.pem"),
        *demo_home.glob("orgs/*/identities/*/msp/keystore/key.pem"),
        *demo_home.glob("orgs/*/identities/*/x25519.key"),
        *demo_home.glob("orgs/*/custodian/x25519.key"),
    ]
    assert len(private) == 9 + 50 + 32 + 8
    assert {stat.S_IMODE(p.stat().st_mode) for p in private} == {0o600}


def test_network_yaml(demo_home: Path, consortium: Consortium) -> None:
    document = yaml.safe_load((demo_home / "network.yaml").read_text())
    assert document == consortium.topology
    assert document["version"] == 1
    assert document["channel"] == "accessledger"
    assert document["orderer"]["msp_id"] == "OrdererMSP"
    assert document["orderer"]["identity"] == "orderer0.orderer"
    assert document["orderer"]["batch"]["max_message_count"] == 100
    orgs = document["organizations"]
    assert [o["name"] for o in orgs] == DEPARTMENT_NAMES
    addresses = set()
    for org in orgs:
        assert org["msp_id"] == f"{org['name']}MSP"
        assert (demo_home / org["msp_dir"] / "config.yaml").is_file()
        (peer,) = org["peers"]
        assert peer["identity"] == f"peer0.{org['name'].lower()}"
        addresses.add(peer["address"])
    assert len(addresses) == len(orgs)
    policy = document["endorsement_policy"]
    assert policy.startswith("OutOf(2, ")
    for org in orgs:
        assert f"'{org['msp_id']}.peer'" in policy
    assert document["chaincode"] == {"name": "accessledger", "version": "1.0"}
    assert document["gateway"]["url"] == "http://127.0.0.1:8000"


def test_network_yaml_is_accepted_by_the_topology_reader(demo_home: Path) -> None:
    topology = pytest.importorskip("network.topology")
    loaded = topology.Topology.load(demo_home / "network.yaml")
    assert len(loaded.organizations) == 8


def test_public_only_load_has_no_private_keys(demo_home: Path) -> None:
    public = Consortium.load(demo_home, public_only=True)
    assert all(i.private_key is None for i in public.identities())
    assert len(public.identities()) == len(Consortium.load(demo_home).identities())


def test_load_refuses_a_readable_key(demo_home: Path, tmp_path: Path) -> None:
    copy = tmp_path / "home"
    shutil.copytree(demo_home, copy)
    key = copy / "orgs/HRSS/identities/officer.hrss.sz1/msp/keystore/key.pem"
    key.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"officer\.hrss\.sz1.*chmod 600"):
        Consortium.load(copy)
    Consortium.load(copy, public_only=True)  # listing needs no private key


def test_load_refuses_a_directory_that_is_not_a_home(tmp_path: Path) -> None:
    with pytest.raises(AccessLedgerError, match="not an AccessLedger home") as info:
        Consortium.load(tmp_path)
    assert info.value.code == "home_missing"


def test_create_refuses_existing_home_and_leaves_it(
    demo_home: Path, tmp_path: Path, demo_now: datetime
) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo_home, home)
    before = (home / "orgs/Tax/ca/ca-cert.pem").read_bytes()
    with pytest.raises(AccessLedgerError, match="already exists; pass --force") as info:
        create_demo_consortium(home, now=demo_now)
    assert info.value.code == "home_exists"
    assert (home / "orgs/Tax/ca/ca-cert.pem").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no staging left


def test_force_replaces_a_home(demo_home: Path, tmp_path: Path, demo_now: datetime) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo_home, home)
    (home / "stale-file").write_text("from the old home")
    before = (home / "orgs/Tax/ca/ca-cert.pem").read_bytes()
    fresh = create_demo_consortium(home, now=demo_now, force=True)
    assert (home / "orgs/Tax/ca/ca-cert.pem").read_bytes() != before
    assert not (home / "stale-file").exists()
    assert len(fresh.identities()) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_force_never_deletes_a_directory_that_is_not_a_home(
    tmp_path: Path, demo_now: datetime
) -> None:
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(AccessLedgerError, match="not an AccessLedger home"):
        create_demo_consortium(precious, now=demo_now, force=True)
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_create_into_empty_directory_and_file_refusal(tmp_path: Path, demo_now: datetime) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    create_demo_consortium(empty, now=demo_now)
    assert (empty / "network.yaml").is_file()
    assert stat.S_IMODE(empty.stat().st_mode) == 0o700
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(AccessLedgerError, match="not a directory"):
        create_demo_consortium(a_file, now=demo_now, force=True)


def test_naive_clock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone"):
        create_demo_consortium(tmp_path / "h", now=datetime(2026, 1, 1))
