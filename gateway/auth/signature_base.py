"""The RFC 9421 signature base: the exact bytes an HTTP message signature signs.

Section 2.5 of RFC 9421, for the covered components of one signature (an
Inner List from ``Signature-Input`` with its parameters)::

    "<component identifier>": <component value> LF      one line per component, in order
    "@signature-params": <the Inner List, serialised>   last line, no trailing LF

Component identifiers are the component names serialised as sf-strings
(quoted); the last line's value is the strict structured-field serialisation
of the Inner List *as parsed*, so a verifier rebuilds byte-for-byte what the
signer signed whatever whitespace the header had. Component parameters
(``;sf``, ``;key``, ``;bs``, ``;req``, ``;name``, ``;tr``) are not supported
and are refused, as is a component listed twice (section 2.5 requires both).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item

from gateway.auth.errors import SignatureInvalidError
from gateway.auth.message import HttpRequest, component_value

#: Values a signature metadata parameter may take (sf-integer or sf-string).
ParamValue = int | str
#: Component names whose sf-string serialisation is just the name in quotes.
_PLAIN = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


def covered_components(inner: InnerList) -> tuple[str, ...]:
    """The component names of a signature's Inner List, checked (strings, no params, unique)."""
    names: list[str] = []
    for item in inner:
        value = getattr(item, "value", None)
        # sf-strings only: http_sfv parses tokens into a str subclass, so compare types exactly.
        if type(value) is not str:
            raise SignatureInvalidError("covered components must be quoted strings")
        if getattr(item, "params", None):
            raise SignatureInvalidError(
                f"component parameters are not supported (on {value!r}); cover plain components"
            )
        names.append(value)
    return unique_components(names)


def unique_components(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, refusing a component listed twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SignatureInvalidError(f"component {name!r} is covered twice")
        seen.add(name)
    return tuple(names)


def signature_params(components: Sequence[str], params: Mapping[str, ParamValue]) -> str:
    """Serialise covered ``components`` and metadata ``params`` as an Inner List.

    This is both the ``@signature-params`` value and the member value of the
    ``Signature-Input`` field.
    """
    inner = InnerList(list(components))
    for key, value in params.items():
        inner.params[key] = value
    return serialise_inner_list(inner)


def serialise_inner_list(inner: InnerList) -> str:
    """The strict structured-field serialisation of ``inner`` (the ``@signature-params`` value)."""
    try:
        return str(inner)
    except ValueError as exc:
        raise SignatureInvalidError(f"signature parameters cannot be serialised: {exc}") from None


def signature_base(request: HttpRequest, inner: InnerList) -> bytes:
    """The signature base of ``request`` for the signature described by ``inner``."""
    return signature_base_of(request, covered_components(inner), serialise_inner_list(inner))


def signature_base_of(
    request: HttpRequest, components: Sequence[str], signature_params: str
) -> bytes:
    """The signature base for checked ``components`` and the serialised Inner List.

    What :func:`signature_base` builds, for a caller that already holds both
    (the verifier, which needs them for the signature's record as well).
    """
    lines = [f"{_identifier(name)}: {component_value(request, name)}" for name in components]
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("ascii")


def _identifier(name: str) -> str:
    """A component name as an sf-string: ``"name"``."""
    if _PLAIN.fullmatch(name):  # nothing to escape: the serialisation is the quoted name
        return f'"{name}"'
    return str(Item(name))


def parse_inner_list(value: str) -> InnerList:
    """Parse a serialised Inner List (``("@method" ...);created=...``)."""
    field = Dictionary()
    try:
        field.parse(f"s={value}".encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SignatureInvalidError(f"{value!r} is not a structured-field inner list") from None
    inner = field["s"]
    if not isinstance(inner, InnerList):
        raise SignatureInvalidError(f"{value!r} is not a structured-field inner list")
    return inner
