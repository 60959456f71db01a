"""Identities whose certificates carry a high-S ECDSA signature replay clean.

Homes created before the CA issued low-S certificates hold such
certificates for about half their identities, and any holder can re-encode
a low-S certificate into its high-S twin (``crypto.certtwin``), which its CA
still verifies. Contract, gateway, MSP and auditor must all name such an
identity by the same fingerprint (the low-S form's); when the auditor used
the plain SHA-256 of the DER instead, replay of this untampered scenario
reported "the officer is not the transaction's creator" for every access.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import crypto.ca
from crypto.certtwin import signature_twin
from crypto.consortium import Consortium
from crypto.signing import P256_ORDER
from tests.audit.conftest import replay
from tests.audit.scenario import build_scenario


def _high_s(certificate: x509.Certificate) -> x509.Certificate:
    if decode_dss_signature(certificate.signature)[1] <= P256_ORDER // 2:
        twin = signature_twin(certificate)
        assert twin is not None
        return twin
    return certificate


def test_a_ledger_of_high_s_identities_replays_without_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every certificate the CA issues is now the high-S encoding.
    monkeypatch.setattr(crypto.ca, "low_s_form", _high_s)
    now = datetime.now(UTC).replace(microsecond=0)
    scenario = asyncio.run(build_scenario(tmp_path, now=now))
    officer = Consortium.load(scenario.home).identity("officer.education.sz1")
    assert decode_dss_signature(officer.certificate.signature)[1] > P256_ORDER // 2
    outcome = replay(scenario.export, key_releases=scenario.release_logs)
    assert outcome.report.findings == []
    assert outcome.report.ok
