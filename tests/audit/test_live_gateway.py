"""``audit replay --gateway`` against the real gateway, signing as an auditor.

The gateway serves a copy of the scenario home over HTTP (uvicorn on
127.0.0.1); the auditor streams ``/v1/audit/blocks`` with RFC 9421-signed
requests and verifies everything it receives, trusting none of it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
from typer.testing import CliRunner

from audit.sources import HomeSource
from cli.main import app
from gateway.settings import GatewaySettings
from tests.audit.conftest import replay
from tests.audit.scenario import Scenario
from tests.gateway.test_app_support import LiveGateway, ShiftedClock


def test_replay_through_the_live_gateway(built_scenario: Scenario, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(built_scenario.home, home)
    settings = GatewaySettings(home=home)
    with LiveGateway(settings, ShiftedClock()) as gateway:
        height = gateway.height()
        unsigned = httpx.get(f"{gateway.url}/v1/audit/blocks", params={"from": 0})
        assert unsigned.status_code == 401
        report = tmp_path / "report.json"
        result = CliRunner().invoke(
            app,
            ["audit", "replay", "--gateway", gateway.url, "--as", "auditor.audit.sz1",
             "--identity-home", str(home), "--workers", "0", "--report", str(report)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"{height} blocks" in result.output
        refused = CliRunner().invoke(
            app,
            ["audit", "replay", "--gateway", gateway.url, "--as", "officer.education.sz1",
             "--identity-home", str(home)],
        )  # fmt: skip
        assert refused.exit_code == 1
        assert "403" in refused.output
    # What the gateway streamed is exactly the ledger its home holds.
    streamed = json.loads(report.read_text())
    local = replay(HomeSource(home)).report
    assert local.ok
    assert (streamed["height"], streamed["tip_hash"]) == (local.height, local.tip_hash)
