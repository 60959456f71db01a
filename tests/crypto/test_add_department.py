"""Tests for crypto.consortium.add_department: onboarding one more department into a home."""

from __future__ import annotations

import shutil
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

import crypto.onboarding as onboarding_module
from crypto.certificates import node_ou, validate_certificate
from crypto.consortium import CHENGDU, SHENZHEN, Consortium
from crypto.errors import AccessLedgerError, CertificateError
from crypto.identity import NODE_OU_FOR_KIND, IdentityKind
from crypto.msp import node_ous_config, read_node_ous
from crypto.onboarding import add_department, department_officer_name
from network.topology import Topology, endorsement_policy_envelope


@pytest.fixture
def home(tmp_path: Path, demo_home: Path) -> Path:
    """A private copy of the demo home (key files keep their 0600 modes)."""
    copy = tmp_path / "home"
    shutil.copytree(demo_home, copy)
    return copy


def _snapshot(home: Path) -> tuple[bytes, list[str]]:
    """``network.yaml`` bytes and every path in the home: what a refusal must not change."""
    return (home / "network.yaml").read_bytes(), sorted(
        str(p.relative_to(home)) for p in home.rglob("*")
    )


def test_adds_a_department_that_every_loader_sees(home: Path, demo_now: datetime) -> None:
    before = yaml.safe_load((home / "network.yaml").read_text())
    info = add_department(
        home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now
    )
    assert (info.name, info.msp_id, info.domain, info.msp_dir, info.is_orderer) == (
        "Transport",
        "TransportMSP",
        "transport.gov.example",
        "orgs/Transport/msp",
        False,
    )

    consortium = Consortium.load(home)
    assert consortium.org("TransportMSP") == info
    assert [o.name for o in consortium.orgs()][-1] == "Transport"
    identities = consortium.identities(org="Transport")
    assert [(i.name, i.kind) for i in identities] == [
        ("peer0.transport", IdentityKind.PEER),
        ("admin.transport", IdentityKind.ADMIN),
        ("officer.transport.sz1", IdentityKind.OFFICER),
    ]
    (root,) = consortium.org_ca_certs("Transport")
    validate_certificate(root, ca_certs=[root], now=demo_now, usage="ca")
    other_roots = {c for o in consortium.orgs()[:-1] for c in consortium.org_ca_certs(o.name)}
    assert root not in other_roots
    for identity in identities:
        consortium.validate_identity(identity, now=demo_now)
        assert identity.msp_id == "TransportMSP"
        assert node_ou(identity.certificate) == NODE_OU_FOR_KIND[identity.kind]
        with pytest.raises(CertificateError):
            validate_certificate(
                identity.certificate, ca_certs=consortium.org_ca_certs("Tax"), now=demo_now
            )
    officer = consortium.identity("officer.transport.sz1")
    assert (officer.role, officer.region, officer.clearance) == ("caseworker", SHENZHEN, 2)
    assert officer.attributes["hf.EnrollmentID"] == "officer.transport.sz1"
    assert len(consortium.encryption_public_key(officer.name)) == 32
    assert len(consortium.custodian_public_key("Transport")) == 32
    assert consortium.custodian_key("Transport") not in {
        consortium.custodian_key(o.name)
        for o in consortium.orgs()
        if o.name
        not in {
            "Orderer",
            "Transport",
        }
    }

    # Fabric MSP layout with cryptogen's NodeOUs, public material only.
    msp = home / "orgs" / "Transport" / "msp"
    assert sorted(p.name for p in msp.iterdir()) == ["cacerts", "config.yaml"]
    assert yaml.safe_load((msp / "config.yaml").read_text()) == node_ous_config()
    assert set(read_node_ous(msp)) == {"client", "peer", "admin", "orderer"}
    for private in [
        home / "orgs/Transport/ca/ca-key.pem",
        home / "orgs/Transport/custodian/x25519.key",
        home / "orgs/Transport/identities/officer.transport.sz1/x25519.key",
        *home.glob("orgs/Transport/identities/*/msp/keystore/key.pem"),
    ]:
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private

    # network.yaml: same format, the org appended, its peer on the next port of the series.
    after = yaml.safe_load((home / "network.yaml").read_text())
    assert after["organizations"][:-1] == before["organizations"]
    assert after["organizations"][-1] == {
        "name": "Transport",
        "msp_id": "TransportMSP",
        "domain": "transport.gov.example",
        "msp_dir": "orgs/Transport/msp",
        "peers": [{"identity": "peer0.transport", "address": "127.0.0.1:15051"}],
    }
    assert {k: v for k, v in after.items() if k not in {"organizations", "endorsement_policy"}} == {
        k: v for k, v in before.items() if k not in {"organizations", "endorsement_policy"}
    }
    old_rule = before["endorsement_policy"]
    assert after["endorsement_policy"] == old_rule[:-1] + ", 'TransportMSP.peer')"
    assert after["endorsement_policy"].startswith("OutOf(2, ")

    topology = Topology.load(home / "network.yaml")
    spec = topology.organization("Transport")
    assert spec.msp_id == "TransportMSP"
    assert [(p.identity, p.port) for p in spec.peers] == [("peer0.transport", 15051)]
    assert topology.msp_ids[-1] == "TransportMSP"
    envelope = endorsement_policy_envelope(topology.endorsement_policy, topology.msp_ids)
    assert len(envelope.identities) == 9
    assert envelope.rule.n_out_of.n == 2


def test_second_department_with_its_own_names(home: Path, demo_now: datetime) -> None:
    add_department(home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now)
    info = add_department(
        home,
        org="Water",
        msp_id="WaterBureauMSP",
        domain="water.hz.example.cn",
        region="330100",
        officer_role="registrar",
        now=demo_now,
    )
    assert (info.msp_id, info.domain) == ("WaterBureauMSP", "water.hz.example.cn")
    topology = Topology.load(home)
    assert [(p.identity, p.address) for p in topology.organization("Water").peers] == [
        ("peer0.water", "127.0.0.1:16051")
    ]
    assert topology.endorsement_policy.endswith("'TransportMSP.peer', 'WaterBureauMSP.peer')")
    consortium = Consortium.load(home)
    officer = consortium.identity("officer.water.330100-1")
    assert (officer.org, officer.msp_id, officer.role, officer.region) == (
        "Water",
        "WaterBureauMSP",
        "registrar",
        "330100",
    )
    assert (
        consortium.org_ca_certs("Water")[0]
        .subject.rfc4514_string()
        .startswith("CN=ca.water.hz.example.cn")
    )


def test_officer_names_follow_the_roster() -> None:
    assert department_officer_name("Transport", SHENZHEN) == "officer.transport.sz1"
    assert department_officer_name("Transport", CHENGDU) == "officer.transport.cd1"
    assert department_officer_name("Transport", "330100") == "officer.transport.330100-1"


def test_a_free_port_in_the_series_is_reused(home: Path, demo_now: datetime) -> None:
    document = yaml.safe_load((home / "network.yaml").read_text())
    document["organizations"][2]["peers"][0]["address"] = "127.0.0.1:20051"
    (home / "network.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    add_department(home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now)
    assert Topology.load(home).organization("Transport").peers[0].address == "127.0.0.1:9051"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"org": "Bad-Name"}, "invalid_org_name"),
        ({"org": "Road_Transport"}, "invalid_org_name"),
        ({"org": "Transport.Bureau"}, "invalid_org_name"),
        ({"org": "1Transport"}, "invalid_org_name"),
        ({"org": ""}, "invalid_org_name"),
        ({"org": "T" * 65}, "invalid_org_name"),
        ({"org": "Transport", "msp_id": "Transport MSP"}, "invalid_msp_id"),
        ({"org": "Transport", "msp_id": "Transport_MSP"}, "invalid_msp_id"),
        ({"org": "Transport", "domain": "bad_domain.example"}, "invalid_domain"),
        ({"org": "Transport", "domain": "-x.example"}, "invalid_domain"),
        ({"org": "Housing"}, "org_exists"),
        ({"org": "housing"}, "org_exists"),
        ({"org": "Orderer"}, "org_exists"),
        ({"org": "TaxMSP"}, "org_exists"),
        ({"org": "Transport", "msp_id": "TaxMSP"}, "msp_id_exists"),
        ({"org": "Transport", "msp_id": "Health"}, "msp_id_exists"),
        ({"org": "Transport", "domain": "tax.gov.example"}, "domain_exists"),
        ({"org": "Transport", "region": "44030"}, "invalid_attributes"),
        ({"org": "Transport", "officer_role": "Case Worker"}, "invalid_attributes"),
    ],
)
def test_refusals_change_nothing(
    home: Path, demo_now: datetime, kwargs: dict[str, str], code: str
) -> None:
    before = _snapshot(home)
    arguments = {"region": SHENZHEN, "officer_role": "caseworker", **kwargs}
    with pytest.raises(AccessLedgerError) as info:
        add_department(home, now=demo_now, **arguments)
    assert info.value.code == code
    assert _snapshot(home) == before


def test_a_leftover_org_directory_is_refused(home: Path, demo_now: datetime) -> None:
    (home / "orgs" / "Transport" / "ca").mkdir(parents=True)
    before = _snapshot(home)
    with pytest.raises(AccessLedgerError) as info:
        add_department(
            home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now
        )
    assert info.value.code == "org_dir_exists"
    assert _snapshot(home) == before


def test_an_identity_name_in_use_is_refused(home: Path, demo_now: datetime) -> None:
    (home / "orgs" / "Tax" / "identities" / "officer.transport.sz1").mkdir()
    before = _snapshot(home)
    with pytest.raises(AccessLedgerError) as info:
        add_department(
            home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now
        )
    assert info.value.code == "identity_exists"
    assert _snapshot(home) == before


@pytest.mark.parametrize("failing", ["issue_identity", "_replace_file"])
def test_a_failure_leaves_no_half_added_org(
    home: Path, demo_now: datetime, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    before = _snapshot(home)

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(onboarding_module, failing, fail)
    with pytest.raises(OSError, match="disk full"):
        add_department(
            home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now
        )
    assert _snapshot(home) == before
    monkeypatch.undo()
    add_department(home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now)
    assert Consortium.load(home).org("Transport").msp_id == "TransportMSP"


def test_implicit_meta_endorsement_is_kept(home: Path, demo_now: datetime) -> None:
    document = yaml.safe_load((home / "network.yaml").read_text())
    document["endorsement_policy"] = "MAJORITY Endorsement"
    (home / "network.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    add_department(home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now)
    assert Topology.load(home).endorsement_policy == "MAJORITY Endorsement"


def test_an_endorsement_rule_it_cannot_extend_is_refused(home: Path, demo_now: datetime) -> None:
    document = yaml.safe_load((home / "network.yaml").read_text())
    document["endorsement_policy"] = "AND('TaxMSP.peer', OR('HRSSMSP.peer', 'HealthMSP.peer'))"
    (home / "network.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    before = _snapshot(home)
    with pytest.raises(AccessLedgerError) as info:
        add_department(
            home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now
        )
    assert info.value.code == "endorsement_policy_unsupported"
    assert _snapshot(home) == before


def test_needs_a_home_and_an_aware_clock(tmp_path: Path, home: Path, demo_now: datetime) -> None:
    with pytest.raises(AccessLedgerError) as info:
        add_department(
            tmp_path / "nowhere",
            org="Transport",
            region=SHENZHEN,
            officer_role="caseworker",
            now=demo_now,
        )
    assert info.value.code == "home_missing"
    with pytest.raises(ValueError, match="timezone-aware"):
        add_department(
            home,
            org="Transport",
            region=SHENZHEN,
            officer_role="caseworker",
            now=demo_now.replace(tzinfo=None),
        )


def test_new_identities_expire_like_the_demo_ones(home: Path, demo_now: datetime) -> None:
    later = demo_now + timedelta(days=30)
    add_department(home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=later)
    consortium = Consortium.load(home)
    officer = consortium.identity("officer.transport.sz1")
    consortium.validate_identity(officer, now=later + timedelta(days=729))
    with pytest.raises(CertificateError, match="not valid before"):
        consortium.validate_identity(officer, now=demo_now)


def test_an_interrupted_onboarding_is_cleared_and_runs_again(
    home: Path, demo_now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after moving the folder in but before network.yaml named it: a rerun succeeds."""

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # stands for the process dying here

    # Simulate the kill: the folder is moved in, network.yaml is never rewritten and the
    # cleanup of a normal failure does not run.
    monkeypatch.setattr(onboarding_module, "_replace_file", crash)
    monkeypatch.setattr(onboarding_module.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        add_department(
            home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now
        )
    monkeypatch.undo()
    assert (home / "orgs" / "Transport" / ".onboarding-in-progress").is_file()
    assert list(home.glob(".add-Transport-*"))  # the staging folder was left too

    info = add_department(
        home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now
    )
    assert info.name == "Transport"
    assert not (home / "orgs" / "Transport" / ".onboarding-in-progress").exists()
    assert not list(home.glob(".add-Transport-*"))
    assert Consortium.load(home).org("Transport").msp_id == "TransportMSP"
