"""Calls and answers: one signed HTTP exchange, independent of how it is sent.

The SDK's operations (:mod:`gateway.client.flows`) describe each HTTP
exchange as a :class:`Call`. :func:`prepare` turns a call into the exact
bytes and headers to send -- the body serialised once, then signed with
RFC 9421 by the caller's identity (``gateway.auth.sign_request``), so the
signature covers precisely what goes on the wire. :func:`interpret` turns
the answer into JSON or bytes, or raises the typed error of its RFC 9457
problem. The synchronous and asynchronous clients only move the bytes.

A body that cannot be sent as strict UTF-8 JSON (a lone surrogate, a NaN, a
value JSON has no type for, nesting past the encoder's depth) is refused
before anything is signed or sent, as :class:`InvalidRequest` naming where.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

from crypto.identity import Identity
from gateway.auth import sign_request
from gateway.client.errors import GatewayFailure, InvalidRequest, ProtocolError, problem_error

JSON_TYPE = "application/json"
PROBLEM_TYPE = "application/problem+json"
#: Query values the SDK sends: None leaves the parameter out.
QueryValue = str | int | bool | None


@dataclass(frozen=True)
class Call:
    """One HTTP exchange an operation needs."""

    method: str
    path: str
    query: Mapping[str, QueryValue] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    expect: Literal["json", "bytes"] = "json"


@dataclass(frozen=True)
class Prepared:
    """A call ready to send: absolute URL, headers (signature included) and body bytes."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes


def path_segment(value: str) -> str:
    """``value`` percent-encoded as one path segment."""
    return quote(value, safe="")


def _query_text(query: Mapping[str, QueryValue]) -> str:
    pairs = []
    for name, value in query.items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        pairs.append((name, text))
    return urlencode(pairs, quote_via=quote)


def prepare(call: Call, *, base_url: str, identity: Identity, now: datetime) -> Prepared:
    """Serialise, sign and address ``call`` (see the module docstring)."""
    url = base_url.rstrip("/") + call.path
    query = _query_text(call.query)
    if query:
        url += "?" + query
    headers = {"Accept": f"{JSON_TYPE}, {PROBLEM_TYPE}"}
    content = b""
    if call.body is not None:
        content = encode_body(call)
        headers["Content-Type"] = JSON_TYPE
    signed = sign_request(call.method, url, headers, content, identity=identity, now=now)
    return Prepared(method=call.method, url=url, headers=signed, content=content)


def encode_body(call: Call) -> bytes:
    """``call.body`` as compact UTF-8 JSON, or :class:`InvalidRequest` saying why it cannot be."""
    try:
        text = json.dumps(call.body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        character = exc.object[exc.start : exc.start + 1]
        reason = (
            f"{_surrogate_place(call.body)} holds a lone surrogate ({character!r}),"
            " which UTF-8 cannot encode"
        )
    except RecursionError:
        reason = "the body is nested too deeply to encode"
    except ValueError as exc:  # NaN or an infinity (allow_nan=False), or a circular reference
        reason = (
            "the body holds NaN or an infinity, which is not JSON"
            if "float" in str(exc)
            else f"the body cannot be encoded: {exc}"
        )
    except TypeError as exc:  # a value JSON has no type for, e.g. a datetime
        reason = f"the body cannot be encoded: {exc}"
    raise InvalidRequest(f"cannot send {call.method} {call.path}: {reason}", code="request_invalid")


def _surrogate_place(body: Any) -> str:
    """Where in ``body`` the first string with a lone surrogate is, e.g. ``fields.names[1]``."""
    pending: list[tuple[str, Any]] = [("", body)]
    while pending:  # iterative: the body may be deep
        place, value = pending.pop()
        if isinstance(value, str):
            if _has_surrogate(value):
                return place or "the body"
        elif isinstance(value, Mapping):
            items = list(value.items())
            for name, _ in items:
                if isinstance(name, str) and _has_surrogate(name):
                    return f"a member name in {place}" if place else "a member name of the body"
            for name, member in reversed(items):
                pending.append((f"{place}.{name}" if place else str(name), member))
        elif isinstance(value, list | tuple):
            pending.extend((f"{place}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return "the body"


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= character <= "\udfff" for character in text)


def interpret(call: Call, status: int, headers: Mapping[str, str], content: bytes) -> Any:
    """The answer's JSON (or bytes), or the typed error of its problem."""
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if status >= 400:
        problem: Any = None
        if media in (PROBLEM_TYPE, JSON_TYPE):
            try:
                problem = json.loads(content)
            except ValueError:
                problem = None
        if isinstance(problem, dict):
            raise problem_error(status, problem, retry_after=headers.get("retry-after"))
        kind = GatewayFailure if status >= 500 else ProtocolError
        raise kind(
            f"{call.method} {call.path} answered {status} without a problem document",
            code=f"http_{status}",
            status=status,
        )
    if call.expect == "bytes":
        return content
    if media != JSON_TYPE:
        raise ProtocolError(f"{call.method} {call.path} answered {media or 'no content type'}")
    try:
        return json.loads(content)
    except ValueError:
        raise ProtocolError(f"{call.method} {call.path} answered malformed JSON") from None
