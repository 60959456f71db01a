"""``accessledger serve``: the gateway HTTP API on the home's embedded network.

The service (network, stores, custodians; bootstrap of an empty ledger) is
started before uvicorn listens, on the same event loop, so a broken home is
one readable error line and exit 1 rather than a server that starts and
dies. For the same reason the address is tried first: a busy port or a host
that is not this machine's is one line (``port_in_use``, ``host_invalid``,
...) before anything is announced, not uvicorn's log and exit 3. Limits and
store URLs come from ``ACCESSLEDGER_*`` variables (``docs/api.md``, "Limits
and settings").

The server runs on uvloop with uvicorn's httptools HTTP parser, chosen
explicitly (no "auto" fallback to the pure-Python stack): under load the
gateway is CPU-bound in one process, and the event loop and request parsing
are part of every request's cost. Nothing in the gateway or the embedded
network relies on asyncio's own loop class; they use only the public loop API
(futures, ``call_later``, executors, tasks).
"""

from __future__ import annotations

import asyncio
import errno
import socket
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


def check_address(host: str, port: int) -> None:
    """Raise a one-line error unless uvicorn will be able to listen on ``host:port``.

    Binds (and closes) a socket per address, as asyncio's ``create_server``
    will: every address ``host`` resolves to, passive, with ``SO_REUSEADDR``
    (so a port left in TIME_WAIT by a previous run is not called busy).
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else exc
        raise AccessLedgerError(
            f"--host {host!r} is not an address to listen on: {reason}", code="host_invalid"
        ) from None
    for family, kind, protocol, _, address in addresses:
        try:
            with socket.socket(family, kind, protocol) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
        except OSError as exc:
            raise _listen_error(exc, host, where) from None


def _listen_error(exc: OSError, host: str, where: str) -> AccessLedgerError:
    if exc.errno == errno.EADDRINUSE:
        return AccessLedgerError(f"{where} is already in use", code="port_in_use")
    if exc.errno == errno.EADDRNOTAVAIL:
        return AccessLedgerError(
            f"{host} is not an address of this machine (cannot listen on {where})",
            code="host_invalid",
        )
    if exc.errno == errno.EACCES:
        return AccessLedgerError(f"not permitted to listen on {where}", code="port_forbidden")
    return AccessLedgerError(
        f"cannot listen on {where}: {exc.strerror or exc}", code="listen_failed"
    )


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
    check_address(host, port)
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
