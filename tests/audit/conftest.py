"""Fixtures: the Fabric fixture ledger, an AccessLedger engine scenario, and replay helpers."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from audit.replay import ReplayConfig, ReplayOutcome, replay_ledger
from audit.sources import BlockSource, ExportSource, HomeSource
from tests.audit.scenario import Scenario, build_scenario
from tests.fabric_fixtures import FABRIC_FIXTURES

FIXTURE_LEDGER = FABRIC_FIXTURES / "ledger.bin"


def replay(source: BlockSource | Path, **options: Any) -> ReplayOutcome:
    """Replay an export file (or any source) in-process; ``options`` go to ReplayConfig."""
    if isinstance(source, Path):
        source = ExportSource(source)
    config = ReplayConfig(**options)
    if isinstance(source, HomeSource):
        with source:
            return replay_ledger(source, config, now=datetime.now().astimezone())
    return replay_ledger(source, config, now=datetime.now().astimezone())


@pytest.fixture
def fixture_copy(tmp_path: Path) -> Path:
    """A writable copy of the Fabric 2.5 fixture ledger."""
    target = tmp_path / "ledger.bin"
    shutil.copyfile(FIXTURE_LEDGER, target)
    return target


@pytest.fixture(scope="session")
def built_scenario(tmp_path_factory: pytest.TempPathFactory, demo_now: datetime) -> Scenario:
    """The AccessLedger scenario, written once per session. Treat as read-only."""
    root = tmp_path_factory.mktemp("scenario")
    return asyncio.run(build_scenario(root, now=demo_now))


@pytest.fixture
def scenario(built_scenario: Scenario, tmp_path: Path) -> Scenario:
    """A private copy of the scenario (home, stores, export, key-release log) to tamper with."""
    root = tmp_path / "copy"
    shutil.copytree(built_scenario.home.parent, root)
    return Scenario(
        home=root / "home",
        export=root / "ledger.bin",
        stores=root / "home" / "stores",
        key_releases=root / "home" / "custodians" / "PublicSecurity" / "releases.jsonl",
        subject=built_scenario.subject,
        other_subject=built_scenario.other_subject,
        tx=dict(built_scenario.tx),
        blocks=dict(built_scenario.blocks),
    )
