"""Shared pytest fixtures.

``demo_home`` builds the demo consortium once per test session (key generation
is cheap: about 0.1 s for all CAs and identities); tests that modify a home
must make their own with :func:`crypto.consortium.create_demo_consortium`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crypto.consortium import Consortium, create_demo_consortium

#: When the shared demo home is issued: the real clock at session start, so code
#: that checks certificates against the real clock works too. Tests that need a
#: replayable instant use the ``demo_now`` fixture (certificates are valid from
#: it for two years; CAs for ten).
DEMO_NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def demo_now() -> datetime:
    """The instant the shared demo home's certificates were issued."""
    return DEMO_NOW


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo consortium home created once per session. Treat it as read-only."""
    home = tmp_path_factory.mktemp("demo") / "home"
    create_demo_consortium(home, now=DEMO_NOW)
    return home


@pytest.fixture(scope="session")
def consortium(demo_home: Path) -> Consortium:
    """The shared demo home, loaded (with private keys)."""
    return Consortium.load(demo_home)
