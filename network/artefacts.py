"""Fabric deployment artefacts generated from the home's topology.

When departments run real Hyperledger Fabric nodes, an operator needs the
files Fabric's own tooling consumes. From the same ``network.yaml`` that
drives the embedded engine this module writes:

* ``configtx.yaml``: organisations (MSP folders of the home, policies,
  anchor peers, orderer endpoints), capabilities, the application, orderer
  (etcdraft) and channel sections, and the ``AccessLedgerChannel`` profile,
  ready for ``configtxgen -profile AccessLedgerChannel -outputBlock ...``.
  Its policies are the ones :mod:`network.fabric.configblock` puts in the
  genesis block, written as Fabric's policy expressions.
* ``connection-<org>.yaml`` and ``.json``: one connection profile per
  department, shaped like the ones fabric-samples' test-network generates.
* ``<channel>.block``: the application-channel genesis block for
  ``osnadmin channel join``, built by :mod:`network.fabric.configblock`.

TLS material is not part of an AccessLedger home (the embedded engine runs
in one process). Profiles therefore point ``tlsCACerts`` at the Fabric MSP
convention ``<msp>/tlscacerts/`` (the real file when the home has one, a
documented placeholder path otherwise), and the Raft consenter certificate
is the topology's ``orderer.tls_cert`` or, failing that, the orderer's
signing certificate. Paths are absolute so the files work from any
directory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from network.fabric.configblock import (
    APPLICATION_CAPABILITY,
    BLOCK_VALIDATION,
    BLOCK_VALIDATION_RULE,
    CHANNEL_CAPABILITY,
    ENDORSEMENT,
    LIFECYCLE_ENDORSEMENT,
    LIFECYCLE_ENDORSEMENT_RULE,
    ORDERER_CAPABILITY,
    STANDARD_POLICIES,
    application_org_policies,
    endorsement_policy_to_proto,
    format_go_duration,
    genesis_block_for_home,
    orderer_org_policies,
)
from network.topology import IMPLICIT_META_RE, OrganizationSpec, Topology

__all__ = [
    "CONFIGTX_FILE",
    "PROFILE_NAME",
    "configtx_document",
    "connection_profile",
    "render_configtx",
    "write_artefacts",
]

CONFIGTX_FILE = "configtx.yaml"
PROFILE_NAME = "AccessLedgerChannel"
#: Fabric CA's default listening port, used for the placeholder CA URL.
_FABRIC_CA_PORT = 7054
_TLS_CA_PLACEHOLDER = "tlsca-cert.pem"


def _policies(rules: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """configtx.yaml ``Policies`` for rule texts (the same texts the genesis block parses)."""
    return {
        key: {"Type": "ImplicitMeta" if IMPLICIT_META_RE.match(rule) else "Signature", "Rule": rule}
        for key, rule in rules.items()
    }


def _application_org(org: OrganizationSpec, home: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Name": org.name,
        "ID": org.msp_id,
        "MSPDir": str(org.msp_path(home).absolute()),
        "Policies": _policies(application_org_policies(org.msp_id)),
    }
    anchors = [{"Host": p.host, "Port": p.port} for p in org.peers if p.anchor]
    if anchors:
        entry["AnchorPeers"] = anchors
    return entry


def configtx_document(topology: Topology, home: Path) -> dict[str, Any]:
    """``configtx.yaml`` as a plain structure (shared sub-objects become YAML anchors)."""
    home = Path(home)
    spec = topology.orderer
    orderer_org: dict[str, Any] = {
        "Name": spec.org,
        "ID": spec.msp_id,
        "MSPDir": str(spec.msp_path(home).absolute()),
        "Policies": _policies(orderer_org_policies(spec.msp_id)),
        "OrdererEndpoints": [spec.address],
    }
    app_orgs = [_application_org(org, home) for org in topology.organizations]
    capabilities = {
        "Channel": {CHANNEL_CAPABILITY: True},
        "Orderer": {ORDERER_CAPABILITY: True},
        "Application": {APPLICATION_CAPABILITY: True},
    }
    endorsement = topology.endorsement_policy.strip()
    endorsement_policy_to_proto(endorsement, topology.msp_ids)  # validated as the block does
    application = {
        "Organizations": app_orgs,
        "Policies": _policies(
            {
                **STANDARD_POLICIES,
                LIFECYCLE_ENDORSEMENT: LIFECYCLE_ENDORSEMENT_RULE,
                ENDORSEMENT: endorsement,
            }
        ),
        "Capabilities": capabilities["Application"],
    }
    tls_cert = str(spec.tls_cert_path(home).absolute())
    orderer = {
        "OrdererType": "etcdraft",
        "Addresses": [spec.address],
        "EtcdRaft": {
            "Consenters": [
                {
                    "Host": spec.host,
                    "Port": spec.port,
                    "ClientTLSCert": tls_cert,
                    "ServerTLSCert": tls_cert,
                }
            ],
            # configtxgen's defaults, written out so the operator sees them.
            "Options": {
                "TickInterval": "500ms",
                "ElectionTick": 10,
                "HeartbeatTick": 1,
                "MaxInflightBlocks": 5,
                "SnapshotIntervalSize": "16 MB",
            },
        },
        "BatchTimeout": format_go_duration(spec.batch.batch_timeout_ms),
        "BatchSize": {
            "MaxMessageCount": spec.batch.max_message_count,
            "AbsoluteMaxBytes": spec.batch.absolute_max_bytes,
            "PreferredMaxBytes": spec.batch.preferred_max_bytes,
        },
        "Organizations": [orderer_org],
        "Policies": _policies({**STANDARD_POLICIES, BLOCK_VALIDATION: BLOCK_VALIDATION_RULE}),
        "Capabilities": capabilities["Orderer"],
    }
    channel_policies = _policies(STANDARD_POLICIES)
    return {
        "Organizations": [orderer_org, *app_orgs],
        "Capabilities": capabilities,
        "Application": application,
        "Orderer": orderer,
        "Channel": {"Policies": channel_policies, "Capabilities": capabilities["Channel"]},
        "Profiles": {
            PROFILE_NAME: {
                "Policies": channel_policies,
                "Capabilities": capabilities["Channel"],
                "Orderer": orderer,
                "Application": application,
            }
        },
    }


def _anchor_names(document: Mapping[str, Any]) -> dict[int, str]:
    """Readable anchor names (``&Education``, ``&OrdererDefaults``) for the shared objects."""
    names = {id(org): org["Name"] for org in document["Organizations"]}
    caps = document["Capabilities"]
    names.update({id(caps[k]): f"{k}Capabilities" for k in ("Channel", "Orderer", "Application")})
    names[id(document["Application"])] = "ApplicationDefaults"
    names[id(document["Orderer"])] = "OrdererDefaults"
    names[id(document["Channel"]["Policies"])] = "ChannelPolicies"
    return names


def render_configtx(topology: Topology, home: Path) -> str:
    """``configtx.yaml`` text, with a header saying how to use it."""
    document = configtx_document(topology, home)
    names = _anchor_names(document)

    class _Dumper(yaml.SafeDumper):
        def generate_anchor(self, node: yaml.Node) -> str:
            for data_id, represented in self.represented_objects.items():
                if represented is node and data_id in names:
                    return names[data_id]
            return str(super().generate_anchor(node))

    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000
    )
    header = (
        f"# Hyperledger Fabric configtx.yaml for channel {topology.channel!r}, generated by\n"
        f"# `accessledger network artefacts` from {Path(home).absolute() / 'network.yaml'}.\n"
        f"#   configtxgen -configPath <this dir> -profile {PROFILE_NAME} \\\n"
        f"#     -channelID {topology.channel} -outputBlock {topology.channel}.block\n"
        "# The Raft consenter certificate must be the orderer's TLS server certificate in a\n"
        "# TLS deployment; set orderer.tls_cert in network.yaml to point at it.\n"
    )
    return header + body


def _tls_ca_path(org: OrganizationSpec, home: Path) -> str:
    folder = org.msp_path(home).absolute() / "tlscacerts"
    existing = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    return str(existing[0] if existing else folder / _TLS_CA_PLACEHOLDER)


def connection_profile(topology: Topology, home: Path, org_name: str) -> dict[str, Any]:
    """The Fabric connection profile for one department's clients (test-network shape)."""
    home = Path(home)
    org = topology.organization(org_name)
    tls_ca_path = _tls_ca_path(org, home)
    peers = {
        org.peer_hostname(peer): {
            "url": f"grpcs://{peer.address}",
            "tlsCACerts": {"path": tls_ca_path},
            "grpcOptions": {
                "ssl-target-name-override": org.peer_hostname(peer),
                "hostnameOverride": org.peer_hostname(peer),
            },
        }
        for peer in org.peers
    }
    ca_name = f"ca.{org.domain}"
    return {
        "name": f"{topology.channel}-{org.name.lower()}",
        "version": "1.0.0",
        "client": {
            "organization": org.name,
            "connection": {"timeout": {"peer": {"endorser": "300"}}},
        },
        "organizations": {
            org.name: {
                "mspid": org.msp_id,
                "peers": list(peers),
                "certificateAuthorities": [ca_name],
            }
        },
        "peers": peers,
        "certificateAuthorities": {
            ca_name: {
                "url": f"https://{ca_name}:{_FABRIC_CA_PORT}",
                "caName": f"ca-{org.name.lower()}",
                "tlsCACerts": {"path": tls_ca_path},
                "httpOptions": {"verify": False},
            }
        },
    }


def write_artefacts(topology: Topology, home: Path, out: Path, *, now: datetime) -> list[Path]:
    """Write configtx.yaml, every connection profile and the genesis block into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def emit(name: str, data: bytes) -> None:
        path = out / name
        path.write_bytes(data)
        written.append(path)

    emit(CONFIGTX_FILE, render_configtx(topology, home).encode())
    for org in topology.organizations:
        profile = connection_profile(topology, home, org.name)
        stem = f"connection-{org.name.lower()}"
        emit(f"{stem}.yaml", yaml.safe_dump(profile, sort_keys=False, width=1000).encode())
        emit(f"{stem}.json", (json.dumps(profile, indent=2) + "\n").encode())
    block = genesis_block_for_home(topology, home, now=now)
    emit(f"{topology.channel}.block", block.SerializeToString(deterministic=True))
    return written
