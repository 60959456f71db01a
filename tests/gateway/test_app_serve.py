"""``accessledger serve`` as a real process: starts, answers on 127.0.0.1, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from crypto.consortium import Consortium
from tests.gateway.test_app_support import ShiftedClock, SignedClient, copy_home

MAIN = "from cli.main import main; main()"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", MAIN, *args],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_answers_signed_requests_and_stops(demo_home: Path, tmp_path: Path) -> None:
    home = copy_home(demo_home, tmp_path)
    port = _free_port()
    process = _run("serve", "--home", str(home), "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited: {process.communicate()[1]}")
            try:
                health = httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("serve did not start listening")
                time.sleep(0.1)
        assert health.status_code == 200
        assert health.json()["height"] >= 3  # genesis, InitLedger, InstallPolicy, keys
        client = SignedClient(
            url, Consortium.load(home).identity("auditor.audit.sz1"), ShiftedClock()
        )
        info = client.ledger()
        assert info["channel"] == "accessledger"
        assert info["policy"]["version"] == 1
        unsigned = httpx.get(f"{url}/v1/ledger")
        assert unsigned.status_code == 401
        assert unsigned.headers["content-type"] == "application/problem+json"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ACCESSLEDGER_MAX_REQUEST_BYTES", "lots"), ("ACCESSLEDGER_WORKER_THREADS", "0")],
)
def test_serve_bad_settings_is_one_line(
    demo_home: Path, tmp_path: Path, variable: str, value: str
) -> None:
    home = copy_home(demo_home, tmp_path)
    process = _run("serve", "--home", str(home), env={variable: value})
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().startswith("error [settings_invalid]")
    assert variable.removeprefix("ACCESSLEDGER_").lower() in err
    assert len(err.strip().splitlines()) == 1
