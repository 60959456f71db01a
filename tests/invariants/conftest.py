"""Fixtures of the invariant tests: one observed demo run per session (read-only)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.test_app_support import Env, live_env
from tests.invariants.seeding import DemoRun, seed_observed


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """A fresh home seeded by the demo, with what was sent and logged. Treat as read-only."""
    return seed_observed(tmp_path_factory.mktemp("invariants-demo"))


@pytest.fixture
def demo_copy(demo_run: DemoRun, tmp_path: Path) -> Path:
    """A private, writable copy of the seeded demo home."""
    home = tmp_path / "home"
    shutil.copytree(demo_run.home, home)
    return home


@pytest.fixture(scope="module")
def served_demo(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A copy of the seeded demo home served on 127.0.0.1 for one test module."""
    with live_env(
        demo_run.home, tmp_path_factory.mktemp("served-demo"), rate_limit_per_minute=0
    ) as env:
        yield env
