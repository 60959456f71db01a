"""Simulating proposals in worker processes (``SimulationPool``): same answers, same failures.

A real network (the asset-transfer sample, real signatures, real SQLite) with
its endorser's simulations moved to spawned workers. What a worker computes
must be byte-for-byte what the parent computes in process; chaincode errors
stay endorsement errors; a chaincode that cannot be shipped is refused at
construction; and a worker killed with SIGKILL makes the next endorsement
fail with a clear error instead of hanging, and the pool starts fresh workers;
workers never outlive a gateway killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.consortium import Consortium
from crypto.identity import Identity
from network.engine.chaincode_host import ChaincodeHost
from network.engine.errors import EndorseError, EvaluateError
from network.engine.network import EmbeddedNetwork
from network.engine.simulation_pool import SimulationPool, SimulationPoolError
from tests.network.engine.samples.asset_transfer_shim import AssetTransferChaincode
from tests.network.engine.test_pipeline import (
    CC,
    create_args,
    make_home,
    open_network,
    read_asset,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path)


@pytest.fixture
def officer(home: Path) -> Identity:
    return Consortium.load(home).identity("officer.education.sz1")


@pytest.fixture
async def pooled(home: Path) -> AsyncIterator[tuple[EmbeddedNetwork, SimulationPool]]:
    network = open_network(home)
    pool = SimulationPool(network.store.path, network.endorser.chaincodes, workers=1)
    network.endorser.use_simulation_pool(pool)
    pool.warm_up()
    try:
        yield network, pool
    finally:
        await network.aclose()


async def test_a_worker_simulates_exactly_what_the_process_does(
    pooled: tuple[EmbeddedNetwork, SimulationPool], officer: Identity
) -> None:
    network, pool = pooled
    committed = await network.submit(officer, CC, "CreateAsset", create_args("a1"))
    assert committed.validation_code_name == "VALID"
    assert (await read_asset(network, officer, "a1"))["ID"] == "a1"  # a query, simulated by pool

    gateway = network.gateway(officer)
    proposal = gateway.new_proposal(CC, "TransferAsset", ["a1", "jerry"])
    in_worker = await pool.execute(proposal)
    with network.store.snapshot() as view:
        in_process = await network.endorser.chaincodes[CC].execute(proposal, view)
    assert in_worker.tx_id == in_process.tx_id == proposal.tx_id
    assert in_worker.namespace == in_process.namespace
    assert in_worker.response.SerializeToString() == in_process.response.SerializeToString()
    assert in_worker.rwset_bytes == in_process.rwset_bytes
    assert in_worker.event_bytes == in_process.event_bytes


async def test_chaincode_errors_stay_endorsement_and_query_errors(
    pooled: tuple[EmbeddedNetwork, SimulationPool], officer: Identity
) -> None:
    network, _ = pooled
    with pytest.raises(EndorseError) as endorse:
        await network.submit(officer, CC, "TransferAsset", ["nope", "bob"])
    assert endorse.value.status == 500
    assert "does not exist" in endorse.value.message
    with pytest.raises(EvaluateError) as evaluate:
        await network.evaluate(officer, CC, "ReadAsset", ["nope"])
    assert evaluate.value.status == 500
    assert network.height == 1  # nothing was ordered


class _Unshippable:
    """A chaincode holding something pickle refuses (a lambda)."""

    def __init__(self) -> None:
        self.callback = lambda: None

    async def init(self, stub: object) -> object:
        return AssetTransferChaincode().init(stub)

    async def invoke(self, stub: object) -> object:
        return AssetTransferChaincode().invoke(stub)


def test_a_chaincode_that_cannot_reach_a_worker_is_refused_at_once(tmp_path: Path) -> None:
    host = ChaincodeHost(_Unshippable(), name=CC)
    with pytest.raises(SimulationPoolError, match="cannot be sent to worker processes"):
        SimulationPool(tmp_path / "ledger.sqlite", {CC: host}, workers=1)
    with pytest.raises(SimulationPoolError, match="at least one worker"):
        SimulationPool(tmp_path / "ledger.sqlite", {}, workers=0)


async def test_a_killed_worker_fails_one_endorsement_and_the_pool_recovers(
    pooled: tuple[EmbeddedNetwork, SimulationPool], officer: Identity
) -> None:
    network, pool = pooled
    [pid] = pool.worker_pids()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EndorseError, match="simulation worker died") as caught:
        await network.submit(officer, CC, "CreateAsset", create_args("a2"))
    assert isinstance(caught.value.__cause__, SimulationPoolError)
    assert caught.value.tx_id
    assert network.height == 1
    # Fresh workers serve the next proposal.
    committed = await network.submit(officer, CC, "CreateAsset", create_args("a3"))
    assert committed.validation_code_name == "VALID"
    assert pool.worker_pids() != [pid]


_ORPHAN_SCRIPT = """
import sys, time
from network.engine.network import EmbeddedNetwork
from network.engine.simulation_pool import SimulationPool
from tests.network.engine.samples.asset_transfer_shim import AssetTransferChaincode
network = EmbeddedNetwork.open(sys.argv[1], chaincodes={"accessledger": AssetTransferChaincode})
pool = SimulationPool(network.store.path, network.endorser.chaincodes, workers=2)
pool.warm_up()
print(" ".join(str(pid) for pid in pool.worker_pids()), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_end_when_the_gateway_process_is_killed(home: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(home)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids)
    finally:
        parent.kill()
        parent.wait(timeout=30)
