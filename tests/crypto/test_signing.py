"""Tests for crypto.signing: low-S signing, and verification that raises."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from crypto.errors import VerificationError
from crypto.signing import P256_ORDER, is_low_s, sign, signer_for, to_low_s, verify


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_sign_verify_round_trip(key: ec.EllipticCurvePrivateKey) -> None:
    sig = sign(key, b"hello")
    assert is_low_s(sig)
    verify(key.public_key(), b"hello", sig)


def test_signer_for_is_injectable(key: ec.EllipticCurvePrivateKey) -> None:
    signer = signer_for(key)
    verify(key.public_key(), b"m", signer(b"m"))


def test_signing_always_low_s(key: ec.EllipticCurvePrivateKey) -> None:
    # ~half of raw ECDSA signatures are high-S, so 40 signatures all low-S would
    # fail with probability 2**-40 if normalisation were missing.
    assert all(is_low_s(sign(key, bytes([i]))) for i in range(40))


def test_high_s_rejected(key: ec.EllipticCurvePrivateKey) -> None:
    sig = sign(key, b"msg")
    r, s = decode_dss_signature(sig)
    high = encode_dss_signature(r, P256_ORDER - s)
    # The high-S twin is mathematically valid ...
    key.public_key().verify(high, b"msg", ec.ECDSA(hashes.SHA256()))
    # ... but Fabric rejects it, and so do we.
    with pytest.raises(VerificationError, match="low-S"):
        verify(key.public_key(), b"msg", high)
    assert to_low_s(high) == sig


def test_wrong_key_rejected(key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(VerificationError):
        verify(other.public_key(), b"msg", sign(key, b"msg"))


def test_tampered_message_rejected(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(VerificationError):
        verify(key.public_key(), b"msh", sign(key, b"msg"))


@pytest.mark.parametrize("garbage", [b"", b"\x30\x00", b"not a signature", b"\x30" * 70])
def test_malformed_signature_rejected(key: ec.EllipticCurvePrivateKey, garbage: bytes) -> None:
    with pytest.raises(VerificationError):
        verify(key.public_key(), b"msg", garbage)


def test_non_p256_key_rejected() -> None:
    k = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(VerificationError):
        sign(k, b"x")
