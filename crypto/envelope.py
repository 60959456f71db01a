"""Envelope encryption of a record's tier groups, and sealing of tier keys.

A record's fields are grouped by tier (T0 metadata ... T3 restricted). Each
group is encrypted under its own random 32-byte key with XChaCha20-Poly1305
(libsodium via PyNaCl); the record id, version, record type and tier are bound
as associated data, so a ciphertext cannot be replayed as another record, an
older version or a different tier. The ciphertext is stored off-chain under its
SHA-256 (:func:`content_address`); the ledger holds that address and the size.

Tier keys are never stored in the clear: they are sealed (X25519 sealed box) to
the owning department's custodian key. When the ledger commits a grant, the
custodian re-seals exactly the granted tier keys to the requesting officer's
X25519 key (:func:`reseal_key`).

This is a recipe layer in the spirit of pyca's Fernet: few choices, random
nonces (192-bit, so random nonces are safe for any realistic number of
messages), versioned formats, and one opaque :class:`~crypto.errors.DecryptionError`
for every failure to open -- wrong key, flipped bit, truncation, wrong
associated data, unknown format version or a malformed key all look the same.
Bad *inputs to sealing or encryption* (unknown tier, wrong key length) are
programming errors and raise :class:`~crypto.errors.CryptoError` with a clear
message instead.

Byte layouts (all integers big-endian)::

    tier ciphertext (format 1)
        offset  size  field
        0       1     format version, 0x01
        1       24    XChaCha20 nonce (random)
        25      n+16  XChaCha20-Poly1305 ciphertext of the n-byte plaintext, tag last

        AEAD associated data = format version byte || AssociatedData.to_bytes()

    AssociatedData.to_bytes()
        u32 len || b"accessledger/tier-ad/v1"   domain separation constant
        u32 len || record_id (UTF-8)
        u64      version
        u32 len || record_type (UTF-8)
        u32 len || tier (ASCII, one of T0..T3)

    sealed tier key (format 1)
        0       1     format version, 0x01
        1       80    libsodium crypto_box_seal of the 32-byte tier key
                      (32-byte ephemeral X25519 public key, 16-byte tag, 32 bytes)
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

import nacl.exceptions
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_ABYTES,
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
)
from nacl.public import PrivateKey, PublicKey, SealedBox

from crypto.errors import CryptoError, DecryptionError

#: Payload tiers, least to most sensitive (DESIGN.md section 5).
TIERS: tuple[str, ...] = ("T0", "T1", "T2", "T3")

#: Length of a tier key and of raw X25519 keys.
KEY_SIZE = crypto_aead_xchacha20poly1305_ietf_KEYBYTES
X25519_KEY_SIZE = 32
NONCE_SIZE = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_SIZE = crypto_aead_xchacha20poly1305_ietf_ABYTES

#: First byte of every tier ciphertext and sealed key this module writes.
FORMAT_VERSION = 1
_VERSION_BYTE = bytes([FORMAT_VERSION])
_HEADER_SIZE = 1 + NONCE_SIZE

#: Domain-separation constant at the start of the associated data.
AD_DOMAIN = b"accessledger/tier-ad/v1"

#: Size of a sealed tier key: version byte + ephemeral key + tag + key.
SEALED_KEY_SIZE = 1 + X25519_KEY_SIZE + TAG_SIZE + KEY_SIZE

_U64_MAX = 2**64 - 1


def _length_prefixed(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _require_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise CryptoError(f"{name} must be a non-empty string", code="associated_data_invalid")
    return value


@dataclass(frozen=True)
class AssociatedData:
    """What a tier ciphertext is bound to: which record, which version, which type and tier."""

    record_id: str
    version: int
    record_type: str
    tier: str

    def __post_init__(self) -> None:
        _require_text("record_id", self.record_id)
        _require_text("record_type", self.record_type)
        # bool is an int subclass; True as a version is always a bug.
        if (
            not isinstance(self.version, int)
            or isinstance(self.version, bool)
            or not 0 <= self.version <= _U64_MAX
        ):
            raise CryptoError(
                "version must be an integer between 0 and 2**64-1", code="associated_data_invalid"
            )
        _check_tier(self.tier)

    def to_bytes(self) -> bytes:
        """Canonical, unambiguous encoding (length-prefixed fields; see the module docstring)."""
        return b"".join(
            (
                _length_prefixed(AD_DOMAIN),
                _length_prefixed(self.record_id.encode("utf-8")),
                struct.pack(">Q", self.version),
                _length_prefixed(self.record_type.encode("utf-8")),
                _length_prefixed(self.tier.encode("ascii")),
            )
        )


def _check_tier(tier: object) -> None:
    if tier not in TIERS:
        raise CryptoError(
            f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}",
            code="associated_data_invalid",
        )


def _check_key(name: str, key: object, size: int) -> bytes:
    if not isinstance(key, bytes) or len(key) != size:
        raise CryptoError(f"{name} must be {size} bytes", code="key_invalid")
    return key


def generate_tier_key() -> bytes:
    """Return a fresh random 32-byte tier key."""
    return secrets.token_bytes(KEY_SIZE)


def encrypt_tier(key: bytes, plaintext: bytes, ad: AssociatedData) -> bytes:
    """Encrypt one tier group under ``key``, bound to ``ad``; returns format-1 ciphertext."""
    _check_key("tier key", key, KEY_SIZE)
    if not isinstance(plaintext, bytes):
        raise CryptoError("plaintext must be bytes", code="plaintext_invalid")
    if not isinstance(ad, AssociatedData):
        raise CryptoError("ad must be an AssociatedData", code="associated_data_invalid")
    nonce = secrets.token_bytes(NONCE_SIZE)
    body = crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, _VERSION_BYTE + ad.to_bytes(), nonce, key
    )
    return _VERSION_BYTE + nonce + body


def decrypt_tier(key: bytes, ciphertext: bytes, ad: AssociatedData) -> bytes:
    """Open a tier ciphertext made by :func:`encrypt_tier`.

    Raises :class:`DecryptionError` -- always the same, whatever went wrong.
    """
    if (
        not isinstance(key, bytes)
        or len(key) != KEY_SIZE
        or not isinstance(ciphertext, bytes)
        or len(ciphertext) < _HEADER_SIZE + TAG_SIZE
        or ciphertext[:1] != _VERSION_BYTE
        or not isinstance(ad, AssociatedData)
    ):
        raise DecryptionError()
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext[_HEADER_SIZE:],
            _VERSION_BYTE + ad.to_bytes(),
            ciphertext[1:_HEADER_SIZE],
            key,
        )
    except nacl.exceptions.CryptoError:
        # `from None`: the library's own message must not leak through the chain.
        raise DecryptionError() from None


def content_address(ciphertext: bytes) -> str:
    """Return the off-chain address of a ciphertext: lowercase hex SHA-256."""
    return hashlib.sha256(ciphertext).hexdigest()


def generate_x25519_keypair() -> tuple[bytes, bytes]:
    """Return a fresh ``(private, public)`` X25519 key pair, both raw 32 bytes."""
    private = PrivateKey.generate()
    return bytes(private), bytes(private.public_key)


def x25519_public_key(private_key: bytes) -> bytes:
    """Return the raw X25519 public key belonging to a raw 32-byte private key."""
    _check_key("X25519 private key", private_key, X25519_KEY_SIZE)
    return bytes(PrivateKey(private_key).public_key)


def seal_key(tier_key: bytes, recipient_public: bytes) -> bytes:
    """Seal a tier key to an X25519 public key (anonymous sender); format-1 sealed key."""
    _check_key("tier key", tier_key, KEY_SIZE)
    _check_key("recipient X25519 public key", recipient_public, X25519_KEY_SIZE)
    try:
        sealed = SealedBox(PublicKey(recipient_public)).encrypt(tier_key)
    except nacl.exceptions.CryptoError:
        # libsodium refuses low-order points (the shared secret would be all zero).
        raise CryptoError(
            "recipient X25519 public key is not a usable curve point", code="key_invalid"
        ) from None
    return _VERSION_BYTE + bytes(sealed)


def open_sealed_key(sealed: bytes, recipient_private: bytes) -> bytes:
    """Open a sealed tier key with the recipient's X25519 private key.

    Raises :class:`DecryptionError` for any failure, including a sealed key meant
    for someone else.
    """
    if (
        not isinstance(recipient_private, bytes)
        or len(recipient_private) != X25519_KEY_SIZE
        or not isinstance(sealed, bytes)
        or len(sealed) != SEALED_KEY_SIZE
        or sealed[:1] != _VERSION_BYTE
    ):
        raise DecryptionError()
    try:
        tier_key = SealedBox(PrivateKey(recipient_private)).decrypt(sealed[1:])
    except nacl.exceptions.CryptoError:
        raise DecryptionError() from None
    if len(tier_key) != KEY_SIZE:  # cannot happen given the length check; belt and braces
        raise DecryptionError()
    return tier_key


def reseal_key(sealed: bytes, custodian_private: bytes, recipient_public: bytes) -> bytes:
    """Re-seal a custodian-sealed tier key to another recipient (an officer's X25519 key).

    Raises :class:`CryptoError` if ``recipient_public`` is malformed and
    :class:`DecryptionError` if the custodian cannot open ``sealed``.
    """
    _check_key("recipient X25519 public key", recipient_public, X25519_KEY_SIZE)
    return seal_key(open_sealed_key(sealed, custodian_private), recipient_public)


@dataclass(frozen=True)
class EncryptedTier:
    """One encrypted tier group: its key (keep secret; seal it), ciphertext, address and size."""

    tier: str
    key: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    address: str
    size: int


def encrypt_payload(
    groups: Mapping[str, bytes], *, record_id: str, version: int, record_type: str
) -> dict[str, EncryptedTier]:
    """Encrypt each tier group of one record version under its own fresh key.

    ``groups`` maps tier -> serialised plaintext of that tier's fields. Returns
    tier -> :class:`EncryptedTier`, in :data:`TIERS` order.
    """
    for tier in groups:
        _check_tier(tier)
    encrypted: dict[str, EncryptedTier] = {}
    for tier in TIERS:
        if tier not in groups:
            continue
        key = generate_tier_key()
        ad = AssociatedData(
            record_id=record_id, version=version, record_type=record_type, tier=tier
        )
        ciphertext = encrypt_tier(key, groups[tier], ad)
        encrypted[tier] = EncryptedTier(
            tier=tier,
            key=key,
            ciphertext=ciphertext,
            address=content_address(ciphertext),
            size=len(ciphertext),
        )
    return encrypted
