"""The CCaaS entry point: serialised stream writes, events, peer errors, settings, logging.

The shim's own ``Handler`` is driven with a stream that, like grpc, fails a
write entered while another is in flight. Several transactions arrive at once.
Unpatched, the shim writes concurrently (the test proves it detects that);
through :class:`chaincode.server.ChaincodeHandler`, or with just the
:class:`~chaincode.server.SerialisedStream` lock around the shim's handler,
every transaction gets its COMPLETED reply.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fabric_chaincode_python.fabric_shim.handler import Handler
from fabric_chaincode_python.fabric_shim.interfaces import Chaincode
from fabric_chaincode_python.fabric_shim.response import success

from chaincode import CHAINCODE_NAME, AccessLedgerChaincode
from chaincode.server import (
    ChaincodeHandler,
    SerialisedStream,
    ServerConfigError,
    ServerSettings,
    configure_logging,
    main,
    shim_grpc,
    start_server,
)
from crypto.consortium import Consortium
from tests.chaincode.fakepeer import FakePeer, StrictStream, drive, transaction
from tests.chaincode.harness import LedgerHarness, subject_of

TRANSACTIONS = 8


class TouchChaincode(Chaincode):  # type: ignore[misc]
    """Reads a key, writes it, sets an event: three peer round trips per transaction."""

    async def init(self, stub: Any) -> Any:
        return success(b"")

    async def invoke(self, stub: Any) -> Any:
        _, params = stub.get_function_and_parameters()
        key = params[0]
        current = await stub.get_state(key)
        await stub.put_state(key, current + b"+")
        stub.set_event("Touched", key)
        return success(key.encode() + b"=" + current)


def _touch_peer() -> FakePeer:
    transactions = [
        transaction(f"tx{i}", [b"touch", f"k{i}".encode()]) for i in range(TRANSACTIONS)
    ]
    return FakePeer(transactions, {f"k{i}": f"v{i}".encode() for i in range(TRANSACTIONS)})


async def test_unpatched_shim_writes_concurrently() -> None:
    """Proves the fake bites: the shim's handler enters write() concurrently."""
    peer = _touch_peer()
    stream = StrictStream(peer)
    finished = await drive(Handler("touch:1", TouchChaincode()), peer, stream, timeout=2.0)
    assert stream.concurrent_writes > 0
    ok = [tx for tx in peer.completed if peer.response(tx).status == 200]
    # ... and loses or fails transactions, as it did against a real peer.
    assert not finished or len(ok) < TRANSACTIONS
    assert len(ok) < TRANSACTIONS


async def test_patched_handler_completes_every_transaction() -> None:
    peer = _touch_peer()
    stream = StrictStream(peer)
    assert await drive(ChaincodeHandler("touch:1", TouchChaincode()), peer, stream)
    assert stream.concurrent_writes == 0
    assert sorted(peer.completed) == sorted(f"tx{i}" for i in range(TRANSACTIONS))
    for i in range(TRANSACTIONS):
        response = peer.response(f"tx{i}")
        assert response.status == 200
        assert response.payload == f"k{i}=v{i}".encode()
        event = peer.completed[f"tx{i}"].chaincode_event
        assert (event.event_name, event.payload) == ("Touched", f"k{i}".encode())
        assert peer.writes[f"tx{i}"] == {f"k{i}": f"v{i}+".encode()}


async def test_the_lock_alone_fixes_the_shim_handler() -> None:
    peer = _touch_peer()
    stream = StrictStream(peer)
    assert await drive(Handler("touch:1", TouchChaincode()), peer, SerialisedStream(stream))
    assert stream.concurrent_writes == 0
    assert all(peer.response(tx).status == 200 for tx in peer.completed)
    assert len(peer.completed) == TRANSACTIONS


async def test_peer_error_fails_the_read_instead_of_returning_data() -> None:
    peer = FakePeer([transaction("tx0", [b"touch", b"k"])], fail_reads=True)
    assert await drive(ChaincodeHandler("touch:1", TouchChaincode()), peer, StrictStream(peer))
    response = peer.response("tx0")
    assert response.status == 500
    assert "tx0" not in peer.writes  # the error text was never written back as a value


@pytest.fixture
async def populated(ledger: LedgerHarness, consortium: Consortium) -> tuple[LedgerHarness, str]:
    subject = subject_of(consortium, 61)
    for registrar, record_type, record_id in (
        ("registrar.hrss.sz1", "social_insurance", "si-1"),
        ("registrar.housing.sz1", "housing_rental", "hr-1"),
        ("registrar.health.sz1", "health_record", "he-1"),
    ):
        assert (await ledger.register(registrar, record_type, subject, record_id=record_id)).ok
    return ledger, subject


async def test_contract_on_the_fabric_shim_matches_the_engine(
    populated: tuple[LedgerHarness, str],
) -> None:
    """Concurrent RequestAccess transactions through the shim give the engine's exact results."""
    ledger, subject = populated
    officers = [
        "officer.education.sz1",
        "officer.education.cd1",
        "officer.health.sz1",
        "officer.hrss.sz1",
    ]
    proposals = []
    for name in officers:
        officer = ledger.identity(name)
        arg = ledger.access_request(
            officer,
            subject,
            tier="T1",
            purpose="school_enrolment",
            record_types=["social_insurance", "housing_rental", "health_record"],
        )
        proposals.append(ledger.proposal(officer, "RequestAccess", arg))
    state = {
        row.key: row.value for row in ledger.db.get_state_range(CHAINCODE_NAME, "", "", limit=None)
    }
    peer = FakePeer(
        [
            transaction(p.tx_id, list(p.chaincode_input.args), proposal=p.signed_proposal())
            for p in proposals
        ],
        state,
    )
    stream = StrictStream(peer)
    assert await drive(ChaincodeHandler("accessledger:1", AccessLedgerChaincode()), peer, stream)
    assert stream.concurrent_writes == 0
    decisions = set()
    for proposal in proposals:
        engine = await ledger.simulate(proposal)
        shim = peer.response(proposal.tx_id)
        assert shim.status == 200, shim.message
        assert shim.payload == bytes(engine.simulation.response.payload)
        event = peer.completed[proposal.tx_id].chaincode_event
        assert event.event_name == "AccessDecided"
        assert event.payload == engine.simulation.event.payload
        assert peer.writes[proposal.tx_id] == {
            k: v for k, v in engine.writes().items() if v is not None
        }
        decisions.add(engine.payload["decision"])
    assert decisions == {"partial", "denied"}


async def test_library_logs_stay_quiet(
    populated: tuple[LedgerHarness, str], caplog: pytest.LogCaptureFixture
) -> None:
    """No proposal, certificate or state value reaches the log from the shim."""
    ledger, subject = populated
    configure_logging()
    caplog.set_level(logging.DEBUG)  # the root logger; the library loggers stay at WARNING
    officer = ledger.identity("officer.education.sz1")
    arg = ledger.access_request(
        officer, subject, tier="T1", purpose="school_enrolment", record_types=["social_insurance"]
    )
    proposal = ledger.proposal(officer, "RequestAccess", arg)
    state = {r.key: r.value for r in ledger.db.get_state_range(CHAINCODE_NAME, "", "")}
    peer = FakePeer(
        [
            transaction(
                proposal.tx_id,
                list(proposal.chaincode_input.args),
                proposal=proposal.signed_proposal(),
            )
        ],
        state,
    )
    assert await drive(
        ChaincodeHandler("accessledger:1", AccessLedgerChaincode()), peer, StrictStream(peer)
    )
    assert peer.response(proposal.tx_id).status == 200
    for name in ("asyncio", "fabric_chaincode_python", "grpc"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "BEGIN CERTIFICATE" not in text
    assert subject not in text
    assert "proposal" not in text.lower()


def test_settings_from_environment(tmp_path: Path) -> None:
    with pytest.raises(ServerConfigError, match="CHAINCODE_SERVER_ADDRESS"):
        ServerSettings.from_env({"CHAINCODE_ID": "accessledger_1.0:abc"})
    with pytest.raises(ServerConfigError, match="CHAINCODE_ID"):
        ServerSettings.from_env({"CHAINCODE_SERVER_ADDRESS": "0.0.0.0:9999"})
    plain = ServerSettings.from_env(
        {"CHAINCODE_SERVER_ADDRESS": "0.0.0.0:9999", "CHAINCODE_ID": "accessledger_1.0:abc"}
    )
    assert plain.credentials() is None

    key, cert, ca = tmp_path / "key.pem", tmp_path / "cert.pem", tmp_path / "ca.pem"
    for path in (key, cert, ca):
        path.write_bytes(b"pem")
    base = {"CHAINCODE_SERVER_ADDRESS": "0.0.0.0:9999", "CHAINCODE_ID": "cc:1"}
    tls = ServerSettings.from_env(
        {
            **base,
            "CHAINCODE_TLS_KEY": str(key),
            "CHAINCODE_TLS_CERT": str(cert),
            "CHAINCODE_CLIENT_CA_CERT": str(ca),
        }
    )
    assert (tls.tls_key, tls.tls_cert, tls.client_ca) == (b"pem", b"pem", b"pem")
    disabled = ServerSettings.from_env(
        {**base, "CHAINCODE_TLS_DISABLED": "true", "CHAINCODE_TLS_KEY": str(key)}
    )
    assert disabled.tls_key is None
    with pytest.raises(ServerConfigError, match="both"):
        ServerSettings.from_env({**base, "CHAINCODE_TLS_KEY": str(key)})
    with pytest.raises(ServerConfigError, match="cannot read"):
        ServerSettings.from_env(
            {
                **base,
                "CHAINCODE_TLS_KEY": str(tmp_path / "missing"),
                "CHAINCODE_TLS_CERT": str(cert),
            }
        )


def test_main_reports_missing_settings(caplog: pytest.LogCaptureFixture) -> None:
    assert main({}) == 2
    assert "CHAINCODE_SERVER_ADDRESS" in caplog.text


async def _over_grpc(port: int, peer: FakePeer, credentials: Any = None) -> None:
    target = f"localhost:{port}"
    channel = (
        grpc.aio.secure_channel(target, credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(target)
    )
    async with channel:
        call = shim_grpc.ChaincodeStub(channel).Connect(peer.stream())

        async def pump() -> None:
            async for message in call:
                peer.receive(message)

        reader = asyncio.create_task(pump())
        await asyncio.wait_for(peer.all_completed.wait(), 10)
        peer.close()
        await asyncio.wait_for(reader, 10)


async def test_served_over_grpc(populated: tuple[LedgerHarness, str]) -> None:
    """``start_server`` serves the contract to a peer connecting over real gRPC."""
    ledger, subject = populated
    officer = ledger.identity("officer.education.sz1")
    proposals = [
        ledger.proposal(
            officer,
            "RequestAccess",
            ledger.access_request(
                officer, subject, tier="T1", purpose="school_enrolment", record_types=[t]
            ),
        )
        for t in ("social_insurance", "housing_rental", "health_record")
    ]
    state = {r.key: r.value for r in ledger.db.get_state_range(CHAINCODE_NAME, "", "")}
    peer = FakePeer(
        [
            transaction(p.tx_id, list(p.chaincode_input.args), proposal=p.signed_proposal())
            for p in proposals
        ],
        state,
    )
    settings = ServerSettings(address="127.0.0.1:0", chaincode_id="accessledger_1.0:test")
    server, port = await start_server(settings)
    try:
        await _over_grpc(port, peer)
    finally:
        await server.stop(0)
    for proposal in proposals:
        engine = await ledger.simulate(proposal)
        assert peer.response(proposal.tx_id).payload == bytes(engine.simulation.response.payload)
    assert [json.loads(peer.response(p.tx_id).payload)["decision"] for p in proposals] == [
        "granted",
        "granted",
        "denied",
    ]


def _tls_material(tmp_path: Path) -> tuple[dict[str, str], bytes]:
    """A CA and a ``localhost`` server certificate; returns the env settings and the CA PEM."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "server.key", tmp_path / "server.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    env = {
        "CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0",
        "CHAINCODE_ID": "touch:1",
        "CHAINCODE_TLS_KEY": str(key_path),
        "CHAINCODE_TLS_CERT": str(cert_path),
    }
    return env, ca_cert.public_bytes(serialization.Encoding.PEM)


async def test_served_over_tls(tmp_path: Path) -> None:
    env, ca_pem = _tls_material(tmp_path)
    settings = ServerSettings.from_env(env)
    server, port = await start_server(settings, TouchChaincode())
    peer = _touch_peer()
    try:
        await _over_grpc(port, peer, grpc.ssl_channel_credentials(root_certificates=ca_pem))
    finally:
        await server.stop(0)
    assert all(peer.response(f"tx{i}").status == 200 for i in range(TRANSACTIONS))
