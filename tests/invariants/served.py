"""``accessledger serve`` as a child process: the real console script on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
ACCESSLEDGER = ROOT / ".venv" / "bin" / "accessledger"
_START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli_env() -> dict[str, str]:
    """The environment for child commands: no home or gateway taken from the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSLEDGER_")}
    env["COLUMNS"] = "200"
    return env


class ServedHome:
    """``accessledger serve --home HOME`` running in a child process until stopped or killed."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [str(ACCESSLEDGER), "serve", "--home", str(home), "--port", str(self.port),
             "--access-log"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=cli_env(),
        )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}; see {log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("serve did not start")
            time.sleep(0.05)

    def height(self) -> int:
        return int(httpx.get(f"{self.url}/healthz", timeout=10).json()["height"])

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no goodbye."""
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL
        self._log.close()

    def stop(self) -> None:
        """SIGINT, as Ctrl-C: a clean shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
