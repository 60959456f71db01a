"""Strict request parsing for every gateway route: no duplicate JSON members, no stray query.

FastAPI, like the JSON and URL parsers under it, quietly keeps the last of
two members with the same name (``{"record_type": "a", "record_type": "b"}``)
and ignores query parameters a route does not declare (a misspelt
``?form=`` on ``GET /v1/me/accesses`` returns everything). Both hide client
bugs and let two readers of the same bytes disagree, so :class:`StrictRoute`
refuses them with ``422 request_invalid`` before any dependency or endpoint
runs, as the contract's own parser does for arguments
(``chaincode.codec``). Every router sets ``route_class=StrictRoute``;
:func:`require_strict` checks it when the app is built.

The body is parsed once: :class:`StrictRequest` caches the strict parse and
FastAPI reuses it, so the only added cost on the hot path is the pairs hook
(one call per JSON object) and a set lookup per query parameter. The OpenAPI
document does not change: the checks add no parameters or models.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from types import UnionType
from typing import Any, Final, Union, get_args, get_origin

from fastapi import APIRouter, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_validation_alias
from fastapi.routing import APIRoute
from pydantic import BaseModel

from gateway.errors import RequestInvalid
from policies.strictjson import DuplicateMember, loads_strict

#: Longest caller-chosen name echoed back in a problem (names are not values, but unbounded).
_SHOWN: Final = 64
_SEQUENCES: Final = (list, set, frozenset, tuple, Sequence)


class StrictRequest(Request):
    """A request whose ``json()`` is :func:`loads_strict`, parsed once and cached."""

    _strict_json: Any

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = loads_strict(await self.body())
        return self._strict_json


def _shown(name: str) -> str:
    """``name`` fit to quote in a problem: shortened, lone surrogates (``"\\udc80"``) as ``?``."""
    short = name if len(name) <= _SHOWN else name[:_SHOWN] + "…"
    return short.encode("utf-8", "replace").decode("utf-8")


def _repeatable(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Union or origin is UnionType:
        return any(_repeatable(arg) for arg in get_args(annotation) if arg is not type(None))
    kind = origin or annotation
    return isinstance(kind, type) and issubclass(kind, _SEQUENCES) and kind not in (str, bytes)


def _query_model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) in (Union, UnionType):
        others = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = others[0] if len(others) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def declared_query(dependant: Dependant) -> tuple[frozenset[str], frozenset[str]]:
    """The query parameter names a route reads, and those of them that may repeat.

    Walks the endpoint's dependencies too, and expands a Pydantic model
    declared as ``Query()`` into its fields, as FastAPI does.
    """
    names: set[str] = set()
    repeatable: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        pending.extend(current.dependencies)
        for field in current.query_params:
            annotation = field.field_info.annotation
            model = _query_model(annotation)
            if model is None:
                fields = [(get_validation_alias(field), annotation)]
            else:
                fields = [
                    (
                        info.validation_alias
                        if isinstance(info.validation_alias, str)
                        else info.alias or name,
                        info.annotation,
                    )
                    for name, info in model.model_fields.items()
                ]
            for alias, kind in fields:
                names.add(alias)
                if _repeatable(kind):
                    repeatable.add(alias)
    return frozenset(names), frozenset(repeatable)


def check_query(
    items: Sequence[tuple[str, str]], accepted: frozenset[str], repeatable: frozenset[str]
) -> None:
    """Raise ``RequestInvalid`` for names not in ``accepted`` or given twice but not repeatable."""
    unknown: list[str] = []
    repeated: list[str] = []
    seen: set[str] = set()
    for name, _ in items:
        if name not in accepted:
            if name not in unknown:
                unknown.append(name)
        elif name in seen and name not in repeatable and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if not unknown and not repeated:
        return
    parts = []
    if unknown:
        takes = ", ".join(sorted(accepted)) if accepted else "no query parameters"
        listed = ", ".join(repr(_shown(name)) for name in unknown)
        parts.append(f"unknown query parameter {listed} (this route takes {takes})")
    if repeated:
        listed = ", ".join(repr(_shown(name)) for name in repeated)
        parts.append(f"query parameter {listed} given more than once")
    errors = [{"loc": ["query", _shown(n)], "msg": "unknown query parameter"} for n in unknown]
    errors += [{"loc": ["query", _shown(n)], "msg": "given more than once"} for n in repeated]
    raise RequestInvalid("; ".join(parts), errors=errors[:20])


async def check_body(request: StrictRequest) -> None:
    """Parse the body strictly now; raise ``RequestInvalid`` naming a repeated member.

    Malformed bodies pass through untouched: FastAPI then reports them as it
    always has (``422 request_invalid``, ``JSON decode error``).
    """
    if not await request.body():
        return
    try:
        await request.json()
    except DuplicateMember as exc:
        loc = ["body", *(_shown(p) if isinstance(p, str) else str(p) for p in exc.path)]
        where = ".".join(loc[:-1])
        raise RequestInvalid(
            f"duplicate member {loc[-1]!r} in {where}",
            errors=[{"loc": loc, "msg": "duplicate object member"}],
        ) from None
    except (ValueError, RecursionError):
        return


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class StrictRoute(APIRoute):
    """An ``APIRoute`` that refuses undeclared or repeated query parameters and duplicate members.

    ``query_names`` is what the route accepts (declared parameters, their
    aliases, its dependencies' parameters).
    """

    query_names: frozenset[str]

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        accepted, repeatable = declared_query(self.dependant)
        self.query_names = accepted
        takes_body = self.body_field is not None

        async def strict(request: Request) -> Response:
            strict_request = StrictRequest(request.scope, request.receive)
            if request.scope.get("query_string"):
                items = strict_request.query_params.multi_items()
                check_query(items, accepted, repeatable)
            if takes_body:
                await check_body(strict_request)
            return await handler(strict_request)

        return strict


def require_strict(router: APIRouter) -> None:
    """Raise ``TypeError`` unless every API route of ``router`` is a :class:`StrictRoute`."""
    for route in router.routes:
        if isinstance(route, APIRoute) and not isinstance(route, StrictRoute):
            raise TypeError(f"route {route.path} is not a StrictRoute: set route_class")
