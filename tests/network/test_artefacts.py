"""Fabric artefacts (configtx.yaml, connection profiles, genesis block) from a demo home."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fabric_protos.common import common_pb2, policies_pb2
from fabric_protos.msp import msp_config_pb2
from typer.testing import CliRunner

from cli.main import app
from crypto.errors import AccessLedgerError
from network.artefacts import (
    CONFIGTX_FILE,
    PROFILE_NAME,
    connection_profile,
    render_configtx,
    write_artefacts,
)
from network.fabric.blocks import verify_data_hash
from network.fabric.configblock import (
    batch_settings_from_config,
    endorsement_policy_from_config,
    parse_go_duration,
    read_config,
)
from network.fabric.policy import parse_signature_policy
from network.topology import Topology

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
_IMPLICIT = re.compile(r"^(ANY|ALL|MAJORITY) [A-Za-z]+$")


@pytest.fixture(scope="module")
def home(demo_home: Path) -> Path:
    """The session's demo home (read-only here: artefacts go to tmp_path)."""
    return demo_home


@pytest.fixture(scope="module")
def topology(home: Path) -> Topology:
    return Topology.load(home / "network.yaml")


@pytest.fixture(scope="module")
def configtx(topology: Topology, home: Path) -> dict[str, Any]:
    document = yaml.safe_load(render_configtx(topology, home))
    assert isinstance(document, dict)
    return document


def fabric_msp(value: bytes) -> msp_config_pb2.FabricMSPConfig:
    return msp_config_pb2.FabricMSPConfig.FromString(
        msp_config_pb2.MSPConfig.FromString(value).config
    )


def check_policy(policy: dict[str, str]) -> policies_pb2.Policy:
    """A configtx policy must be a Signature expression Fabric parses or an ImplicitMeta rule."""
    assert set(policy) == {"Type", "Rule"}
    if policy["Type"] == "ImplicitMeta":
        assert _IMPLICIT.match(policy["Rule"]), policy
        return policies_pb2.Policy()
    assert policy["Type"] == "Signature"
    envelope = parse_signature_policy(policy["Rule"])
    return policies_pb2.Policy(
        type=policies_pb2.Policy.SIGNATURE, value=envelope.SerializeToString()
    )


def test_configtx_lists_every_organisation_with_its_msp(
    configtx: dict[str, Any], topology: Topology, home: Path
) -> None:
    orgs = {org["Name"]: org for org in configtx["Organizations"]}
    assert set(orgs) == {o.name for o in topology.organizations} | {topology.orderer.org}
    for spec in topology.organizations:
        entry = orgs[spec.name]
        assert entry["ID"] == spec.msp_id
        msp_dir = Path(entry["MSPDir"])
        assert msp_dir.is_absolute()
        assert msp_dir == (home / spec.msp_dir).absolute()
        assert any((msp_dir / "cacerts").iterdir())
        assert (msp_dir / "config.yaml").is_file()
        assert set(entry["Policies"]) == {"Readers", "Writers", "Admins", "Endorsement"}
        for policy in entry["Policies"].values():
            check_policy(policy)
        assert entry["AnchorPeers"] == [{"Host": p.host, "Port": p.port} for p in spec.peers]
    orderer = orgs[topology.orderer.org]
    assert orderer["ID"] == "OrdererMSP"
    assert Path(orderer["MSPDir"], "cacerts").is_dir()
    assert orderer["OrdererEndpoints"] == [topology.orderer.address]


def test_configtx_profile_is_complete(configtx: dict[str, Any], topology: Topology) -> None:
    assert configtx["Capabilities"] == {
        "Channel": {"V2_0": True},
        "Orderer": {"V2_0": True},
        "Application": {"V2_5": True},
    }
    profile = configtx["Profiles"][PROFILE_NAME]
    application = profile["Application"]
    assert [o["Name"] for o in application["Organizations"]] == [
        o.name for o in topology.organizations
    ]
    # The profile reuses the organisation definitions (YAML anchors), not copies that can drift.
    assert application["Organizations"] == configtx["Organizations"][1:]
    assert application["Capabilities"] == {"V2_5": True}
    policies = application["Policies"]
    assert policies["Endorsement"] == {"Type": "Signature", "Rule": topology.endorsement_policy}
    assert policies["LifecycleEndorsement"] == {
        "Type": "ImplicitMeta",
        "Rule": "MAJORITY Endorsement",
    }
    for policy in (*policies.values(), *profile["Policies"].values()):
        check_policy(policy)

    orderer = profile["Orderer"]
    batch = topology.orderer.batch
    assert orderer["OrdererType"] == "etcdraft"
    assert orderer["Addresses"] == [topology.orderer.address]
    assert parse_go_duration(orderer["BatchTimeout"]) == batch.batch_timeout_ms
    assert orderer["BatchSize"] == {
        "MaxMessageCount": batch.max_message_count,
        "AbsoluteMaxBytes": batch.absolute_max_bytes,
        "PreferredMaxBytes": batch.preferred_max_bytes,
    }
    [consenter] = orderer["EtcdRaft"]["Consenters"]
    assert (consenter["Host"], consenter["Port"]) == ("127.0.0.1", 7050)
    assert Path(consenter["ServerTLSCert"]).read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    assert [o["ID"] for o in orderer["Organizations"]] == ["OrdererMSP"]
    assert set(orderer["Policies"]) == {"Readers", "Writers", "Admins", "BlockValidation"}
    assert profile["Capabilities"] == {"V2_0": True}


def test_configtx_uses_readable_anchors(topology: Topology, home: Path) -> None:
    text = render_configtx(topology, home)
    assert text.startswith("# Hyperledger Fabric configtx.yaml")
    assert "&Education" in text
    assert "*Education" in text
    assert "Orderer: *OrdererDefaults" in text
    assert "&id0" not in text


def test_configtx_policies_match_the_genesis_block(
    tmp_path: Path, configtx: dict[str, Any], topology: Topology, home: Path
) -> None:
    """configtx.yaml and the genesis block say the same thing about every organisation."""
    written = write_artefacts(topology, home, tmp_path, now=NOW)
    block_path = tmp_path / "accessledger.block"
    assert block_path in written
    block = common_pb2.Block.FromString(block_path.read_bytes())
    verify_data_hash(block)
    config = read_config(block)
    groups = config.channel_group.groups["Application"].groups
    for entry in configtx["Organizations"][1:]:
        for name, policy in entry["Policies"].items():
            assert groups[entry["Name"]].policies[name].policy == check_policy(policy), name
    assert batch_settings_from_config(config) == topology.orderer.batch
    assert endorsement_policy_from_config(config) == parse_signature_policy(
        topology.endorsement_policy
    )


def test_connection_profiles(tmp_path: Path, topology: Topology, home: Path) -> None:
    written = write_artefacts(topology, home, tmp_path, now=NOW)
    assert tmp_path / CONFIGTX_FILE in written
    for org in topology.organizations:
        stem = f"connection-{org.name.lower()}"
        from_yaml = yaml.safe_load((tmp_path / f"{stem}.yaml").read_text())
        from_json = json.loads((tmp_path / f"{stem}.json").read_text())
        assert from_yaml == from_json == connection_profile(topology, home, org.name)
        profile = from_json
        assert profile["version"] == "1.0.0"
        assert profile["client"]["organization"] == org.name
        assert list(profile["organizations"]) == [org.name]
        described = profile["organizations"][org.name]
        assert described["mspid"] == org.msp_id
        assert described["certificateAuthorities"] == [f"ca.{org.domain}"]
        assert described["peers"] == [org.peer_hostname(p) for p in org.peers]
        for peer in org.peers:
            entry = profile["peers"][org.peer_hostname(peer)]
            assert entry["url"] == f"grpcs://{peer.address}"
            tls = Path(entry["tlsCACerts"]["path"])
            assert tls.parent == (home / org.msp_dir / "tlscacerts").absolute()
            assert entry["grpcOptions"]["ssl-target-name-override"] == org.peer_hostname(peer)
        ca = profile["certificateAuthorities"][f"ca.{org.domain}"]
        assert ca["url"].startswith("https://")


def test_tls_ca_certificates_are_used_when_the_home_has_them(tmp_path: Path, home: Path) -> None:
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    topology = Topology.load(copy)
    tls_dir = copy / topology.organization("Tax").msp_dir / "tlscacerts"
    tls_dir.mkdir()
    tls_pem = (copy / "orgs/Tax/msp/cacerts/ca-cert.pem").read_bytes()  # any PEM certificate
    (tls_dir / "tls-ca.pem").write_bytes(tls_pem)

    profile = connection_profile(topology, copy, "Tax")
    assert profile["peers"]["peer0.tax.gov.example"]["tlsCACerts"] == {
        "path": str((tls_dir / "tls-ca.pem").absolute())
    }
    write_artefacts(topology, copy, tmp_path / "out", now=NOW)
    text = (tmp_path / "out/connection-tax.yaml").read_text()
    assert "&id" not in text  # plain YAML, no anchors an operator has to chase
    config = read_config(
        common_pb2.Block.FromString((tmp_path / "out/accessledger.block").read_bytes())
    )
    tax = config.channel_group.groups["Application"].groups["Tax"].values["MSP"].value
    assert list(fabric_msp(tax).tls_root_certs) == [tls_pem]


def test_cli_writes_the_artefacts(tmp_path: Path, home: Path, topology: Topology) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["network", "artefacts", "--home", str(home), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    listed = {Path(line) for line in result.output.split()}
    expected = {out / CONFIGTX_FILE, out / "accessledger.block"} | {
        out / f"connection-{o.name.lower()}.{ext}"
        for o in topology.organizations
        for ext in ("yaml", "json")
    }
    assert listed == expected
    assert all(path.is_file() for path in expected)


def test_cli_reports_a_bad_home(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["network", "artefacts", "--home", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "invalid_topology" in result.output
    assert not isinstance(result.exception, AccessLedgerError)
    assert not (tmp_path / "o").exists()
