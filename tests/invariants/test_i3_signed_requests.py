"""I3: every access request, granted or denied, is a ledger transaction signed by the officer.

Over the whole demo ledger, each ``RequestAccess`` transaction -- whatever
its decision -- is checked from the blocks alone: its creator is the identity
that signed the HTTP call which proposed it (not the gateway, not a peer), an
officer whose certificate chains to their department's CA; the envelope
verifies under that certificate; the signed request it carries verifies under
the same key; and the event names that officer. Then a live gateway is shown
requests an officer did not sign as they arrive: another officer's signature,
a request altered after signing, a signed request replayed -- each refused
with nothing written.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from crypto.consortium import Consortium
from crypto.identity import IdentityKind
from crypto.signing import verify
from policies.canonical import canonical_json
from tests.gateway.test_app_support import Env
from tests.invariants.ledger import ledger_transactions
from tests.invariants.seeding import DemoRun

OFFICER = "officer.education.sz1"
OTHER_OFFICER = "officer.education.cd1"
PROBLEM = "application/problem+json"


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def test_every_access_request_is_signed_by_the_officer_who_made_it(demo_run: DemoRun) -> None:
    consortium = Consortium.load(demo_run.home)
    by_fingerprint = {_fingerprint(i.certificate): i for i in consortium.identities()}
    requests = [t for t in ledger_transactions(demo_run.home) if t.function == "RequestAccess"]
    assert {t.tx.tx_id for t in requests if t.valid} == demo_run.event_ids()
    decided_as = {e: d for d, events in demo_run.report.events.items() for e in events}
    decisions: Counter[str] = Counter()
    for ltx in requests:
        tx = ltx.tx
        cert = x509.load_pem_x509_certificate(tx.creator_id_bytes)
        fingerprint = _fingerprint(cert)
        # The creator is whoever signed the HTTP request that proposed it...
        assert demo_run.access_requesters[tx.tx_id] == fingerprint
        # ... an officer of the consortium, certified by their own department's CA.
        identity = by_fingerprint[fingerprint]
        assert identity.kind is IdentityKind.OFFICER, identity.name
        assert tx.creator_msp_id == identity.msp_id
        assert tx.timestamp is not None
        consortium.validate_identity(identity, now=tx.timestamp)
        # The envelope and the request inside it verify under that certificate.
        verify(identity.public_key, tx.payload, tx.signature)
        assert tx.tx_id == tx.expected_tx_id
        argument: dict[str, Any] = ltx.argument()
        document = argument["document"]
        verify(
            identity.public_key,
            canonical_json(document),
            base64.b64decode(argument["signature"], validate=True),
        )
        if not ltx.valid:
            continue
        event = ltx.event()
        assert event is not None
        officer = event["officer"]
        assert (officer["msp_id"], officer["cert_fingerprint"], officer["name"]) == (
            identity.msp_id,
            fingerprint,
            identity.name,
        )
        assert event["request"] == document
        assert event["request_hash"] == hashlib.sha256(canonical_json(document)).hexdigest()
        assert decided_as[tx.tx_id] == event["decision"]
        decisions[event["decision"]] += 1
    assert decisions["granted"] > 0
    assert decisions["denied"] > 0


def _subject(demo_run: DemoRun) -> str:
    return demo_run.report.citizens["citizen.c1"]


def _refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code


def test_a_request_signed_by_another_officer_is_refused(
    served_demo: Env, demo_run: DemoRun
) -> None:
    officer, other = served_demo.client(OFFICER), served_demo.client(OTHER_OFFICER)
    theirs = other.access_document(
        _subject(demo_run), tier="T1", purpose="school_enrolment", record_types=["residence_permit"]
    )
    height = served_demo.gateway.height()
    refused = officer.propose("/v1/access-requests", "RequestAccess", theirs)
    _refused(refused, 403, "request_signature_invalid")
    assert served_demo.gateway.height() == height


def test_a_request_altered_after_signing_is_refused(served_demo: Env, demo_run: DemoRun) -> None:
    officer = served_demo.client(OFFICER)
    signed = officer.access_document(
        _subject(demo_run), tier="T1", purpose="school_enrolment", record_types=["residence_permit"]
    )
    signed["document"]["tier"] = "T3"
    height = served_demo.gateway.height()
    _refused(
        officer.propose("/v1/access-requests", "RequestAccess", signed),
        403,
        "request_signature_invalid",
    )
    assert served_demo.gateway.height() == height


def test_a_replayed_signed_request_is_refused(served_demo: Env, demo_run: DemoRun) -> None:
    officer = served_demo.client(OFFICER)
    signed = officer.access_document(
        _subject(demo_run), tier="T1", purpose="school_enrolment", record_types=["residence_permit"]
    )
    first = officer.submit("/v1/access-requests", "RequestAccess", signed)
    assert first.status_code == 200, first.text
    height = served_demo.gateway.height()
    # The same signed request in a fresh proposal (new transaction id) is a replay.
    _refused(
        officer.propose("/v1/access-requests", "RequestAccess", signed), 409, "request_replayed"
    )
    assert served_demo.gateway.height() == height
