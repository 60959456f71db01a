"""``accessledger bench ledger``: committed transactions per second of the embedded engine.

The workload is the one Fabric's own performance reports use for raw ledger
throughput: a chaincode that does one ``put_state`` of a fresh key per
transaction, so there are no MVCC conflicts and the figure measures the
pipeline, not contention. Every transaction goes the whole way: a client
builds and signs the proposal, the endorser checks it, simulates the
chaincode and two peers sign (the demo channel's ``OutOf(2, ...)`` policy),
the client signs the envelope, the orderer checks it and cuts blocks of up to
``batch`` transactions, the committer checks the block signature, validates
every transaction (creator and endorsement signatures, policy, duplicates,
MVCC) and commits block, state, history and tx index in one SQLite
transaction with ``synchronous=FULL``.

Enough clients run concurrently to fill the batches (two batches' worth by
default). Latency is per ``submit`` call, from building the proposal to the
commit status. A second, shorter run is profiled (cProfile, on the event loop
and on the committer thread) to show where the time goes; its figures are
not the measured ones, since profiling slows everything down. The profile
counts each thread's CPU time, not wall time: the two threads share the GIL,
and a wall-clock profile would charge the wait to take it back to whatever
call released it (a 5 us SQLite step or a signature shows up as 100 us).
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from fabric_chaincode_python.fabric_shim.response import error, success

from crypto.bench import machine_info
from crypto.consortium import Consortium, create_demo_consortium
from crypto.errors import AccessLedgerError
from crypto.identity import Identity, IdentityKind
from network.engine.network import EmbeddedNetwork

CHAINCODE = "benchput"
#: Share of the measured transactions run first, unmeasured, to warm caches.
WARM_UP = 200
#: Items listed from the profile.
PROFILE_TOP = 15
#: Built-ins that only wait (the committer thread's idle queue, the event loop's poll).
_IDLE = (
    "of '_queue.SimpleQueue' objects",
    "of 'select.epoll' objects",
    "of '_thread.lock' objects",
)
_BUILTIN_METHOD = re.compile(r"<method '(\w+)' of '([\w.]+)' objects>")
_BUILTIN_FUNCTION = re.compile(r"<built-in method ([\w.]+)>")
#: Pipeline phases reported from the profile: label -> function name (file suffix, name).
PHASES: tuple[tuple[str, str, str], ...] = (
    ("client: build and sign proposals", "gateway.py", "new_proposal"),
    ("endorse: check, simulate, sign", "endorser.py", "endorse"),
    ("client: assemble and sign envelopes", "gateway.py", "sign_transaction"),
    ("order: broadcast checks and block cutting", "orderer.py", "broadcast"),
    ("commit thread: validate block", "committer.py", "validate"),
    ("commit thread: SQLite commit", "statedb.py", "commit_block"),
)


class PutChaincode:
    """``put(key, value)``: one write, no read -- the benchmark's chaincode."""

    @staticmethod
    async def init(stub: Any) -> Any:
        return success(b"")

    @staticmethod
    async def invoke(stub: Any) -> Any:
        function, params = stub.get_function_and_parameters()
        if function != "put" or len(params) != 2:
            return error("expected put(key, value)")
        await stub.put_state(params[0], params[1].encode())
        return success(b"")


@dataclass(frozen=True)
class ProfileItem:
    """One function from the profile: its own time and its share of all profiled time."""

    function: str
    calls: int
    self_s: float
    cumulative_s: float
    share: float


@dataclass(frozen=True)
class LedgerBenchResult:
    """The measured figures, the profile and the machine they come from."""

    txs: int
    batch: int
    concurrency: int
    endorsements: int
    seconds: float
    tx_per_s: float
    p50_ms: float
    p99_ms: float
    blocks: int
    mean_block_txs: float
    phases: dict[str, float] = field(default_factory=dict)
    profile_top: list[ProfileItem] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """One flat-ish JSON object (``tx_per_s``, ``p50_ms``, ``p99_ms``, ``profile_top``...)."""
        return asdict(self)


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def _make_home(root: Path, batch: int) -> Path:
    home = root / "home"
    create_demo_consortium(home, now=datetime.now(UTC))
    path = home / "network.yaml"
    topology = yaml.safe_load(path.read_text(encoding="utf-8"))
    topology["orderer"]["batch"]["max_message_count"] = batch
    path.write_text(yaml.safe_dump(topology, sort_keys=False), encoding="utf-8")
    return home


def _clients(consortium: Consortium) -> list[Identity]:
    officers = consortium.identities(kind=IdentityKind.OFFICER)
    if not officers:
        raise AccessLedgerError("the demo home has no officers", code="bench_failed")
    return officers


async def _drive(
    network: EmbeddedNetwork, clients: Sequence[Identity], count: int, concurrency: int, tag: str
) -> tuple[float, list[float]]:
    gateways = [network.gateway(identity) for identity in clients]
    latencies: list[float] = []
    next_index = 0

    async def worker(worker_id: int) -> None:
        nonlocal next_index
        gateway = gateways[worker_id % len(gateways)]
        while next_index < count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await gateway.submit(CHAINCODE, "put", [f"{tag}-{index:08d}", f"value {index}"])
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return time.perf_counter() - started, latencies


def _function_name(filename: str, line: int, name: str) -> str:
    """``file.py:line(function)`` for Python code, ``Class.method`` for built-ins."""
    if line:
        return f"{Path(filename).name}:{line}({name})"
    method = _BUILTIN_METHOD.fullmatch(name)
    if method:
        return f"{method.group(2).rsplit('.', 1)[-1]}.{method.group(1)} (built-in)"
    function = _BUILTIN_FUNCTION.fullmatch(name)
    return f"{function.group(1)} (built-in)" if function else name


def _is_idle(name: str) -> bool:
    return any(marker in name for marker in _IDLE)


def _busy_total(stats: pstats.Stats) -> float:
    """Profiled time minus time spent waiting (idle worker thread, event loop poll)."""
    entries: Any = stats.stats  # type: ignore[attr-defined]
    idle = sum(float(v[2]) for (_, _, name), v in entries.items() if _is_idle(name))
    return float(stats.total_tt) - idle  # type: ignore[attr-defined]


def _profile_items(stats: pstats.Stats, total: float) -> list[ProfileItem]:
    entries: Any = stats.stats  # type: ignore[attr-defined]
    busy = [item for item in entries.items() if not _is_idle(item[0][2])]
    rows = sorted(busy, key=lambda item: item[1][2], reverse=True)[:PROFILE_TOP]
    items = []
    for (filename, line, name), (_, calls, self_s, cumulative_s, _) in rows:
        items.append(
            ProfileItem(
                function=_function_name(filename, line, name),
                calls=int(calls),
                self_s=round(float(self_s), 4),
                cumulative_s=round(float(cumulative_s), 4),
                share=round(float(self_s) / total, 4) if total else 0.0,
            )
        )
    return items


def _phases(stats: pstats.Stats, total: float) -> dict[str, float]:
    entries: Any = stats.stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for label, suffix, name in PHASES:
        cumulative = sum(
            float(value[3])
            for (filename, _, func), value in entries.items()
            if func == name and filename.endswith(suffix)
        )
        out[label] = round(cumulative / total, 4) if total else 0.0
    return out


async def _profiled_run(
    network: EmbeddedNetwork, clients: Sequence[Identity], count: int, concurrency: int
) -> tuple[pstats.Stats, float]:
    loop_profile = cProfile.Profile(time.thread_time)
    thread_profile = cProfile.Profile(time.thread_time)
    # The committer has one dedicated worker thread; enabling a profiler in it
    # profiles every block committed afterwards.
    await network.run_in_committer(thread_profile.enable)
    loop_profile.enable()
    try:
        seconds, _ = await _drive(network, clients, count, concurrency, "profiled")
    finally:
        loop_profile.disable()
        await network.run_in_committer(thread_profile.disable)
    stats = pstats.Stats(loop_profile)
    stats.add(thread_profile)
    return stats, seconds


async def _run(
    home: Path, txs: int, batch: int, concurrency: int, profile_txs: int
) -> LedgerBenchResult:
    network = EmbeddedNetwork.open(home, chaincodes={CHAINCODE: PutChaincode})
    try:
        clients = _clients(network.consortium)
        await _drive(network, clients, min(WARM_UP, txs), concurrency, "warmup")
        first_block = network.height
        seconds, latencies = await _drive(network, clients, txs, concurrency, "measured")
        blocks = network.height - first_block
        stats_total: tuple[pstats.Stats, float] | None = None
        if profile_txs:
            stats_total = await _profiled_run(network, clients, profile_txs, concurrency)
    finally:
        await network.aclose()
    latencies.sort()
    phases: dict[str, float] = {}
    top: list[ProfileItem] = []
    if stats_total is not None:
        stats, _ = stats_total
        total = _busy_total(stats)
        phases = _phases(stats, total)
        top = _profile_items(stats, total)
    return LedgerBenchResult(
        txs=txs,
        batch=batch,
        concurrency=concurrency,
        endorsements=2,
        seconds=round(seconds, 3),
        tx_per_s=round(txs / seconds, 1) if seconds else 0.0,
        p50_ms=round(_percentile(latencies, 0.50) * 1000, 2),
        p99_ms=round(_percentile(latencies, 0.99) * 1000, 2),
        blocks=blocks,
        mean_block_txs=round(txs / blocks, 1) if blocks else 0.0,
        phases=phases,
        profile_top=top,
        machine=machine_info(datetime.now(UTC)),
    )


def run_ledger_bench(
    *,
    txs: int = 5000,
    batch: int = 100,
    concurrency: int | None = None,
    profile_txs: int | None = None,
    workdir: Path | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> LedgerBenchResult:
    """Run the benchmark in a throwaway demo home; see the module docstring.

    ``concurrency`` defaults to two batches of clients; ``profile_txs``
    (default ``min(txs, 2000)``, 0 to skip) sizes the profiled run.
    """
    if txs < 1 or batch < 1:
        raise AccessLedgerError("txs and batch must be positive", code="bench_invalid")
    concurrency = concurrency or 2 * batch
    profile_txs = min(txs, 2000) if profile_txs is None else profile_txs
    root = Path(tempfile.mkdtemp(prefix="accessledger-bench-", dir=workdir))
    try:
        if on_phase:
            on_phase("creating a demo consortium")
        home = _make_home(root, batch)
        if on_phase:
            on_phase(f"submitting {txs} transactions")
        return asyncio.run(_run(home, txs, batch, concurrency, profile_txs))
    finally:
        shutil.rmtree(root, ignore_errors=True)
