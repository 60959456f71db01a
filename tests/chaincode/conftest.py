"""Fixtures: a fresh ledger per test, initialised and with the default policy installed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from chaincode import LedgerConfig
from crypto.consortium import Consortium
from policies.bundle import PolicyBundle
from tests.chaincode.harness import DEPARTMENT_ADMINS, LedgerHarness, approvals, ledger_config


@pytest.fixture(scope="session")
def config(consortium: Consortium) -> LedgerConfig:
    return ledger_config(consortium)


@pytest.fixture(scope="session")
def bundle() -> PolicyBundle:
    return PolicyBundle.load_default(version=1)


@pytest.fixture
async def bare(
    tmp_path: Path, consortium: Consortium, demo_now: datetime
) -> AsyncIterator[LedgerHarness]:
    """A ledger on which nothing has run yet."""
    harness = LedgerHarness(tmp_path / "ledger.sqlite", consortium, demo_now + timedelta(hours=1))
    yield harness
    harness.close()


@pytest.fixture
async def ledger(bare: LedgerHarness, config: LedgerConfig, bundle: PolicyBundle) -> LedgerHarness:
    """Initialised, with policy version 1 approved by five of the eight department admins."""
    admin = bare.identity("admin.publicsecurity")
    init = await bare.submit(admin, "InitLedger", config.to_json())
    assert init.ok, init.message
    signers = [bare.identity(name) for name in DEPARTMENT_ADMINS[:5]]
    installed = await bare.submit(
        admin,
        "InstallPolicy",
        {"bundle": bundle.to_dict(), "approvals": approvals(bundle, signers)},
    )
    assert installed.ok, installed.message
    return bare
