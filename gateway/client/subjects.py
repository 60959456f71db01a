"""Naming the person a request is about: identity numbers, pseudonyms, the consortium secret.

The ledger knows people only by pseudonym (HMAC-SHA256 of the GB 11643
number under the consortium secret). Record registration may carry the
number itself -- inside the encrypted payload and as
``subject_identity_number``, which the gateway pseudonymises -- so a
registrar needs no secret. Every other request names the pseudonym; a
client derives it locally only if it was given the consortium secret (an
agency system inside the consortium, or a home that holds it). Numbers are
validated here first, so a typo fails before anything is sent, with a
message that never repeats the number.
"""

from __future__ import annotations

from collections.abc import Callable

from crypto.errors import CryptoError, IdentityNumberError
from crypto.pseudonym import (
    PSEUDONYM_PREFIX,
    normalise_identity_number,
    pseudonym,
    validate_pseudonym,
)
from gateway.client.errors import ClientError, InvalidRequest

SecretSource = Callable[[], bytes]


def is_pseudonym(subject: str) -> bool:
    return subject.startswith(PSEUDONYM_PREFIX)


def checked_pseudonym(subject: str) -> str:
    try:
        return validate_pseudonym(subject)
    except CryptoError as exc:
        raise InvalidRequest(exc.message, code="subject_invalid") from None


def record_subject(subject: str) -> dict[str, str]:
    """The subject member of a record body: a pseudonym as is, a number checked first."""
    if is_pseudonym(subject):
        return {"subject": checked_pseudonym(subject)}
    try:
        return {"subject_identity_number": normalise_identity_number(subject)}
    except IdentityNumberError as exc:
        raise InvalidRequest(exc.message, code=exc.code) from None


class Pseudonymiser:
    """Turns a subject into its pseudonym, reading the consortium secret once, when first needed."""

    def __init__(self, secret: SecretSource | None) -> None:
        self._source = secret
        self._secret: bytes | None = None

    def __call__(self, subject: str) -> str:
        if is_pseudonym(subject):
            return checked_pseudonym(subject)
        if self._source is None:
            raise ClientError(
                "give the subject as a ps1: pseudonym: this client has no consortium secret"
                " to derive it from an identity number",
                code="pseudonym_unavailable",
            )
        if self._secret is None:
            self._secret = self._source()
        try:
            return pseudonym(subject, self._secret)
        except IdentityNumberError as exc:
            raise InvalidRequest(exc.message, code=exc.code) from None
