"""The gateway app served in-process, for tools that seed or inspect a home without a server.

:func:`in_process_gateway` starts the gateway's FastAPI app on the current
event loop (its lifespan opens the home's embedded network and bootstraps
an empty ledger) and yields an ``httpx.AsyncClient`` whose transport calls
the app directly (ASGI). Requests still go through the whole HTTP stack --
signature verification, routing, validation, problem documents -- so an SDK
client on this transport behaves exactly as against ``accessledger serve``,
minus the socket.

The home's ledger must not be open in another process at the same time
(stop ``accessledger serve`` first, or send the requests to it instead).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.client.client import DEFAULT_TIMEOUT

#: Base URL of the in-process transport (never resolved; only path and query are signed).
IN_PROCESS_URL = "http://accessledger.in-process"


@asynccontextmanager
async def in_process_gateway(home: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client bound to the gateway app of ``home``, running in this process.

    ``settings`` override ``GatewaySettings`` fields (the rest come from the
    ``ACCESSLEDGER_*`` environment as for ``serve``).
    """
    # Imported here: the server side is only needed when a tool runs it in-process.
    from gateway.app import create_app
    from gateway.settings import load_settings

    app = create_app(load_settings(home=Path(home), **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=IN_PROCESS_URL, timeout=DEFAULT_TIMEOUT
        ) as http:
            yield http
