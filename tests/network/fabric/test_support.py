"""A small synthetic Fabric channel for tests: real CAs, keys, config and envelopes.

Not a test module itself (it defines no tests); the validator, MSP and
replay tests import it to build transactions the way a Fabric client and
peers would, with keys we hold, so negative cases can be re-signed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.msp import identities_pb2, msp_config_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf.timestamp_pb2 import Timestamp

from crypto.signing import sign
from network.fabric import blocks
from network.fabric.policy import parse_signature_policy

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
CHANNEL = "testchannel"


def _name(cn: str, ou: Sequence[str] = (), org: str = "example.org") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, o) for o in ou]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def make_cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
) -> x509.Certificate:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(usage, critical=True)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


@dataclass
class Member:
    """An identity we hold the key of."""

    msp_id: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def serialized(self) -> bytes:
        return identities_pb2.SerializedIdentity(
            mspid=self.msp_id, id_bytes=pem(self.cert)
        ).SerializeToString()

    def sign(self, data: bytes) -> bytes:
        return sign(self.key, data)


@dataclass
class Org:
    """An organisation with its own root CA and NodeOUs enabled."""

    msp_id: str
    node_ous: bool = True
    ca_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ca_cert: x509.Certificate = field(init=False)
    intermediates: list[x509.Certificate] = field(default_factory=list)
    crls: list[bytes] = field(default_factory=list)
    ou_certificate: x509.Certificate | None = None  # NodeOU certifier (default: the root)

    def __post_init__(self) -> None:
        name = _name(f"ca.{self.msp_id.lower()}", org=self.msp_id)
        self.ca_cert = make_cert(name, self.ca_key, name, self.ca_key, ca=True)

    def member(
        self,
        cn: str,
        ous: Sequence[str] = ("peer",),
        *,
        issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
        **validity: datetime,
    ) -> Member:
        key = ec.generate_private_key(ec.SECP256R1())
        issuer_cert, issuer_key = issuer or (self.ca_cert, self.ca_key)
        cert = make_cert(
            _name(cn, ous, self.msp_id), key, issuer_cert.subject, issuer_key, ca=False, **validity
        )
        return Member(self.msp_id, cert, key)

    def intermediate(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(f"ica.{self.msp_id.lower()}", org=self.msp_id)
        cert = make_cert(name, key, self.ca_cert.subject, self.ca_key, ca=True)
        self.intermediates.append(cert)
        return cert, key

    def revoke(self, member: Member) -> None:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(member.cert.serial_number)
            .revocation_date(NOW - timedelta(days=1))
            .build()
        )
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca_cert.subject)
            .last_update(NOW - timedelta(days=1))
            .next_update(NOW + timedelta(days=30))
            .add_revoked_certificate(revoked)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.crls.append(crl.public_bytes(Encoding.PEM))

    def msp_config(self) -> Any:
        ous = msp_config_pb2.FabricNodeOUs(enable=self.node_ous)
        if self.node_ous:
            for role in ("client", "peer", "admin", "orderer"):
                getattr(ous, f"{role}_ou_identifier").CopyFrom(
                    msp_config_pb2.FabricOUIdentifier(
                        certificate=pem(self.ou_certificate or self.ca_cert),
                        organizational_unit_identifier=role,
                    )
                )
        fabric = msp_config_pb2.FabricMSPConfig(
            name=self.msp_id,
            root_certs=[pem(self.ca_cert)],
            intermediate_certs=[pem(c) for c in self.intermediates],
            revocation_list=self.crls,
            fabric_node_ous=ous,
        )
        return msp_config_pb2.MSPConfig(type=0, config=fabric.SerializeToString())


def _signature_policy(text: str) -> Any:
    return policies_pb2.Policy(
        type=policies_pb2.Policy.SIGNATURE,
        value=parse_signature_policy(text).SerializeToString(),
    )


def _meta(rule: str, sub: str) -> Any:
    value = policies_pb2.ImplicitMetaPolicy(
        sub_policy=sub, rule=policies_pb2.ImplicitMetaPolicy.Rule.Value(rule)
    )
    return policies_pb2.Policy(
        type=policies_pb2.Policy.IMPLICIT_META, value=value.SerializeToString()
    )


def _org_group(org: Org, policies: dict[str, str]) -> Any:
    group = configtx_pb2.ConfigGroup(mod_policy="Admins")
    group.values["MSP"].value = org.msp_config().SerializeToString()
    for name, text in policies.items():
        group.policies[name].policy.CopyFrom(_signature_policy(text))
    return group


def channel_config(orgs: Sequence[Org], orderer: Org, sequence: int = 0) -> Any:
    """A configtx.Config shaped like configtxgen's application channel defaults."""
    config = configtx_pb2.Config(sequence=sequence)
    root = config.channel_group
    app = root.groups["Application"]
    for org in orgs:
        m = org.msp_id
        app.groups[m].CopyFrom(
            _org_group(
                org,
                {
                    "Readers": f"OR('{m}.admin', '{m}.peer', '{m}.client')",
                    "Writers": f"OR('{m}.admin', '{m}.client')",
                    "Admins": f"OR('{m}.admin')",
                    "Endorsement": f"OR('{m}.peer')",
                },
            )
        )
    for name, rule, sub in [
        ("Readers", "ANY", "Readers"),
        ("Writers", "ANY", "Writers"),
        ("Admins", "MAJORITY", "Admins"),
        ("Endorsement", "MAJORITY", "Endorsement"),
        ("LifecycleEndorsement", "MAJORITY", "Endorsement"),
    ]:
        app.policies[name].policy.CopyFrom(_meta(rule, sub))
    ordg = root.groups["Orderer"]
    ordg.groups["OrdererOrg"].CopyFrom(
        _org_group(
            orderer,
            {
                "Readers": f"OR('{orderer.msp_id}.member')",
                "Writers": f"OR('{orderer.msp_id}.member')",
                "Admins": f"OR('{orderer.msp_id}.admin')",
            },
        )
    )
    ordg.policies["BlockValidation"].policy.CopyFrom(_meta("ANY", "Writers"))
    ordg.policies["Writers"].policy.CopyFrom(_meta("ANY", "Writers"))
    for name, rule in [("Readers", "ANY"), ("Writers", "ANY"), ("Admins", "MAJORITY")]:
        root.policies[name].policy.CopyFrom(_meta(rule, name))
    return config


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def config_envelope(config: Any, creator: Member | None = None, tx_type: int = 1) -> bytes:
    chdr = common_pb2.ChannelHeader(
        type=tx_type, channel_id=CHANNEL, timestamp=_timestamp(NOW), epoch=0
    )
    shdr = common_pb2.SignatureHeader(
        creator=creator.serialized if creator else b"", nonce=os.urandom(24)
    )
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=chdr.SerializeToString(), signature_header=shdr.SerializeToString()
        ),
        data=configtx_pb2.ConfigEnvelope(config=config).SerializeToString(),
    ).SerializeToString()
    signature = creator.sign(payload) if creator else b""
    return common_pb2.Envelope(payload=payload, signature=signature).SerializeToString()


def genesis(config: Any) -> Any:
    return blocks.new_block(0, b"", [config_envelope(config)])


@dataclass
class NS:
    """One namespace's simulated read-write set."""

    name: str
    reads: list[tuple[str, tuple[int, int] | None]] = field(default_factory=list)
    writes: list[tuple[str, bytes | None]] = field(default_factory=list)
    ranges: list[Any] = field(default_factory=list)
    metadata: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)
    collections: list[Any] = field(default_factory=list)

    def proto(self) -> Any:
        kv = kv_rwset_pb2.KVRWSet()
        for key, version in self.reads:
            read = kv.reads.add(key=key)
            if version is not None:
                read.version.CopyFrom(kv_rwset_pb2.Version(block_num=version[0], tx_num=version[1]))
        for key, value in self.writes:
            kv.writes.add(key=key, is_delete=value is None, value=value or b"")
        kv.range_queries_info.extend(self.ranges)
        for key, entries in self.metadata:
            mw = kv.metadata_writes.add(key=key)
            for name, value in entries.items():
                mw.entries.add(name=name, value=value)
        return rwset_pb2.NsReadWriteSet(
            namespace=self.name,
            rwset=kv.SerializeToString(),
            collection_hashed_rwset=self.collections,
        )


def endorser_envelope(
    creator: Member,
    endorsers: Sequence[Member],
    namespaces: Sequence[NS],
    *,
    chaincode: str = "basic",
    args: Sequence[bytes] = (b"invoke",),
    tx_id: str | None = None,
    channel: str = CHANNEL,
    when: datetime = NOW,
    event: Any = None,
    extra_endorsements: Sequence[Any] = (),
    version: str = "1.0",
    results: bytes | None = None,
    action_header: bytes | None = None,
) -> bytes:
    """An endorsed transaction envelope, built the way a Fabric client assembles one."""
    nonce = os.urandom(24)
    if tx_id is None:
        tx_id = hashlib.sha256(nonce + creator.serialized).hexdigest()
    ext = proposal_pb2.ChaincodeHeaderExtension(
        chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode)
    )
    chdr = common_pb2.ChannelHeader(
        type=3,
        channel_id=channel,
        tx_id=tx_id,
        timestamp=_timestamp(when),
        epoch=0,
        extension=ext.SerializeToString(),
    ).SerializeToString()
    shdr = common_pb2.SignatureHeader(creator=creator.serialized, nonce=nonce).SerializeToString()
    spec = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            type=chaincode_pb2.ChaincodeSpec.GOLANG,
            chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode),
            input=chaincode_pb2.ChaincodeInput(args=list(args)),
        )
    )
    cpp = proposal_pb2.ChaincodeProposalPayload(input=spec.SerializeToString()).SerializeToString()
    if results is None:
        results = rwset_pb2.TxReadWriteSet(
            data_model=rwset_pb2.TxReadWriteSet.KV, ns_rwset=[ns.proto() for ns in namespaces]
        ).SerializeToString()
    action = proposal_pb2.ChaincodeAction(
        results=results,
        events=event.SerializeToString() if event is not None else b"",
        chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode, version=version),
    )
    action.response.status = 200
    prp = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=hashlib.sha256(chdr + shdr + cpp).digest(),
        extension=action.SerializeToString(),
    ).SerializeToString()
    endorsements = [
        proposal_response_pb2.Endorsement(
            endorser=e.serialized, signature=e.sign(prp + e.serialized)
        )
        for e in endorsers
    ]
    endorsements += list(extra_endorsements)
    cap = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=cpp,
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=prp, endorsements=endorsements
        ),
    )
    transaction = transaction_pb2.Transaction(
        actions=[
            transaction_pb2.TransactionAction(
                header=shdr if action_header is None else action_header,
                payload=cap.SerializeToString(),
            )
        ]
    )
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=chdr, signature_header=shdr),
        data=transaction.SerializeToString(),
    ).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=creator.sign(payload)).SerializeToString()


def chaincode_event(chaincode: str, name: str, payload: bytes) -> Any:
    return chaincode_event_pb2.ChaincodeEvent(
        chaincode_id=chaincode, event_name=name, payload=payload
    )


@dataclass
class Network:
    """Two application orgs and an orderer org, with one peer, client and admin each."""

    org1: Org = field(default_factory=lambda: Org("Org1MSP"))
    org2: Org = field(default_factory=lambda: Org("Org2MSP"))
    orderer_org: Org = field(default_factory=lambda: Org("OrdererMSP"))

    def __post_init__(self) -> None:
        self.peer1 = self.org1.member("peer0.org1", ["peer"])
        self.peer2 = self.org2.member("peer0.org2", ["peer"])
        self.client1 = self.org1.member("user1.org1", ["client"])
        self.client2 = self.org2.member("user1.org2", ["client"])
        self.admin1 = self.org1.member("admin.org1", ["admin"])
        self.orderer = self.orderer_org.member("orderer0", ["orderer"])
        self.config = channel_config([self.org1, self.org2], self.orderer_org)

    def block(self, number: int, previous: Any, envelopes: Sequence[bytes]) -> Any:
        """A block built and signed as the embedded orderer does."""
        block = blocks.new_block(number, blocks.block_header_hash(previous.header), envelopes)
        blocks.sign_block(
            block, signer=self.orderer.sign, creator=self.orderer.serialized, last_config=0
        )
        return block
