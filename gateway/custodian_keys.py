"""A department custodian's X25519 keys on disk: the current one and, mid-rotation, the previous.

Layout (``crypto.consortium``): ``HOME/orgs/<Org>/custodian/x25519.key`` is the
current key, the one new tier keys are sealed to. While a rotation is under
way (or was interrupted) ``x25519.key.previous`` holds the key it replaces.
Every sealed tier key in the department's store records the **key id** of
the key it is sealed to (:func:`key_id`), so the custodian opens each row
with the right key whichever state a crash left behind.

A rotation moves the files through these states, each reached by an atomic
rename of a fully written, fsynced, mode-0600 file (then an fsync of the
directory), so a ``kill -9`` at any instant leaves one of them:

==========================  ============================  ====================================
``x25519.key``              ``x25519.key.previous``       meaning
==========================  ============================  ====================================
old                         (absent)                      no rotation
old                         old                           started; the new key is not chosen
new                         old                           re-sealing (rows hold old or new ids)
new                         (absent)                      finished: no row refers to old
==========================  ============================  ====================================

:func:`begin_rotation` resumes from any of them, and ``x25519.key.previous``
is deleted (:func:`retire_previous`) only after the store holds no row sealed
to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from crypto.consortium import X25519_FILE, org_dir
from crypto.envelope import x25519_public_key
from crypto.errors import AccessLedgerError
from crypto.keyfiles import (
    generate_x25519_private_key,
    load_x25519_private_key,
    sync_directory,
    write_x25519_private_key,
)

#: Suffix of the key a rotation replaces, kept until no stored row refers to it.
PREVIOUS_SUFFIX: Final = ".previous"
#: Hex digits of SHA-256 in a key id (matches ``gateway.store.models.KEY_ID_LENGTH``).
KEY_ID_HEX: Final = 16


class CustodianKeyError(AccessLedgerError):
    """A custodian's key files are missing or inconsistent."""

    code = "custodian_key_invalid"


def key_id(public_key: bytes) -> str:
    """The id of an X25519 public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:KEY_ID_HEX]


def custodian_key_path(home: Path, org: str) -> Path:
    """``HOME/orgs/<Org>/custodian/x25519.key``."""
    return org_dir(Path(home), org) / "custodian" / X25519_FILE


def previous_key_path(home: Path, org: str) -> Path:
    """``HOME/orgs/<Org>/custodian/x25519.key.previous``."""
    path = custodian_key_path(home, org)
    return path.with_name(path.name + PREVIOUS_SUFFIX)


@dataclass(frozen=True)
class CustodianKeyRing:
    """A custodian's current key and, while a rotation is unfinished, the previous one."""

    current: bytes = field(repr=False)
    previous: bytes | None = field(default=None, repr=False)
    #: The current key's public half (derived).
    current_public: bytes = field(init=False, repr=False)
    #: Key id of the current key (derived).
    current_id: str = field(init=False)
    #: Key id of the previous key, if any (derived).
    previous_id: str | None = field(init=False)

    def __post_init__(self) -> None:
        if self.previous == self.current:
            object.__setattr__(self, "previous", None)
        public = x25519_public_key(self.current)
        object.__setattr__(self, "current_public", public)
        object.__setattr__(self, "current_id", key_id(public))
        previous_id = None if self.previous is None else key_id(x25519_public_key(self.previous))
        object.__setattr__(self, "previous_id", previous_id)

    def private_for(self, wanted: str) -> bytes | None:
        """The private key whose id is ``wanted`` (``None`` if this ring has no such key)."""
        if wanted == self.current_id:
            return self.current
        if wanted == self.previous_id:
            return self.previous
        return None

    def candidates(self) -> Iterator[bytes]:
        """Every private key, current first (for rows that recorded no key id)."""
        yield self.current
        if self.previous is not None:
            yield self.previous


def load_key_ring(home: Path, org: str) -> CustodianKeyRing:
    """The custodian keys of ``org`` as the files hold them now."""
    current_path = custodian_key_path(home, org)
    if not current_path.exists():
        raise CustodianKeyError(f"organisation {org} has no key custodian ({current_path})")
    current = load_x25519_private_key(current_path)
    previous_path = previous_key_path(home, org)
    previous = load_x25519_private_key(previous_path) if previous_path.exists() else None
    return CustodianKeyRing(current, previous)


def _write_key(path: Path, private: bytes) -> None:
    write_x25519_private_key(path, private)  # temp file 0600, fsync, rename
    sync_directory(path.parent)


def begin_rotation(home: Path, org: str) -> tuple[CustodianKeyRing, bool]:
    """Move ``org``'s key files to "re-sealing" (module table); return the ring and ``resumed``.

    From "no rotation" a new key is generated: the current key is first
    copied to ``x25519.key.previous``, then the new key replaces
    ``x25519.key``. From an interrupted rotation it continues where the
    files say, never generating a second new key while rows may still be
    sealed to the first (``resumed`` is then ``True``).
    """
    current_path = custodian_key_path(home, org)
    previous_path = previous_key_path(home, org)
    ring = load_key_ring(home, org)
    on_disk_previous = load_x25519_private_key(previous_path) if previous_path.exists() else None
    if on_disk_previous is not None and on_disk_previous != ring.current:
        return ring, True  # interrupted while re-sealing
    resumed = on_disk_previous is not None
    if not resumed:
        _write_key(previous_path, ring.current)
    new = generate_x25519_private_key()
    _write_key(current_path, new)
    return CustodianKeyRing(new, ring.current), resumed


def retire_previous(home: Path, org: str) -> None:
    """Delete ``x25519.key.previous`` (call only when no stored row is sealed to it)."""
    path = previous_key_path(home, org)
    path.unlink(missing_ok=True)
    sync_directory(path.parent)


__all__ = [
    "KEY_ID_HEX",
    "PREVIOUS_SUFFIX",
    "CustodianKeyError",
    "CustodianKeyRing",
    "begin_rotation",
    "custodian_key_path",
    "key_id",
    "load_key_ring",
    "previous_key_path",
    "retire_previous",
]


#: ``sealing(org)``: a context holding ``org``'s sealing lock that yields the
#: ``(public key, key id)`` new tier keys must be sealed to and recorded with
#: (:meth:`gateway.custodian.Custodians.sealing`).
Sealing = Callable[[str], AbstractContextManager[tuple[bytes, str]]]
