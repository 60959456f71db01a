"""Error types of the crypto layer and the project's root error.

Every error AccessLedger raises on purpose derives from :class:`AccessLedgerError`,
so callers (the gateway boundary, the CLI) can catch one type and turn it into a
problem+json response or a one-line message. Each subclass carries a stable
``code`` string that the HTTP and CLI layers expose unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path


class AccessLedgerError(Exception):
    """Root of every deliberate AccessLedger error."""

    code: str = "accessledger_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class CryptoError(AccessLedgerError):
    """Base of crypto-layer errors."""

    code = "crypto_error"


class VerificationError(CryptoError):
    """A signature did not verify (bad signature, high-S, wrong key, malformed DER)."""

    code = "signature_invalid"


class CertificateError(CryptoError):
    """A certificate was rejected; the message names the reason."""

    code = "certificate_invalid"


class DecryptionError(CryptoError):
    """Opening a ciphertext or sealed key failed.

    Deliberately opaque: wrong key, flipped bit and wrong associated data all
    raise this same error with the same message, so a caller learns nothing
    about which check failed.
    """

    code = "decryption_failed"

    def __init__(self) -> None:
        super().__init__("decryption failed")


class KeyFileError(CryptoError):
    """A private key file is unreadable, too permissive or has the wrong passphrase."""

    code = "key_file_invalid"


class IdentityNumberError(CryptoError):
    """A resident identity number (GB 11643) failed validation; says which check."""

    code = "identity_number_invalid"


def os_error_reason(exc: OSError, *, target: Path | None = None) -> str:
    """Why ``exc`` happened, on one line, naming the file it concerns.

    For the one-line errors of commands that write where the user said: the
    file is named unless it is ``target`` itself (which the caller's message
    names already).
    """
    where = os.fsdecode(exc.filename) if isinstance(exc.filename, str | bytes) else None
    if isinstance(exc, FileExistsError) and where is not None:
        return f"{where} exists and is not a directory"
    if isinstance(exc, NotADirectoryError) and where is not None:
        return f"a parent of {where} is not a directory"
    reason = exc.strerror or str(exc) or type(exc).__name__
    if where is not None and (target is None or Path(where).absolute() != target.absolute()):
        reason += f" ({where})"
    return reason
