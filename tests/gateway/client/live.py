"""A real gateway on 127.0.0.1 for tests: the app under uvicorn, in a background thread.

Tests talk to it over real HTTP, exactly as the CLI and agency systems do.
The listening socket is bound before the server starts (port 0), so there is
no race for a free port.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings

_START_TIMEOUT = 60.0


@contextmanager
def running_gateway(home: Path, **settings: Any) -> Iterator[str]:
    """Serve the gateway of ``home`` on a free 127.0.0.1 port; yields its base URL."""
    app = create_app(GatewaySettings(home=home, **settings))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT)
        sock.close()
