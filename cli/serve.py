"""``accessledger serve``: the gateway HTTP API on the home's embedded network.

The service (network, stores, custodians; bootstrap of an empty ledger) is
started before uvicorn listens, on the same event loop, so a broken home is
one readable error line and exit 1 rather than a server that starts and
dies. Limits and store URLs come from ``ACCESSLEDGER_*`` variables
(``docs/api.md``, "Limits and settings").
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
import uvicorn

from cli._common import DEFAULT_HOME, HomeOption, console, reporting_errors
from cli.main import app
from crypto.errors import AccessLedgerError


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
        service = await GatewayService.start(settings)
        try:
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(settings, service=service),
                    host=host,
                    port=port,
                    log_level="info",
                    access_log=access_log,
                    lifespan="on",
                )
            )
            console().print(
                f"AccessLedger gateway for {home} on http://{host}:{port}"
                f" (ledger height {service.ledger.height}); Ctrl-C stops it",
                highlight=False,
            )
            await server.serve()
        finally:
            await service.aclose()

    asyncio.run(run())
