"""Key rotation from the SDK: custodian keys (an admin job) and an identity's own X25519 key.

**Custodian key** (:func:`rotate_custodian_key`): ``POST
/v1/departments/{org}/custodian-key/rotation``, signed by an admin of that
department. The gateway does the work (:mod:`gateway.rotation`).

**Encryption key** of an officer, auditor or citizen
(:func:`rotate_encryption_key`): the key payload keys are sealed to. The new
key must be on the ledger before anyone seals to it, and its private half
must never be lost once it is, so the files move like this (each write a
0600 temp file renamed into place)::

    x25519.key.next      <- new key            (1) before the ledger hears of it
    RegisterEncryptionKey(public(next))        (2) committed through the gateway
    x25519.key.previous  <- old key            (3)
    x25519.key           <- new key            (4)
    x25519.key.next      deleted               (5)

A crash before (2) commits leaves the old key registered and in use; running
the rotation again registers the same ``.next`` key (never a third one) and
carries on. After (2) the custodians seal every new grant to the new key,
which the old one cannot open. ``x25519.key.previous`` keeps one generation
of old key so an agency system that archived sealed keys it received before
the rotation can still open them offline; the SDK itself decrypts with the
current key only (a grant re-fetched after the rotation is re-sealed to it).
Delete the file once nothing archived needs it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from crypto.consortium import ENCRYPTING_KINDS, X25519_FILE, Consortium, identity_dir
from crypto.envelope import x25519_public_key
from crypto.keyfiles import (
    generate_x25519_private_key,
    load_x25519_private_key,
    sync_directory,
    write_x25519_private_key,
)
from gateway.client.errors import ClientError
from gateway.client.flows import Operations
from gateway.client.http import Call, path_segment
from gateway.client.models import Committed
from gateway.client.session import GENERIC_ENDPOINT, Flow
from gateway.custodian_keys import key_id

NEXT_SUFFIX: Final = ".next"
PREVIOUS_SUFFIX: Final = ".previous"


@dataclass(frozen=True)
class CustodianKeyRotation:
    """The gateway's answer to a custodian key rotation."""

    org: str
    old_key_id: str
    new_key_id: str
    resealed: int
    resumed: bool
    started_at: str
    finished_at: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CustodianKeyRotation:
        return cls(
            org=str(data["org"]),
            old_key_id=str(data["old_key_id"]),
            new_key_id=str(data["new_key_id"]),
            resealed=int(data["resealed"]),
            resumed=bool(data["resumed"]),
            started_at=str(data["started_at"]),
            finished_at=str(data["finished_at"]),
            raw=dict(data),
        )


@dataclass(frozen=True)
class EncryptionKeyRotation:
    """An identity's X25519 key rotation: the key ids, and the transaction that registered it."""

    identity: str
    old_key_id: str
    new_key_id: str
    tx_id: str
    block_number: int
    #: Where the previous private key is kept (see the module docstring).
    previous_key_file: Path


def rotate_custodian_key(
    operations: Operations, org: str, *, batch_size: int | None = None
) -> Flow[CustodianKeyRotation]:
    """Ask the gateway to rotate ``org``'s custodian key (the caller must be its admin)."""
    body: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
    path = f"/v1/departments/{path_segment(org)}/custodian-key/rotation"
    answer = yield Call("POST", path, body=body)
    return CustodianKeyRotation.from_json(answer)


def register_encryption_public_key(operations: Operations, public_key: bytes) -> Flow[Committed]:
    """Register ``public_key`` as the caller's X25519 key (``RegisterEncryptionKey``).

    The caller's earlier key stays on the ledger's key history; custodians
    seal to the new one from this commit on.
    """
    argument = {"public_key": base64.b64encode(public_key).decode("ascii")}
    answer = yield from operations.transact(
        GENERIC_ENDPOINT, "RegisterEncryptionKey", lambda: argument
    )
    return Committed.from_json(answer)


def encryption_key_paths(home: Path, identity_name: str) -> tuple[Path, Path, Path]:
    """``(current, next, previous)`` key files of an officer, auditor or citizen."""
    consortium = Consortium.load(Path(home), public_only=True)
    identity = consortium.identity(identity_name)
    if identity.kind not in ENCRYPTING_KINDS:
        raise ClientError(
            f"identity {identity_name} is a {identity.kind}; only officers, auditors and"
            " citizens hold an encryption key",
            code="no_encryption_key",
        )
    current = identity_dir(Path(home), identity.org, identity_name) / X25519_FILE
    return (
        current,
        current.with_name(current.name + NEXT_SUFFIX),
        current.with_name(current.name + PREVIOUS_SUFFIX),
    )


def _write(path: Path, private: bytes) -> None:
    write_x25519_private_key(path, private)
    sync_directory(path.parent)


def rotate_encryption_key(home: Path, identity_name: str, client: Any) -> EncryptionKeyRotation:
    """Rotate ``identity_name``'s X25519 key through ``client`` (a :class:`Client` acting as it).

    Follows the file steps of the module docstring; safe to run again after
    a crash at any point. Afterwards ``client`` decrypts with the new key.
    """
    operations: Operations = client.operations
    if operations.identity.name != identity_name:
        raise ClientError(
            f"the client acts as {operations.identity.name}, not {identity_name}",
            code="wrong_identity",
        )
    current_path, next_path, previous_path = encryption_key_paths(home, identity_name)
    old = load_x25519_private_key(current_path)
    if next_path.exists():
        new = load_x25519_private_key(next_path)  # an interrupted rotation's key
    else:
        new = generate_x25519_private_key()
        _write(next_path, new)  # (1)
    committed: Committed = client.run(
        register_encryption_public_key(operations, x25519_public_key(new))
    )  # (2)
    if old != new:
        _write(previous_path, old)  # (3)
        _write(current_path, new)  # (4)
    next_path.unlink(missing_ok=True)  # (5)
    sync_directory(next_path.parent)
    operations.encryption_key = new
    operations.public_key = x25519_public_key(new)
    previous_id = (
        key_id(x25519_public_key(load_x25519_private_key(previous_path)))
        if old == new and previous_path.exists()
        else key_id(x25519_public_key(old))
    )
    return EncryptionKeyRotation(
        identity=identity_name,
        old_key_id=previous_id,
        new_key_id=key_id(x25519_public_key(new)),
        tx_id=committed.tx_id,
        block_number=committed.block_number,
        previous_key_file=previous_path,
    )


__all__ = [
    "CustodianKeyRotation",
    "EncryptionKeyRotation",
    "encryption_key_paths",
    "register_encryption_public_key",
    "rotate_custodian_key",
    "rotate_encryption_key",
]
