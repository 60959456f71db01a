"""Gateway CPU, kernel time and context switches per granted access request, measured alone.

A fresh demo home (``accessledger init``) served by ``accessledger serve``,
the load workload's people seeded, then ``--clients`` threads of this process
each making ``--requests`` granted lookups (HRSS social-insurance transfer,
T2; both legs, keys released, ciphertexts inline) through the SDK. It prints
the gateway process's user and system CPU per access request (``/proc``) and
the context switches of all its threads: the numbers that show what threads
contending for Python's GIL cost. Environment variables reach the server
(``ACCESSLEDGER_WORKER_THREADS``, ``ACCESSLEDGER_SIMULATION_WORKERS``...).

Usage::

    .venv/bin/python load/access_cpu.py [--clients 40] [--requests 20] [--port 8124]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import bench  # load/ is a folder of scripts: run as python load/access_cpu.py
import locustfile

from gateway.client import Client


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def context_switches(pid: int) -> tuple[int, int]:
    """Voluntary and involuntary context switches, summed over a process's live threads."""
    voluntary = involuntary = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:
            continue  # the thread ended meanwhile
        for line in lines:
            name, _, value = line.partition(":")
            if name == "voluntary_ctxt_switches":
                voluntary += int(value)
            elif name == "nonvoluntary_ctxt_switches":
                involuntary += int(value)
    return voluntary, involuntary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=40, help="concurrent client threads")
    parser.add_argument("--requests", type=int, default=20, help="access requests per client")
    parser.add_argument("--port", type=int, default=8124)
    args = parser.parse_args(argv)
    with bench.seeded_gateway("accessledger-access-cpu-", args.port) as gateway:

        def lookups(client_index: int, count: int) -> None:
            officer = Client.from_home(gateway.home, "officer.hrss.cd1", gateway_url=gateway.url)
            try:
                for i in range(count):
                    person = locustfile.identity_number((client_index * 7 + i) % 40)
                    result = officer.request_access(
                        person, ["social_insurance"], "T2", "social_insurance_transfer"
                    )
                    if result.decision != "granted":
                        raise SystemExit(f"expected a grant, got {result.decision}")
            finally:
                officer.close()

        lookups(0, 5)  # warm up
        clients = [
            threading.Thread(target=lookups, args=(k, args.requests)) for k in range(args.clients)
        ]
        pid = gateway.server.pid
        (user, system), switches = cpu_seconds(pid), context_switches(pid)
        started = time.perf_counter()
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        wall = time.perf_counter() - started
        (user_after, system_after), switches_after = cpu_seconds(pid), context_switches(pid)
    n = args.clients * args.requests
    user_ms, system_ms = 1000 * (user_after - user) / n, 1000 * (system_after - system) / n
    print(
        f"{n} granted access requests, {n / wall:.1f}/s: gateway CPU per request"
        f" user {user_ms:.2f} ms, system {system_ms:.2f} ms;"
        f" context switches per request {(switches_after[0] - switches[0]) / n:.1f} voluntary,"
        f" {(switches_after[1] - switches[1]) / n:.1f} involuntary"
    )


if __name__ == "__main__":
    main()
