"""RFC 9421's raw ECDSA encoding, checked against the RFC's own P-256 example."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from crypto.errors import VerificationError
from crypto.identity import Identity
from crypto.signing import P256_ORDER, is_low_s, to_low_s, verify
from gateway.auth import SignatureInvalidError, der_to_raw, raw_to_der

# RFC 9421 Appendix B.1.3, test-key-ecc-p256 (public half).
RFC_P256_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END PUBLIC KEY-----"""
# RFC 9421 Appendix B.2.4: the signature base (RFC 8792 folding undone) and the
# signature the RFC publishes for it (label sig-b24).
RFC_B24_BASE = (
    b'"@status": 200\n'
    b'"content-type": application/json\n'
    b'"content-digest": sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWd'
    b"XymyU0rjJuahq4l5aGgfLQ==:\n"
    b'"content-length": 23\n'
    b'"@signature-params": ("@status" "content-type" "content-digest" "content-length")'
    b';created=1618884473;keyid="test-key-ecc-p256"'
)
RFC_B24_SIGNATURE = base64.b64decode(
    "wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw=="
)


def _rfc_key() -> ec.EllipticCurvePublicKey:
    key = load_pem_public_key(RFC_P256_PUBLIC)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def test_rfc_b24_signature_decodes_and_verifies_but_is_high_s() -> None:
    der = raw_to_der(RFC_B24_SIGNATURE)
    # Mathematically valid: the raw r || s decoding is right.
    _rfc_key().verify(der, RFC_B24_BASE, ec.ECDSA(hashes.SHA256()))
    # ...but the RFC's example happens to be high-S, which we (like Fabric) refuse.
    assert not is_low_s(der)
    with pytest.raises(VerificationError, match="low-S"):
        verify(_rfc_key(), RFC_B24_BASE, der)
    # Its low-S twin is accepted, and converts back to a different raw value.
    low = to_low_s(der)
    verify(_rfc_key(), RFC_B24_BASE, low)
    assert der_to_raw(low)[:32] == RFC_B24_SIGNATURE[:32]
    assert der_to_raw(low)[32:] != RFC_B24_SIGNATURE[32:]


def test_raw_and_der_round_trip(officer: Identity) -> None:
    for index in range(20):
        der = officer.sign(b"message %d" % index)
        raw = der_to_raw(der)
        assert len(raw) == 64
        assert raw_to_der(raw) == der
        r, s = decode_dss_signature(der)
        assert raw == r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x01" * 63,
        b"\x01" * 65,
        bytes(32) + b"\x01" * 32,  # r = 0
        b"\x01" * 32 + P256_ORDER.to_bytes(32, "big"),  # s = n
    ],
)
def test_malformed_raw_signatures_are_refused(raw: bytes) -> None:
    with pytest.raises(SignatureInvalidError):
        raw_to_der(raw)
