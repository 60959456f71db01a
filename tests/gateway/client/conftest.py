"""Fixtures of the SDK tests: a fresh home and its gateway serving real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crypto.consortium import Consortium, create_demo_consortium
from tests.gateway.client.live import running_gateway


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo home of this test module only (its ledger is written by the tests)."""
    path = tmp_path_factory.mktemp("sdk") / "home"
    create_demo_consortium(path, now=datetime.now(UTC))
    return path


@pytest.fixture(scope="module")
def gateway_url(home: Path) -> Iterator[str]:
    """The base URL of the module's gateway, serving ``home`` over real HTTP."""
    with running_gateway(home) as url:
        yield url


@pytest.fixture(scope="module")
def home_consortium(home: Path) -> Consortium:
    return Consortium.load(home)
