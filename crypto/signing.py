"""ECDSA P-256 / SHA-256 signatures the way Hyperledger Fabric makes and checks them.

Fabric's signatures are DER-encoded ``(r, s)`` pairs over SHA-256 of the message,
with ``s`` normalised to the lower half of the curve order ("low-S"); Fabric's
BCCSP rejects a high-S signature even though it is mathematically valid, to
rule out signature malleability. We do the same on both sides.

Verification raises :class:`~crypto.errors.VerificationError`; it never returns
a bool. Signers are plain callables (``Signer``) so a caller can inject an HSM
or a test double.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from crypto.errors import VerificationError

#: Order of the NIST P-256 group.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER = P256_ORDER >> 1

#: A signer takes the message bytes and returns a DER, low-S signature over them.
Signer = Callable[[bytes], bytes]


def is_low_s(signature: bytes) -> bool:
    """Return whether a DER signature's ``s`` is in the lower half of the order."""
    _, s = decode_dss_signature(signature)
    return s <= _HALF_ORDER


def to_low_s(signature: bytes) -> bytes:
    """Return the low-S form of a DER ECDSA P-256 signature (unchanged if already low)."""
    r, s = decode_dss_signature(signature)
    if s > _HALF_ORDER:
        s = P256_ORDER - s
    return encode_dss_signature(r, s)


def sign(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """Sign ``message`` with ECDSA P-256 over SHA-256; DER, low-S normalised."""
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise VerificationError("only ECDSA P-256 keys can sign")
    return to_low_s(private_key.sign(message, ec.ECDSA(hashes.SHA256())))


def signer_for(private_key: ec.EllipticCurvePrivateKey) -> Signer:
    """Return a :data:`Signer` bound to ``private_key``."""

    def _sign(message: bytes) -> bytes:
        return sign(private_key, message)

    return _sign


def verify(public_key: ec.EllipticCurvePublicKey, message: bytes, signature: bytes) -> None:
    """Verify a DER ECDSA P-256/SHA-256 signature; raise if it is not valid and low-S."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise VerificationError("signature key is not ECDSA P-256")
    try:
        r, s = decode_dss_signature(signature)
    except ValueError as exc:
        raise VerificationError("signature is not a DER-encoded ECDSA signature") from exc
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        raise VerificationError("signature values out of range")
    if s > _HALF_ORDER:
        raise VerificationError("signature is not in low-S form (rejected as Fabric does)")
    try:
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError("signature does not verify") from exc
