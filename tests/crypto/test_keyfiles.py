"""Tests for crypto.keyfiles: 0600 on write, refusal of readable keys, passphrases."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.public import PrivateKey

from crypto.errors import KeyFileError
from crypto.keyfiles import (
    generate_x25519_private_key,
    load_private_key,
    load_x25519_private_key,
    read_private_file,
    write_private_file,
    write_private_key,
    write_x25519_private_key,
    x25519_public_key,
)


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Run with umask 000, so only our own code can make files private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
def test_written_key_is_0600_even_with_open_umask(
    key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "keystore" / "key.pem"
    write_private_key(path, key)
    assert _mode(path) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_private_key(path).private_numbers() == key.private_numbers()


@pytest.mark.usefixtures("permissive_umask")
def test_overwrite_stays_private_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private_file(path, b"new")
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700, 0o666])
def test_loading_a_group_or_world_accessible_key_fails(
    key: ec.EllipticCurvePrivateKey, tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path, key)
    path.chmod(mode)
    if mode & 0o077:
        with pytest.raises(KeyFileError, match=f"mode {mode:04o}.*chmod 600") as info:
            load_private_key(path)
        assert info.value.code == "key_file_invalid"
    else:
        load_private_key(path)  # 0700: owner-only is fine


def test_owner_only_read_only_key_loads(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path, key)
    path.chmod(0o400)
    assert load_private_key(path).private_numbers() == key.private_numbers()


def test_passphrase_round_trip(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path, key, passphrase=b"correct horse")
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = load_private_key(path, passphrase=b"correct horse")
    assert loaded.private_numbers() == key.private_numbers()


def test_wrong_passphrase_fails(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path, key, passphrase=b"correct horse")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_private_key(path, passphrase=b"battery staple")


def test_missing_passphrase_fails(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path, key, passphrase=b"correct horse")
    with pytest.raises(KeyFileError, match="encrypted; a passphrase is required"):
        load_private_key(path)


def test_unexpected_passphrase_fails(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path, key)
    with pytest.raises(KeyFileError, match="not encrypted but a passphrase was given"):
        load_private_key(path, passphrase=b"x")


def test_empty_passphrase_is_refused(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="empty passphrase"):
        write_private_key(tmp_path / "key.pem", key, passphrase=b"")
    assert not (tmp_path / "key.pem").exists()


def test_missing_garbage_and_wrong_type_files_fail(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "nope.pem")
    garbage = tmp_path / "garbage.pem"
    write_private_file(garbage, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError, match="not a valid PEM private key"):
        load_private_key(garbage)
    x_path = tmp_path / "x25519.key"
    write_x25519_private_key(x_path, generate_x25519_private_key())
    with pytest.raises(KeyFileError, match="ECDSA P-256"):
        load_private_key(x_path)
    p384 = tmp_path / "p384.pem"
    write_private_key(p384, ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(KeyFileError, match="ECDSA P-256"):
        load_private_key(p384)
    ec_path = tmp_path / "ec.pem"
    write_private_key(ec_path, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(KeyFileError, match="X25519"):
        load_x25519_private_key(ec_path)
    with pytest.raises(KeyFileError, match="not a regular file"):
        read_private_file(tmp_path)


@pytest.mark.usefixtures("permissive_umask")
def test_x25519_keys_round_trip_and_match_pynacl(tmp_path: Path) -> None:
    raw = generate_x25519_private_key()
    assert len(raw) == 32
    path = tmp_path / "x25519.key"
    write_x25519_private_key(path, raw)
    assert _mode(path) == 0o600
    assert load_x25519_private_key(path) == raw
    # The same raw key is usable with PyNaCl (sealed boxes) and gives the same public key.
    assert x25519_public_key(raw) == bytes(PrivateKey(raw).public_key)


def test_x25519_passphrase_and_permissions(tmp_path: Path) -> None:
    raw = generate_x25519_private_key()
    path = tmp_path / "x25519.key"
    write_x25519_private_key(path, raw, passphrase=b"pw")
    assert load_x25519_private_key(path, passphrase=b"pw") == raw
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_x25519_private_key(path, passphrase=b"nope")
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="group or others"):
        load_x25519_private_key(path, passphrase=b"pw")


def test_x25519_raw_key_must_be_32_bytes(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="32 bytes"):
        write_x25519_private_key(tmp_path / "k", b"short")
