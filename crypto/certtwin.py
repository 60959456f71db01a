"""The malleable twin of an ECDSA-signed certificate: same content, other valid signature.

An ECDSA signature ``(r, s)`` verifies exactly when ``(r, n - s)`` does, so
anyone holding a certificate can re-encode it with the other ``s``: the
result is a different DER encoding -- a different SHA-256 fingerprint --
that still verifies under the same CA, with the same subject, key and
serial. Fabric's MSP defends against this by rewriting every certificate to
the low-S form before naming an identity by it. The gateway names revoked
certificates by fingerprint, so it checks the twin's fingerprint too: a
revoked officer must not get back in with a re-encoded copy.

Only P-256 issuers are handled: every CA of a consortium is P-256
(:func:`crypto.certificates.validate_certificate` refuses any other).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import SignatureAlgorithmOID

from crypto.signing import P256_ORDER

__all__ = ["low_s_form", "signature_twin"]

_ECDSA_ALGORITHMS = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    }
)
_SEQUENCE = 0x30
_BIT_STRING = 0x03


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _content(der: bytes) -> bytes:
    """The content octets of the DER element ``der`` (one element, definite length)."""
    first = der[1]
    if first < 0x80:
        start, size = 2, first
    else:
        count = first & 0x7F
        start, size = 2 + count, int.from_bytes(der[2 : 2 + count], "big")
    if start + size != len(der):
        raise ValueError("not exactly one DER element")
    return der[start:]


def signature_twin(certificate: x509.Certificate) -> x509.Certificate | None:
    """``certificate`` with its ECDSA signature's ``s`` replaced by ``n - s`` (P-256), or None.

    None when the certificate is not ECDSA-signed or its encoding is not the
    plain ``SEQUENCE {tbs, algorithm, BIT STRING}`` this rewrites.
    """
    if certificate.signature_algorithm_oid not in _ECDSA_ALGORITHMS:
        return None
    der = certificate.public_bytes(serialization.Encoding.DER)
    try:
        outer = _content(der)
        tbs = certificate.tbs_certificate_bytes
        old_signature = _tlv(_BIT_STRING, b"\x00" + certificate.signature)
        if not outer.startswith(tbs) or not outer.endswith(old_signature):
            return None
        algorithm = outer[len(tbs) : len(outer) - len(old_signature)]
        r, s = decode_dss_signature(certificate.signature)
        if not 0 < s < P256_ORDER:
            return None
        signature = encode_dss_signature(r, P256_ORDER - s)
        twin = _tlv(_SEQUENCE, tbs + algorithm + _tlv(_BIT_STRING, b"\x00" + signature))
        return x509.load_der_x509_certificate(twin)
    except (ValueError, IndexError):
        return None


def low_s_form(certificate: x509.Certificate) -> x509.Certificate:
    """The one encoding of ``certificate`` that names it: its ECDSA signature with low ``s``.

    A certificate and its :func:`signature_twin` are the same certificate;
    identities are named by this form's fingerprint (as Fabric's MSP
    sanitises certificates before naming them), so both name one identity.
    Certificates already in low-S form -- all that :mod:`crypto.ca` issues --
    are returned unchanged.
    """
    if certificate.signature_algorithm_oid not in _ECDSA_ALGORITHMS:
        return certificate
    try:
        _, s = decode_dss_signature(certificate.signature)
    except ValueError:
        return certificate
    if s <= P256_ORDER // 2:
        return certificate
    twin = signature_twin(certificate)
    return twin if twin is not None else certificate
