"""ECDSA P-256 signature encodings: RFC 9421's raw ``r || s`` and Fabric's DER.

RFC 9421 section 3.3.4 carries an ``ecdsa-p256-sha256`` signature as 64 bytes,
``r`` then ``s``, each a big-endian unsigned integer zero-padded to 32 bytes.
:mod:`crypto.signing` (like Fabric) speaks DER with ``s`` in the lower half of
the group order. These two functions convert between the forms; the low-S
rule itself is enforced by :func:`crypto.signing.verify` on the DER form, so a
high-S raw signature converts fine and is then refused.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from crypto.signing import P256_ORDER
from gateway.auth.errors import SignatureInvalidError

#: Bytes of one coordinate and of a whole raw signature.
SCALAR_SIZE = 32
RAW_SIGNATURE_SIZE = 2 * SCALAR_SIZE


def der_to_raw(der: bytes) -> bytes:
    """Convert a DER ECDSA P-256 signature to RFC 9421's 64-byte ``r || s``."""
    r, s = decode_dss_signature(der)
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        raise ValueError("ECDSA signature values are out of range for P-256")
    return r.to_bytes(SCALAR_SIZE, "big") + s.to_bytes(SCALAR_SIZE, "big")


def raw_to_der(raw: bytes) -> bytes:
    """Convert RFC 9421's 64-byte ``r || s`` to DER; raise ``signature_invalid`` if malformed."""
    if len(raw) != RAW_SIGNATURE_SIZE:
        raise SignatureInvalidError(
            f"an ecdsa-p256-sha256 signature is {RAW_SIGNATURE_SIZE} bytes (r || s), not {len(raw)}"
        )
    r = int.from_bytes(raw[:SCALAR_SIZE], "big")
    s = int.from_bytes(raw[SCALAR_SIZE:], "big")
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        raise SignatureInvalidError("signature values are out of range for P-256")
    return encode_dss_signature(r, s)
