"""Tests for crypto.envelope: tier encryption, content addresses, sealed tier keys."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)

from crypto.envelope import (
    SEALED_KEY_SIZE,
    TIERS,
    AssociatedData,
    EncryptedTier,
    content_address,
    decrypt_tier,
    encrypt_payload,
    encrypt_tier,
    generate_tier_key,
    generate_x25519_keypair,
    open_sealed_key,
    reseal_key,
    seal_key,
    x25519_public_key,
)
from crypto.errors import CryptoError, DecryptionError

AD = AssociatedData(record_id="rec-1", version=2, record_type="residence_permit", tier="T1")
PLAINTEXT = b'{"name_hash":"...","address":"Nanshan, Shenzhen"}'


def _flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def _decryption_failure(call: object) -> DecryptionError:
    assert callable(call)
    with pytest.raises(DecryptionError) as info:
        call()
    return info.value


# --- associated data -------------------------------------------------------------------


def test_associated_data_encoding_is_pinned() -> None:
    # The encoding is a storage format: changing it orphans every stored ciphertext.
    expected = (
        b"\x00\x00\x00\x17accessledger/tier-ad/v1"  # 23-byte domain constant
        + b"\x00\x00\x00\x05rec-1"
        + b"\x00\x00\x00\x00\x00\x00\x00\x02"  # version 2 as u64
        + b"\x00\x00\x00\x10residence_permit"
        + b"\x00\x00\x00\x02T1"
    )
    assert AD.to_bytes() == expected


def test_associated_data_encoding_is_unambiguous() -> None:
    a = AssociatedData(record_id="ab", version=1, record_type="c", tier="T0")
    b = AssociatedData(record_id="a", version=1, record_type="bc", tier="T0")
    assert a.to_bytes() != b.to_bytes()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tier": "T4"},
        {"tier": "t1"},
        {"record_id": ""},
        {"record_type": ""},
        {"version": -1},
        {"version": 2**64},
        {"version": True},
    ],
)
def test_associated_data_rejects_bad_fields(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "record_id": "r",
        "version": 1,
        "record_type": "t",
        "tier": "T1",
        **kwargs,
    }
    with pytest.raises(CryptoError) as info:
        AssociatedData(**fields)  # type: ignore[arg-type]
    assert not isinstance(info.value, DecryptionError)
    assert info.value.code == "associated_data_invalid"


# --- tier encryption -------------------------------------------------------------------


def test_round_trip() -> None:
    key = generate_tier_key()
    assert len(key) == 32
    ciphertext = encrypt_tier(key, PLAINTEXT, AD)
    assert decrypt_tier(key, ciphertext, AD) == PLAINTEXT


def test_round_trip_empty_plaintext() -> None:
    key = generate_tier_key()
    assert decrypt_tier(key, encrypt_tier(key, b"", AD), AD) == b""


@settings(max_examples=50, deadline=None)
@given(
    plaintext=st.binary(max_size=2048),
    record_id=st.text(min_size=1, max_size=40),
    version=st.integers(min_value=0, max_value=2**64 - 1),
    tier=st.sampled_from(TIERS),
)
def test_round_trip_property(plaintext: bytes, record_id: str, version: int, tier: str) -> None:
    ad = AssociatedData(record_id=record_id, version=version, record_type="tax_record", tier=tier)
    key = generate_tier_key()
    assert decrypt_tier(key, encrypt_tier(key, plaintext, ad), ad) == plaintext


def test_ciphertext_layout_matches_the_documented_format() -> None:
    key = generate_tier_key()
    ciphertext = encrypt_tier(key, PLAINTEXT, AD)
    assert ciphertext[0] == 0x01
    assert len(ciphertext) == 1 + 24 + len(PLAINTEXT) + 16
    assert PLAINTEXT not in ciphertext
    # Open it with the raw primitive, following the docstring's layout.
    aead_ad = b"\x01" + AD.to_bytes()
    nonce, body = ciphertext[1:25], ciphertext[25:]
    assert crypto_aead_xchacha20poly1305_ietf_decrypt(body, aead_ad, nonce, key) == PLAINTEXT
    # And the other way round: a ciphertext built from the spec opens.
    nonce = bytes(range(24))
    manual = (
        b"\x01" + nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(PLAINTEXT, aead_ad, nonce, key)
    )
    assert decrypt_tier(key, manual, AD) == PLAINTEXT


def test_nonce_is_fresh_each_time() -> None:
    key = generate_tier_key()
    first, second = encrypt_tier(key, PLAINTEXT, AD), encrypt_tier(key, PLAINTEXT, AD)
    assert first != second
    assert first[1:25] != second[1:25]


def test_every_flipped_bit_position_is_detected() -> None:
    key = generate_tier_key()
    ciphertext = encrypt_tier(key, b"short", AD)
    for index in range(len(ciphertext)):
        for mask in (0x01, 0x80):
            tampered = _flip(ciphertext, index, mask)
            _decryption_failure(lambda t=tampered: decrypt_tier(key, t, AD))


def test_every_truncation_and_an_extension_are_detected() -> None:
    key = generate_tier_key()
    ciphertext = encrypt_tier(key, b"short", AD)
    for length in range(len(ciphertext)):
        _decryption_failure(lambda n=length: decrypt_tier(key, ciphertext[:n], AD))
    _decryption_failure(lambda: decrypt_tier(key, ciphertext + b"\x00", AD))


def test_wrong_key_is_detected() -> None:
    ciphertext = encrypt_tier(generate_tier_key(), PLAINTEXT, AD)
    _decryption_failure(lambda: decrypt_tier(generate_tier_key(), ciphertext, AD))


@pytest.mark.parametrize(
    "change",
    [
        {"record_id": "rec-2"},
        {"version": 3},
        {"record_type": "housing_rental"},
        {"tier": "T2"},
    ],
)
def test_wrong_associated_data_is_detected(change: dict[str, object]) -> None:
    key = generate_tier_key()
    ciphertext = encrypt_tier(key, PLAINTEXT, AD)
    other = dataclasses.replace(AD, **change)  # type: ignore[arg-type]
    _decryption_failure(lambda: decrypt_tier(key, ciphertext, other))


@pytest.mark.parametrize("version_byte", [0x00, 0x02, 0xFF])
def test_unknown_format_version_is_rejected(version_byte: int) -> None:
    key = generate_tier_key()
    ciphertext = encrypt_tier(key, PLAINTEXT, AD)
    _decryption_failure(lambda: decrypt_tier(key, bytes([version_byte]) + ciphertext[1:], AD))


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_wrong_key_length(length: int) -> None:
    ciphertext = encrypt_tier(generate_tier_key(), PLAINTEXT, AD)
    # Opening: the same opaque error as every other failure.
    _decryption_failure(lambda: decrypt_tier(b"k" * length, ciphertext, AD))
    # Encrypting: a clear input error, not a decryption error.
    with pytest.raises(CryptoError, match="tier key must be 32 bytes") as info:
        encrypt_tier(b"k" * length, PLAINTEXT, AD)
    assert not isinstance(info.value, DecryptionError)


def test_non_bytes_inputs_to_decrypt_are_opaque_failures() -> None:
    key = generate_tier_key()
    ciphertext = encrypt_tier(key, PLAINTEXT, AD)
    _decryption_failure(lambda: decrypt_tier(key, ciphertext.hex(), AD))  # type: ignore[arg-type]
    _decryption_failure(lambda: decrypt_tier(key.hex(), ciphertext, AD))  # type: ignore[arg-type]


def test_all_failures_are_indistinguishable() -> None:
    key = generate_tier_key()
    ciphertext = encrypt_tier(key, PLAINTEXT, AD)
    custodian_private, custodian_public = generate_x25519_keypair()
    stranger_private, _ = generate_x25519_keypair()
    sealed = seal_key(key, custodian_public)
    failures = [
        _decryption_failure(lambda: decrypt_tier(generate_tier_key(), ciphertext, AD)),
        _decryption_failure(lambda: decrypt_tier(key, _flip(ciphertext, 30), AD)),
        _decryption_failure(lambda: decrypt_tier(key, ciphertext[:-1], AD)),
        _decryption_failure(
            lambda: decrypt_tier(key, ciphertext, dataclasses.replace(AD, tier="T3"))
        ),
        _decryption_failure(lambda: decrypt_tier(key, b"\x02" + ciphertext[1:], AD)),
        _decryption_failure(lambda: decrypt_tier(key[:31], ciphertext, AD)),
        _decryption_failure(lambda: open_sealed_key(sealed, stranger_private)),
        _decryption_failure(lambda: open_sealed_key(_flip(sealed, 40), custodian_private)),
        _decryption_failure(lambda: open_sealed_key(sealed[:-1], custodian_private)),
        _decryption_failure(lambda: open_sealed_key(sealed, custodian_private[:31])),
    ]
    assert {(type(f), str(f), f.code, f.args) for f in failures} == {
        (DecryptionError, "decryption failed", "decryption_failed", ("decryption failed",))
    }
    # Nothing from the underlying library leaks through the exception chain.
    assert all(f.__cause__ is None for f in failures)
    assert all(f.__context__ is None or f.__suppress_context__ for f in failures)


# --- content addresses -----------------------------------------------------------------


def test_content_address() -> None:
    # FIPS 180-2 test vector for SHA-256("abc").
    assert content_address(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    ciphertext = encrypt_tier(generate_tier_key(), PLAINTEXT, AD)
    assert content_address(ciphertext) == hashlib.sha256(ciphertext).hexdigest()
    assert content_address(_flip(ciphertext, 5)) != content_address(ciphertext)


# --- sealed tier keys ------------------------------------------------------------------


def test_x25519_keypair() -> None:
    private, public = generate_x25519_keypair()
    assert len(private) == len(public) == 32
    assert x25519_public_key(private) == public
    assert generate_x25519_keypair()[0] != private


def test_seal_open_round_trip() -> None:
    tier_key = generate_tier_key()
    private, public = generate_x25519_keypair()
    sealed = seal_key(tier_key, public)
    assert len(sealed) == SEALED_KEY_SIZE == 81
    assert sealed[0] == 0x01
    assert tier_key not in sealed
    assert open_sealed_key(sealed, private) == tier_key
    # Sealing is randomised (fresh ephemeral key each time).
    assert seal_key(tier_key, public) != sealed


def test_wrong_recipient_cannot_open() -> None:
    _, public = generate_x25519_keypair()
    stranger_private, _ = generate_x25519_keypair()
    sealed = seal_key(generate_tier_key(), public)
    _decryption_failure(lambda: open_sealed_key(sealed, stranger_private))


def test_every_tampered_sealed_byte_is_detected() -> None:
    private, public = generate_x25519_keypair()
    sealed = seal_key(generate_tier_key(), public)
    for index in range(len(sealed)):
        tampered = _flip(sealed, index)
        _decryption_failure(lambda t=tampered: open_sealed_key(t, private))
    for length in range(len(sealed)):
        _decryption_failure(lambda n=length: open_sealed_key(sealed[:n], private))


@pytest.mark.parametrize(
    ("tier_key", "public"),
    [(b"k" * 31, b"p" * 32), (b"k" * 32, b"p" * 31), (b"k" * 32, "p" * 32)],
)
def test_seal_rejects_malformed_inputs(tier_key: bytes, public: bytes) -> None:
    with pytest.raises(CryptoError, match="must be 32 bytes") as info:
        seal_key(tier_key, public)
    assert info.value.code == "key_invalid"


def test_seal_rejects_low_order_public_key() -> None:
    # The all-zero point would make the shared secret all zero; libsodium refuses it.
    with pytest.raises(CryptoError, match="not a usable curve point") as info:
        seal_key(generate_tier_key(), bytes(32))
    assert not isinstance(info.value, DecryptionError)


def test_reseal_round_trip_and_end_to_end_decrypt() -> None:
    custodian_private, custodian_public = generate_x25519_keypair()
    officer_private, officer_public = generate_x25519_keypair()
    tier_key = generate_tier_key()
    ciphertext = encrypt_tier(tier_key, PLAINTEXT, AD)
    custodian_sealed = seal_key(tier_key, custodian_public)

    officer_sealed = reseal_key(custodian_sealed, custodian_private, officer_public)

    released = open_sealed_key(officer_sealed, officer_private)
    assert released == tier_key
    assert decrypt_tier(released, ciphertext, AD) == PLAINTEXT
    # The re-sealed copy is for the officer only.
    _decryption_failure(lambda: open_sealed_key(officer_sealed, custodian_private))


def test_reseal_with_wrong_custodian_key_fails_opaquely() -> None:
    _, custodian_public = generate_x25519_keypair()
    other_custodian_private, _ = generate_x25519_keypair()
    _, officer_public = generate_x25519_keypair()
    sealed = seal_key(generate_tier_key(), custodian_public)
    _decryption_failure(lambda: reseal_key(sealed, other_custodian_private, officer_public))


def test_reseal_rejects_malformed_recipient() -> None:
    custodian_private, custodian_public = generate_x25519_keypair()
    sealed = seal_key(generate_tier_key(), custodian_public)
    with pytest.raises(CryptoError, match="recipient X25519 public key") as info:
        reseal_key(sealed, custodian_private, b"\x01" * 16)
    assert not isinstance(info.value, DecryptionError)


# --- whole payloads --------------------------------------------------------------------


def test_encrypt_payload_encrypts_each_tier_under_its_own_key() -> None:
    groups = {"T2": b'{"diagnosis":"..."}', "T0": b'{"exists":true}'}
    encrypted = encrypt_payload(groups, record_id="rec-9", version=1, record_type="health_record")

    assert list(encrypted) == ["T0", "T2"]  # TIERS order
    assert encrypted["T0"].key != encrypted["T2"].key
    for tier, item in encrypted.items():
        assert isinstance(item, EncryptedTier)
        assert item.tier == tier
        assert item.address == hashlib.sha256(item.ciphertext).hexdigest()
        assert item.size == len(item.ciphertext)
        ad = AssociatedData(record_id="rec-9", version=1, record_type="health_record", tier=tier)
        assert decrypt_tier(item.key, item.ciphertext, ad) == groups[tier]
        assert item.key.hex() not in repr(item)

    # A T2 ciphertext presented as T0 (with the T2 key) does not open: the tier is bound.
    t0_ad = AssociatedData(record_id="rec-9", version=1, record_type="health_record", tier="T0")
    _decryption_failure(
        lambda: decrypt_tier(encrypted["T2"].key, encrypted["T2"].ciphertext, t0_ad)
    )


def test_encrypt_payload_rejects_unknown_tier() -> None:
    with pytest.raises(CryptoError, match="unknown tier 'T9'"):
        encrypt_payload({"T1": b"x", "T9": b"y"}, record_id="r", version=1, record_type="t")
