"""``Content-Digest`` (RFC 9530): a hash of the request body the signature can cover.

The signature covers the ``Content-Digest`` header, not the body itself, so
the verifier must also check that the header matches the body it received;
:func:`verify_content_digest` does that. The field is a structured-field
Dictionary mapping an algorithm to a Byte Sequence, e.g.
``sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:``. AccessLedger
requires ``sha-256``; a ``sha-512`` entry, if present, must match as well;
other algorithms are ignored, as RFC 9530 asks of unknown ones.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

from http_sfv.dictionary import Dictionary

from gateway.auth.errors import DigestMismatchError
from gateway.auth.fields import parse_dictionary

#: Algorithms we compute and check (RFC 9530 section 5 registry names).
ALGORITHMS: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda body: hashlib.sha256(body).digest(),
    "sha-512": lambda body: hashlib.sha512(body).digest(),
}
#: The algorithm every AccessLedger request must carry.
REQUIRED_ALGORITHM = "sha-256"


def content_digest(body: bytes, algorithm: str = REQUIRED_ALGORITHM) -> str:
    """The ``Content-Digest`` field value for ``body``."""
    try:
        digest = ALGORITHMS[algorithm](body)
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}") from None
    field = Dictionary()
    field[algorithm] = digest
    return str(field)


def verify_content_digest(
    value: str | None, body: bytes, *, required: str = REQUIRED_ALGORITHM
) -> None:
    """Check a ``Content-Digest`` field value against ``body``; raise ``digest_mismatch``."""
    if value is None:
        raise DigestMismatchError("the request has no Content-Digest header")
    field = _parse(value)
    if required not in field:
        raise DigestMismatchError(f"Content-Digest has no {required} entry")
    for algorithm, member in field.items():
        compute = ALGORITHMS.get(algorithm)
        if compute is None:
            continue
        claimed = member if isinstance(member, bytes) else getattr(member, "value", None)
        if not isinstance(claimed, bytes):
            raise DigestMismatchError(f"Content-Digest {algorithm} is not a byte sequence")
        if not hmac.compare_digest(claimed, compute(body)):
            raise DigestMismatchError(f"Content-Digest {algorithm} does not match the body")


def _parse(value: str) -> Mapping[str, object]:
    """The field's members (canonical fast path, else :mod:`http_sfv`)."""
    fast = parse_dictionary(value)
    if fast is not None:
        return fast
    field = Dictionary()
    try:
        field.parse(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise DigestMismatchError(
            "Content-Digest is not a structured-field dictionary (RFC 9530)"
        ) from None
    return field
