"""The gateway with chaincode simulated in a worker process: a dead worker is a 503, then healed.

Real home, real worker process (``ACCESSLEDGER_SIMULATION_WORKERS=1``). A
worker killed with SIGKILL is the server's fault, not the caller's: the
query or proposal it was serving fails with ``503 simulation_unavailable``
(never a 400 or a 500), and the next one is served by a fresh worker.
"""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from crypto.consortium import Consortium
from gateway.errors import GatewayError
from gateway.service.core import GatewayService
from gateway.service.transactions import build_signed_proposal
from gateway.settings import GatewaySettings
from tests.gateway.test_app_support import ShiftedClock, copy_home

pytestmark = pytest.mark.asyncio(loop_scope="module")
AUDITOR = "auditor.audit.sz1"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def service(
    demo_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GatewayService]:
    home = copy_home(demo_home, tmp_path_factory.mktemp("worker"))
    settings = GatewaySettings(home=home, simulation_workers=1)
    started = await GatewayService.start(settings, clock=ShiftedClock())
    try:
        yield started
    finally:
        await started.aclose()


def _kill_worker(service: GatewayService) -> int:
    pool = service.network.endorser.simulations
    assert pool is not None
    [pid] = pool.worker_pids()
    os.kill(pid, signal.SIGKILL)
    return pid


async def test_a_query_on_a_dead_worker_is_503_and_the_next_is_served(
    service: GatewayService, consortium: Consortium
) -> None:
    auditor = consortium.identity(AUDITOR)

    async def open_reviews() -> dict[str, object]:
        return await service.ledger.query(auditor, "ListOpenReviews", {}, now=service.now())

    assert "events" in await open_reviews()
    _kill_worker(service)
    with pytest.raises(GatewayError) as refused:
        await open_reviews()
    assert (refused.value.code, refused.value.status) == ("simulation_unavailable", 503)
    assert "events" in await open_reviews()


async def test_a_proposal_on_a_dead_worker_is_503_not_a_rejection(
    service: GatewayService, consortium: Consortium
) -> None:
    auditor = consortium.identity(AUDITOR)
    raw = build_signed_proposal(
        auditor,
        channel=service.ledger.channel,
        chaincode=service.ledger.chaincode,
        function="ListOpenReviews",
        argument={},
        now=service.now(),
    )
    _kill_worker(service)
    with pytest.raises(GatewayError) as refused:
        await service.propose(auditor, base64.b64encode(raw).decode(), {"ListOpenReviews"})
    assert (refused.value.code, refused.value.status) == ("simulation_unavailable", 503)
    assert refused.value.extensions["tx_id"]
