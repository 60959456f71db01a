"""The parts of an HTTP request a signature can cover, independent of any web framework.

:class:`HttpRequest` is the verifier's (and signer's) view of a request:
method, absolute target URI, header lines in order, body bytes. The gateway
builds one from the ASGI scope (:meth:`HttpRequest.from_asgi`), the SDK from
what it is about to send, and both then derive component values from it with
:func:`component_value` exactly as RFC 9421 section 2 defines them.

Paths and queries are taken as sent, percent-encoding intact: RFC 9421
compares them before any decoding, which is why the ASGI adapter reads
``raw_path`` and never the decoded ``path``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from gateway.auth.errors import SignatureInvalidError

#: Derived components (RFC 9421 section 2.2) this implementation can produce.
DERIVED_COMPONENTS = frozenset(
    {"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FIELD_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as a signer or verifier sees it."""

    method: str
    #: Absolute target URI, ``scheme://authority/path?query``, encoded exactly as sent.
    url: str
    #: Header lines in the order received; names in any case, repeated names allowed.
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def build(cls, method: str, url: str, headers: Headers = (), body: bytes = b"") -> HttpRequest:
        """A request from a header mapping or a sequence of ``(name, value)`` lines."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        return cls(method, url, tuple((str(k), str(v)) for k, v in items), bytes(body))

    @classmethod
    def from_asgi(cls, scope: Mapping[str, Any], body: bytes) -> HttpRequest:
        """A request from an ASGI HTTP ``scope`` and the body read from it.

        The path is the undecoded ``raw_path`` (falling back to ``path`` for
        servers that omit it) and the authority is the ``Host`` header, so the
        values are those the client put on the wire.
        """
        headers = tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope.get("headers", ())
        )
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else str(scope.get("path", "/"))
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        host = next((v for k, v in headers if k.lower() == "host"), None)
        if host is None:
            server = scope.get("server") or ("localhost", None)
            host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
        scheme = str(scope.get("scheme", "http"))
        url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
        return cls(str(scope["method"]), url, headers, bytes(body))

    def header(self, name: str) -> str | None:
        """The combined value of every line of header ``name`` (RFC 9421 section 2.1), or None.

        Each line's value is stripped of surrounding whitespace and the lines
        are joined with ``", "``, in order.
        """
        wanted = name.lower()
        values = [value.strip(" \t") for key, value in self.headers if key.lower() == wanted]
        return ", ".join(values) if values else None

    def _split(self) -> SplitResult:
        try:
            parts = urlsplit(self.url)
        except ValueError as exc:
            raise SignatureInvalidError(
                f"request target {self.url!r} is not a URI: {exc}"
            ) from None
        if not parts.scheme or not parts.netloc:
            raise SignatureInvalidError(f"request target {self.url!r} is not an absolute URI")
        return parts


def _authority(parts: SplitResult) -> str:
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal goes back into brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise SignatureInvalidError(f"request authority {parts.netloc!r} has a bad port") from None
    if port is None or _DEFAULT_PORTS.get(parts.scheme.lower()) == port:
        return host
    return f"{host}:{port}"


def _derived(request: HttpRequest, name: str) -> str:
    if name == "@method":
        return request.method
    parts = request._split()
    path = parts.path or "/"
    if name == "@target-uri":
        return request.url
    if name == "@authority":
        return _authority(parts)
    if name == "@scheme":
        return parts.scheme.lower()
    if name == "@path":
        return path
    if name == "@query":
        return f"?{parts.query}"
    # @request-target: origin form, as on the request line.
    return f"{path}?{parts.query}" if parts.query else path


def component_value(request: HttpRequest, name: str) -> str:
    """The value of component ``name`` of ``request`` for the signature base.

    ``name`` is a derived component (``@method``, ``@path``...) or a lowercase
    header field name. Raises ``signature_invalid`` for unsupported derived
    components, uppercase or malformed field names, absent fields and values
    that cannot appear in a signature base (control characters, non-ASCII).
    """
    if name.startswith("@"):
        if name not in DERIVED_COMPONENTS:
            raise SignatureInvalidError(f"unsupported derived component {name!r}")
        value = _derived(request, name)
    else:
        if not name or not set(name) <= _FIELD_NAME_CHARS:
            raise SignatureInvalidError(
                f"covered field name {name!r} must be a lowercase HTTP field name"
            )
        found = request.header(name)
        if found is None:
            raise SignatureInvalidError(f"covered header {name!r} is not in the request")
        value = found
    if not value.isascii() or any((ch < " " and ch != "\t") or ch == "\x7f" for ch in value):
        raise SignatureInvalidError(
            f"component {name!r} holds characters a signature base cannot carry"
        )
    return value
