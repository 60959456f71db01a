"""Process-level gateway settings: FastAPI's telemetry, the worker threads.

FastAPI's native OpenTelemetry is off unless ``ACCESSLEDGER_OPENTELEMETRY`` turns it on.

FastAPI's telemetry exports request spans and exception logs (messages and
stack traces) to whatever OpenTelemetry providers the process has. The
gateway keeps that opt-in: by default FastAPI must not even look for them,
which it otherwise does on every request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import metrics, trace

from crypto.errors import AccessLedgerError
from gateway.app import create_app
from gateway.service.core import GatewayService
from gateway.settings import GatewaySettings, load_settings
from tests.gateway.test_app_support import copy_home


async def _provider_lookups(settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch) -> int:
    """How often serving three requests asked OpenTelemetry for its tracer or meter provider."""
    asked = 0
    real_tracer, real_meter = trace.get_tracer_provider, metrics.get_meter_provider

    def tracer_provider() -> Any:
        nonlocal asked
        asked += 1
        return real_tracer()

    def meter_provider() -> Any:
        nonlocal asked
        asked += 1
        return real_meter()

    service = await GatewayService.start(settings)
    app = create_app(settings, service=service)
    try:
        async with app.router.lifespan_context(app):
            monkeypatch.setattr(trace, "get_tracer_provider", tracer_provider)
            monkeypatch.setattr(metrics, "get_meter_provider", meter_provider)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                for _ in range(3):
                    assert (await http.get("/healthz")).status_code == 200
    finally:
        monkeypatch.undo()
        await service.aclose()
    return asked


async def test_telemetry_is_off_by_default_and_on_when_asked(
    demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = copy_home(demo_home, tmp_path / "home")
    default = GatewaySettings(home=home)
    assert default.opentelemetry is False
    assert await _provider_lookups(default, monkeypatch) == 0
    assert await _provider_lookups(GatewaySettings(home=home, opentelemetry=True), monkeypatch) >= 3


def test_the_setting_reads_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESSLEDGER_OPENTELEMETRY", "true")
    assert load_settings().opentelemetry is True


def test_worker_threads_are_few_by_default_and_configurable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert GatewaySettings(home=Path("unused")).worker_threads == 2
    monkeypatch.setenv("ACCESSLEDGER_WORKER_THREADS", "1")
    assert load_settings().worker_threads == 1


def test_revoked_fingerprints_are_compared_lowercase_and_malformed_ones_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An operator pasting an uppercase fingerprint must not revoke nothing, silently.
    upper = "AB" * 32
    monkeypatch.setenv("ACCESSLEDGER_REVOKED_FINGERPRINTS", f'["{upper}"]')
    assert load_settings().revoked_fingerprints == [upper.lower()]
    for bad in ("ab" * 31, "zz" * 32, "ab" * 32 + "0"):
        monkeypatch.setenv("ACCESSLEDGER_REVOKED_FINGERPRINTS", f'["{bad}"]')
        with pytest.raises(AccessLedgerError, match="revoked_fingerprints"):
            load_settings()
