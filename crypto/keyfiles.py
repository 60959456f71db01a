"""Private key files: written owner-only (0600), refused when anyone else can read them.

Signing keys (ECDSA P-256) and payload-receiving keys (X25519) are stored as
PKCS#8 PEM, optionally encrypted with a passphrase, so OpenSSL and Fabric's
tooling can read them. Loading is strict, as ``ssh`` is with identity files:
a key that is group- or world-accessible has possibly leaked and is rejected
rather than silently used. Every failure raises
:class:`~crypto.errors.KeyFileError` with a message that says what to do.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from crypto.errors import KeyFileError

#: Mode of every private file AccessLedger writes.
PRIVATE_MODE = 0o600

_PrivateKey = ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600.

    The temporary file is created 0600 before any byte is written, so the
    secret is never visible with looser permissions, and a crash leaves either
    the old file or the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, PRIVATE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync_directory(path: Path) -> None:
    """fsync a directory, so renames inside it survive a power cut (they are atomic already)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private_file(path: Path) -> bytes:
    """Read a private file after checking nobody but the owner can access it."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path} does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} is accessible by group or others (mode {mode:04o}); "
            f"restrict it with: chmod 600 {path}"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror}") from exc


def _encryption(passphrase: bytes | None) -> serialization.KeySerializationEncryption:
    if passphrase is None:
        return serialization.NoEncryption()
    if not passphrase:
        raise KeyFileError("an empty passphrase is not allowed; omit it instead")
    return serialization.BestAvailableEncryption(passphrase)


def _load_pem(path: Path, passphrase: bytes | None) -> object:
    data = read_private_file(path)
    encrypted = b"ENCRYPTED PRIVATE KEY" in data
    if encrypted and passphrase is None:
        raise KeyFileError(f"key file {path} is encrypted; a passphrase is required")
    if not encrypted and passphrase is not None:
        raise KeyFileError(f"key file {path} is not encrypted but a passphrase was given")
    try:
        return serialization.load_pem_private_key(data, password=passphrase)
    except ValueError as exc:
        if encrypted:
            raise KeyFileError(f"wrong passphrase for key file {path}") from exc
        raise KeyFileError(f"key file {path} is not a valid PEM private key") from exc
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"key file {path} is not a supported private key") from exc


def _pem(key: _PrivateKey, passphrase: bytes | None) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _encryption(passphrase)
    )


def write_private_key(
    path: Path, key: ec.EllipticCurvePrivateKey, *, passphrase: bytes | None = None
) -> None:
    """Write an ECDSA private key as PKCS#8 PEM, mode 0600, encrypted if a passphrase is set."""
    write_private_file(path, _pem(key, passphrase))


def load_private_key(path: Path, *, passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Load an ECDSA P-256 private key written by :func:`write_private_key`."""
    key = _load_pem(path, passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"key file {path} does not hold an ECDSA P-256 private key")
    return key


def generate_x25519_private_key() -> bytes:
    """Return a new raw 32-byte X25519 private key (usable with PyNaCl as well)."""
    return x25519.X25519PrivateKey.generate().private_bytes_raw()


def x25519_public_key(private_raw: bytes) -> bytes:
    """Return the raw 32-byte X25519 public key for a raw private key."""
    return _x25519_from_raw(private_raw).public_key().public_bytes_raw()


def _x25519_from_raw(private_raw: bytes) -> x25519.X25519PrivateKey:
    if len(private_raw) != 32:
        raise KeyFileError("an X25519 private key is exactly 32 bytes")
    return x25519.X25519PrivateKey.from_private_bytes(private_raw)


def write_x25519_private_key(
    path: Path, private_raw: bytes, *, passphrase: bytes | None = None
) -> None:
    """Write a raw X25519 private key as PKCS#8 PEM, mode 0600."""
    write_private_file(path, _pem(_x25519_from_raw(private_raw), passphrase))


def load_x25519_private_key(path: Path, *, passphrase: bytes | None = None) -> bytes:
    """Load an X25519 key written by :func:`write_x25519_private_key`; return raw bytes."""
    key = _load_pem(path, passphrase)
    if not isinstance(key, x25519.X25519PrivateKey):
        raise KeyFileError(f"key file {path} does not hold an X25519 private key")
    return key.private_bytes_raw()
