"""Signed documents: access requests and consents signed by the transaction's creator.

An officer's access request and a citizen's consent are more than a
transaction argument: they are statements the signer makes, stored on the
ledger so that anyone can later prove who asked for what (I3), independently
of the gateway. The argument of such a function is::

    {"document": {...}, "signature": "<base64 DER ECDSA P-256 signature>"}

where the signature is over RFC 8785 canonical JSON of ``document``, made
with the key of the *transaction's creator* (its certificate is in the
proposal). Every document carries::

    format      which kind of statement (domain separation)
    nonce       16-128 characters [A-Za-z0-9_-], unique per signer
    timestamp   ISO 8601 UTC, within the ledger's window of the transaction time

The contract refuses (nothing is written): a signature by anyone else, a
timestamp outside ``request_window_seconds`` of the transaction timestamp
(never the wall clock: I4), and a nonce this signer already used -- the nonce
is recorded under the signer's MSP ID and certificate fingerprint, so a
replay reads the key and fails, and two racing copies conflict at MVCC
validation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from chaincode.caller import Caller
from chaincode.codec import check_fields, dumps, parse_time
from chaincode.context import Tx
from chaincode.errors import (
    InvalidArgument,
    RequestReplayed,
    RequestSignatureInvalid,
    RequestStale,
)
from chaincode.ledger import NONCE
from crypto.errors import VerificationError
from crypto.signing import Signer, verify

ACCESS_REQUEST_FORMAT: Final = "accessledger-access-request/1"
CONSENT_FORMAT: Final = "accessledger-consent/1"
CONSENT_REVOCATION_FORMAT: Final = "accessledger-consent-revocation/1"

NONCE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_\-]{16,128}$")
_MAX_SIGNATURE: Final = 80  # DER ECDSA P-256 is at most 72 bytes


def sign_document(document: Mapping[str, Any], signer: Signer) -> str:
    """Client side: the function argument carrying ``document`` signed by ``signer``."""
    signature = signer(dumps(dict(document)))
    return dumps(
        {"document": dict(document), "signature": base64.b64encode(signature).decode("ascii")}
    ).decode("utf-8")


@dataclass(frozen=True)
class SignedDocument:
    """A parsed signed document (not yet verified)."""

    document: dict[str, Any]
    signature: bytes

    @property
    def signed_bytes(self) -> bytes:
        return dumps(self.document)

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the signed bytes: how events refer to the document."""
        return hashlib.sha256(self.signed_bytes).hexdigest()

    @property
    def nonce(self) -> str:
        return str(self.document["nonce"])

    def signature_b64(self) -> str:
        return base64.b64encode(self.signature).decode("ascii")


def parse_signed(arg: Mapping[str, Any], expected_format: str) -> SignedDocument:
    """Check the envelope, the format tag, the nonce and the timestamp's syntax."""
    check_fields(arg, "signed document", {"document", "signature"})
    document, encoded = arg["document"], arg["signature"]
    if not isinstance(document, dict):
        raise InvalidArgument("document must be a JSON object")
    if not isinstance(encoded, str) or len(encoded) > 4 * _MAX_SIGNATURE:
        raise InvalidArgument("signature must be base64 text")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("signature is not valid base64") from None
    if document.get("format") != expected_format:
        raise InvalidArgument(f"document.format must be {expected_format!r}")
    nonce = document.get("nonce")
    if not isinstance(nonce, str) or not NONCE_PATTERN.fullmatch(nonce):
        raise InvalidArgument(f"document.nonce must match {NONCE_PATTERN.pattern}")
    parse_time(document.get("timestamp"), what="document.timestamp")
    return SignedDocument(document=document, signature=signature)


async def verify_signed(tx: Tx, caller: Caller, signed: SignedDocument) -> None:
    """Signer is the creator, timestamp in the window, nonce unused; then burn the nonce."""
    public_key = caller.certificate.public_key()
    try:
        verify(public_key, signed.signed_bytes, signed.signature)  # type: ignore[arg-type]
    except (VerificationError, TypeError, AttributeError):
        raise RequestSignatureInvalid(
            "the document is not signed by the transaction's creator"
        ) from None

    config = await tx.config()
    stamped = parse_time(signed.document["timestamp"], what="document.timestamp")
    window = timedelta(seconds=config.request_window)
    if abs(stamped - tx.ledger.now) > window:
        raise RequestStale(
            f"document.timestamp is more than {config.request_window} s from the transaction time"
        )

    key = tx.ledger.key(NONCE, caller.msp_id, caller.fingerprint, signed.nonce)
    if await tx.ledger.get(key) is not None:
        raise RequestReplayed("this nonce was already used by the same signer")
    await tx.ledger.put_json(key, {"format": signed.document["format"], "tx_id": tx.ledger.tx_id})
