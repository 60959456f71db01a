"""The identity registry: RegisterEncryptionKey and GetEncryptionKey.

Officers, auditors and citizens receive payload keys sealed to an X25519
public key. ``RegisterEncryptionKey`` binds that key to the *signing*
identity that submits the transaction: the entry is keyed by the creator's
MSP ID and certificate fingerprint, and the transaction itself is signed with
that certificate's key, so nobody can register a key for someone else.
Registering again replaces the key (rotation); the ledger's key history keeps
the earlier ones. A key custodian re-seals granted tier keys only to the key
registered for the officer who signed the committed request (I2).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from chaincode.codec import HEX_DIGEST, ORG, check_fields, text
from chaincode.context import Tx
from chaincode.errors import Forbidden, InvalidArgument, NotFound
from chaincode.ledger import ENC_KEY
from crypto.identity import IdentityKind

#: Identity kinds that receive payload keys.
KEY_HOLDERS: Final = frozenset({IdentityKind.OFFICER, IdentityKind.AUDITOR, IdentityKind.CITIZEN})
X25519_KEY_SIZE: Final = 32


def _public_key(arg: dict[str, Any]) -> bytes:
    encoded = arg.get("public_key")
    if not isinstance(encoded, str) or len(encoded) > 64:
        raise InvalidArgument("public_key must be base64 of a 32-byte X25519 public key")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("public_key is not valid base64") from None
    if len(key) != X25519_KEY_SIZE or key == bytes(X25519_KEY_SIZE):
        raise InvalidArgument("public_key must be a non-zero 32-byte X25519 public key")
    return key


async def register_encryption_key(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Bind the creator's X25519 public key to its signing certificate."""
    check_fields(arg, "RegisterEncryptionKey argument", {"public_key"})
    key = _public_key(arg)
    caller = await tx.caller()
    if caller.kind not in KEY_HOLDERS:
        raise Forbidden(f"a {caller.kind} identity does not receive payload keys")
    entry = {
        **caller.ref(),
        "kind": str(caller.kind),
        "algorithm": "X25519",
        "public_key": base64.b64encode(key).decode("ascii"),
        "registered_at": tx.ledger.now_text,
        "tx_id": tx.ledger.tx_id,
    }
    await tx.ledger.put_json(tx.ledger.key(ENC_KEY, caller.msp_id, caller.fingerprint), entry)
    tx.ledger.set_event("EncryptionKeyRegistered", entry)
    return entry


async def get_encryption_key(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """The registered key of one identity (any department identity may look it up)."""
    check_fields(arg, "GetEncryptionKey argument", {"msp_id", "cert_fingerprint"})
    msp_id = text(arg, "msp_id", ORG)
    fingerprint = text(arg, "cert_fingerprint", HEX_DIGEST)
    await tx.caller()
    entry = await tx.ledger.get_json(tx.ledger.key(ENC_KEY, msp_id, fingerprint))
    if entry is None:
        raise NotFound("no encryption key is registered for this identity")
    return entry
