"""Gateway CPU per citizen view (``GET /v1/me/accesses?limit=20``), measured alone.

The mixed Locust workload (load/bench.py) shows how the gateway shares its
time; this measures one read path without the others in the way: a fresh
demo home (``accessledger init``) served by ``accessledger serve``, the load
workload's people seeded, ``--events`` granted lookups about the person
``citizen.c1`` is bound to, then ``--views`` sequential views of that
citizen's first page through the SDK. It prints the gateway process's CPU
per view (from ``/proc``), which is what a change to the read path moves;
the wall time per view includes this client's own signing and decoding.

Usage::

    .venv/bin/python load/citizen_view.py [--events 30] [--views 2000] [--port 8123]
"""

from __future__ import annotations

import argparse
import time

import bench  # load/ is a folder of scripts: run as python load/citizen_view.py
import locustfile

from gateway.client import Client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=30, help="access events to create first")
    parser.add_argument("--views", type=int, default=2000, help="citizen views to measure")
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args(argv)
    with bench.seeded_gateway("accessledger-citizen-view-", args.port) as gateway:
        officer = Client.from_home(gateway.home, "officer.education.sz1", gateway_url=gateway.url)
        citizen = Client.from_home(gateway.home, "citizen.c1", gateway_url=gateway.url)
        try:
            for _ in range(args.events):
                officer.request_access(
                    locustfile.identity_number(0), ["residence_permit"], "T1", "school_enrolment"
                )
            page = citizen.my_accesses(limit=20)
            for _ in range(20):  # warm up
                citizen.my_accesses(limit=20)
            cpu, started = bench.process_cpu(gateway.server.pid), time.perf_counter()
            for _ in range(args.views):
                citizen.my_accesses(limit=20)
            cpu = bench.process_cpu(gateway.server.pid) - cpu
            wall = time.perf_counter() - started
        finally:
            officer.close()
            citizen.close()
    print(
        f"{args.views} citizen views of {len(page.accesses)} events:"
        f" gateway CPU {1000 * cpu / args.views:.2f} ms per view,"
        f" wall {1000 * wall / args.views:.2f} ms per view (one client, sequential)"
    )


if __name__ == "__main__":
    main()
