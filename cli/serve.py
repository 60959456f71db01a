"""``accessledger serve``: the gateway HTTP API on the home's embedded network.

The service (network, stores, custodians; bootstrap of an empty ledger) is
started before uvicorn listens, on the same event loop, so a broken home is
one readable error line and exit 1 rather than a server that starts and
dies. Limits and store URLs come from ``ACCESSLEDGER_*`` variables
(``docs/api.md``, "Limits and settings").

The server runs on uvloop with uvicorn's httptools HTTP parser, chosen
explicitly (no "auto" fallback to the pure-Python stack): under load the
gateway is CPU-bound in one process, and the event loop and request parsing
are part of every request's cost. Nothing in the gateway or the embedded
network relies on asyncio's own loop class; they use only the public loop API
(futures, ``call_later``, executors, tasks).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import typer
import uvicorn
import uvloop

from cli._common import DEFAULT_HOME, HomeOption, console, reporting_errors
from cli.main import app
from crypto.errors import AccessLedgerError
from network.engine.heap import settle_heap

#: uvicorn's HTTP/1.1 implementation and event loop for ``serve`` (see the module docstring).
HTTP_IMPLEMENTATION = "httptools"
LOOP_IMPLEMENTATION = "uvloop"


@app.command("serve")
@reporting_errors
def serve_command(
    home: HomeOption = DEFAULT_HOME,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request line.")
    ] = False,
) -> None:
    """Serve the gateway (HTTP API /v1, /healthz, /metrics) for the home's network."""
    from gateway.app import create_app
    from gateway.service.core import GatewayService
    from gateway.settings import load_settings

    if not (home / "network.yaml").is_file():
        raise AccessLedgerError(
            f"{home} is not an AccessLedger home (no network.yaml); "
            "create one with: accessledger init --home DIR",
            code="home_missing",
        )
    settings = load_settings(home=home)

    async def run() -> None:
        # asyncio.to_thread work (key releases, store writes) shares these few threads.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(
                max_workers=settings.worker_threads, thread_name_prefix="gateway-worker"
            )
        )
        service = await GatewayService.start(settings)
        try:
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(settings, service=service),
                    host=host,
                    port=port,
                    http=HTTP_IMPLEMENTATION,
                    loop=LOOP_IMPLEMENTATION,
                    log_level="info",
                    access_log=access_log,
                    lifespan="on",
                )
            )
            settle_heap()  # start-up is done (service, app, server): keep the collector off it
            console().print(
                f"AccessLedger gateway for {home} on http://{host}:{port}"
                f" (ledger height {service.ledger.height}); Ctrl-C stops it",
                highlight=False,
            )
            await server.serve()
        finally:
            await service.aclose()

    # Server.serve() runs on the caller's loop (it does not install config.loop itself):
    # the service must start on the same loop the server then serves from.
    uvloop.run(run())
