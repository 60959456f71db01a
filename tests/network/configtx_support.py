"""Helpers for config-update tests: a new department's material, signed updates, CRLs.

The new department is made with :class:`crypto.ca.CertificateAuthority`
directly (a CA, its MSP folder, a peer, an admin and an officer), and
:func:`register_in_home` writes it into a home the way onboarding does, so
``Consortium.load`` finds its identities.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.common import common_pb2, configtx_pb2

from crypto.ca import CertificateAuthority
from crypto.identity import Identity, IdentityKind, officer_attributes
from crypto.msp import write_local_msp, write_org_msp
from network.fabric.configblock import load_msp_config
from network.fabric.configtx import compute_update, config_update_envelope, sign_config_update
from network.fabric.transactions import compute_tx_id
from network.topology import OrganizationSpec, PeerSpec

CHANNEL = "accessledger"
#: The demo consortium's eight departments; /Channel/Application/Admins is MAJORITY of them.
DEPARTMENTS = (
    "PublicSecurity", "HRSS", "Housing", "Education", "Health", "Tax", "CivilAffairs", "Audit",
)  # fmt: skip
MAJORITY = len(DEPARTMENTS) // 2 + 1


@dataclass(frozen=True)
class NewDepartment:
    """A department that is not (yet) on the channel: its CA, MSP config and identities."""

    spec: OrganizationSpec
    ca: CertificateAuthority
    msp_dir: Path
    peer: Identity
    admin: Identity
    officer: Identity

    @property
    def msp(self) -> Any:
        """The ``msp.MSPConfig`` a channel config carries for it."""
        return load_msp_config(self.msp_dir, self.spec.msp_id)


def _identity(
    ca: CertificateAuthority, name: str, kind: IdentityKind, node_ou: str, now: datetime
) -> Identity:
    attributes = (
        officer_attributes(role="caseworker", region="440300", clearance=2)
        if kind == IdentityKind.OFFICER
        else None
    )
    cert, key = ca.issue(common_name=name, node_ou=node_ou, attributes=attributes, now=now)
    return Identity(
        name=name,
        kind=kind,
        org=ca.org,
        msp_id=ca.msp_id,
        certificate=cert,
        private_key=key,
        attributes=attributes or {},
    )


def new_department(root: Path, *, org: str = "Transport", now: datetime) -> NewDepartment:
    """Create a department's CA and identities, with its MSP folder under ``root``."""
    slug = org.lower()
    domain = f"{slug}.gov.example"
    msp_id = f"{org}MSP"
    ca = CertificateAuthority.create(org=org, msp_id=msp_id, domain=domain, now=now)
    msp_dir = root / "orgs" / org / "msp"
    write_org_msp(msp_dir, ca.certificate)
    spec = OrganizationSpec(
        name=org,
        msp_id=msp_id,
        domain=domain,
        msp_dir=f"orgs/{org}/msp",
        peers=(PeerSpec(identity=f"peer0.{slug}", address="127.0.0.1:15051"),),
    )
    return NewDepartment(
        spec=spec,
        ca=ca,
        msp_dir=msp_dir,
        peer=_identity(ca, f"peer0.{slug}", IdentityKind.PEER, "peer", now),
        admin=_identity(ca, f"admin.{slug}", IdentityKind.ADMIN, "admin", now),
        officer=_identity(ca, f"officer.{slug}.sz1", IdentityKind.OFFICER, "client", now),
    )


def register_in_home(home: Path, department: NewDepartment) -> None:
    """Write the department into ``home``: CA, MSP, identities, a ``network.yaml`` entry."""
    org = department.spec.name
    department.ca.save(home / "orgs" / org / "ca")
    write_org_msp(home / department.spec.msp_dir, department.ca.certificate)
    for identity in (department.peer, department.admin, department.officer):
        write_local_msp(
            home / "orgs" / org / "identities" / identity.name / "msp",
            ca_cert=department.ca.certificate,
            certificate=identity.certificate,
            private_key=identity.private_key,
        )
    path = home / "network.yaml"
    topology = yaml.safe_load(path.read_text())
    peer = department.spec.peers[0]
    topology["organizations"].append(
        {
            "name": org,
            "msp_id": department.spec.msp_id,
            "domain": department.spec.domain,
            "msp_dir": department.spec.msp_dir,
            "peers": [{"identity": peer.identity, "address": peer.address}],
        }
    )
    path.write_text(yaml.safe_dump(topology, sort_keys=False))


def endorsement_rule(msp_ids: Sequence[str]) -> str:
    """The demo endorsement policy over ``msp_ids``: two peers of different departments."""
    return "OutOf(2, " + ", ".join(f"'{m}.peer'" for m in msp_ids) + ")"


def signed_update(
    original: Any,
    updated: Any,
    signers: Sequence[Identity],
    *,
    creator: Identity,
    now: datetime,
    channel_id: str = CHANNEL,
) -> bytes:
    """A CONFIG_UPDATE envelope turning ``original`` into ``updated``, signed by ``signers``."""
    update = compute_update(channel_id, original, updated).SerializeToString()
    signatures = [sign_config_update(update, signer) for signer in signers]
    return config_update_envelope(channel_id, update, signatures, creator=creator, now=now)


def crl_pem(ca: CertificateAuthority, revoked: Sequence[x509.Certificate], now: datetime) -> bytes:
    """A PEM CRL signed by ``ca`` listing ``revoked``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + timedelta(days=30))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - timedelta(minutes=1))
            .build()
        )
    return builder.sign(ca.private_key, hashes.SHA256()).public_bytes(Encoding.PEM)


def config_transaction(
    config: Any, last_update: bytes, orderer: Identity, now: datetime, *, channel_id: str = CHANNEL
) -> bytes:
    """An orderer-signed CONFIG envelope carrying ``config`` and the update that made it."""
    nonce = os.urandom(24)
    creator = orderer.serialized()
    header = common_pb2.ChannelHeader(
        type=common_pb2.HeaderType.CONFIG,
        channel_id=channel_id,
        tx_id=compute_tx_id(nonce, creator),
    )
    header.timestamp.seconds = int(now.timestamp())
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=header.SerializeToString(),
            signature_header=common_pb2.SignatureHeader(
                creator=creator, nonce=nonce
            ).SerializeToString(),
        ),
        data=configtx_pb2.ConfigEnvelope(
            config=config, last_update=common_pb2.Envelope.FromString(last_update)
        ).SerializeToString(),
    ).SerializeToString()
    envelope: bytes = common_pb2.Envelope(
        payload=payload, signature=orderer.sign(payload)
    ).SerializeToString()
    return envelope
