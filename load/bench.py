"""One reproducible load measurement: fresh home, gateway, seed, Locust, numbers (load/README.md).

Creates a demo home in a temporary directory (``accessledger init``;
optionally with another orderer batch timeout, which only a new ledger's
genesis config picks up), serves it with ``accessledger serve`` (rate limit
off: the workload signs as a handful of identities), seeds the people to look
up, runs ``locust --headless`` for a fixed time, and prints what the issue
asks for: access requests/s, p50 and p99 at the given number of users, and
how much CPU the gateway and the load generator each used -- they share the
machine's cores. ``--profile DIR`` serves through ``load/profile_server.py``
instead and leaves its profile in ``DIR``.

Usage::

    .venv/bin/python load/bench.py --users 50 --seconds 60 [--batch-timeout-ms 200] [--spy FILE]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import spy_report  # load/ is a folder of scripts: run as python load/bench.py
import yaml

from cli.serve import check_address
from crypto.errors import AccessLedgerError

LOAD = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (and its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / _TICKS


def child_processes(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the gateway's simulation workers), from ``/proc``."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def children_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each live child process of ``pid``."""
    usage = {}
    for child in child_processes(pid):
        try:
            usage[child] = process_cpu(child)
        except OSError:
            continue
    return usage


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a live process's main thread (the event loop) and of all its other threads."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        seconds = (int(fields[11]) + int(fields[12])) / _TICKS
        if int(task.name) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def make_home(root: Path, batch_timeout_ms: int | None) -> Path:
    home = root / "home"
    subprocess.run(
        [str(BIN / "accessledger"), "init", "--home", str(home)], check=True, capture_output=True
    )
    if batch_timeout_ms is not None:
        topology_path = home / "network.yaml"
        topology = yaml.safe_load(topology_path.read_text())
        topology["orderer"]["batch"]["batch_timeout_ms"] = batch_timeout_ms
        topology_path.write_text(yaml.safe_dump(topology, sort_keys=False, allow_unicode=True))
    return home


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the gateway exited during start-up")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the gateway did not become healthy")


@dataclass(frozen=True)
class Gateway:
    """A served demo home: where it is, its URL and the server process."""

    home: Path
    url: str
    server: subprocess.Popen[bytes]


def require_free_port(port: int) -> None:
    """Exit with one line if something already listens on ``port`` (the demo, say).

    Otherwise the health check would find that other gateway, and the run
    would seed and measure a home it did not create.
    """
    try:
        check_address("127.0.0.1", port)
    except AccessLedgerError as exc:
        raise SystemExit(f"error [{exc.code}]: {exc.message}; choose another --port") from None


@contextmanager
def seeded_gateway(prefix: str, port: int) -> Iterator[Gateway]:
    """A fresh demo home served on ``port`` with the workload's people seeded; removed after.

    The rate limit is off; other ``ACCESSLEDGER_*`` variables of this
    process reach the server (simulation or worker threads, say).
    """
    require_free_port(port)
    with tempfile.TemporaryDirectory(prefix=prefix) as temp:
        home = make_home(Path(temp), None)
        env = dict(os.environ, ACCESSLEDGER_RATE_LIMIT_PER_MINUTE="0", ACCESSLEDGER_HOME=str(home))
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [str(BIN / "accessledger"), "serve", "--home", str(home), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(url, server)
            seed = [sys.executable, str(LOAD / "locustfile.py"), "--seed", url]
            subprocess.run(seed, env=env, check=True, stdout=subprocess.DEVNULL)
            yield Gateway(home, url, server)
        finally:
            server.terminate()
            server.wait()


def read_stats(prefix: Path) -> list[dict[str, Any]]:
    with Path(f"{prefix}_stats.csv").open(newline="") as stream:
        return list(csv.DictReader(stream))


def committed_access_requests(rows: list[dict[str, Any]]) -> int:
    """Access requests whose both legs succeeded (the granted and denied ``FLOW`` rows)."""
    return sum(
        int(row["Request Count"]) - int(row["Failure Count"])
        for row in rows
        if row["Type"] == "FLOW" and row["Name"] in ("access granted", "access denied")
    )


def summary(rows: list[dict[str, Any]], seconds: float) -> str:
    by_name = {(row["Type"], row["Name"]): row for row in rows}
    lines = [f"{'request':58} {'count':>7} {'fail':>5} {'req/s':>7} {'p50':>6} {'p99':>6}"]
    for row in rows:
        if row["Name"] == "Aggregated":
            continue
        lines.append(
            f"{row['Type'] + ' ' + row['Name']:58} {row['Request Count']:>7}"
            f" {row['Failure Count']:>5} {float(row['Requests/s']):7.1f}"
            f" {row['50%']:>6} {row['99%']:>6}"
        )
    flows = [by_name.get(("FLOW", name)) for name in ("access granted", "access denied")]
    done = sum(int(row["Request Count"]) for row in flows if row)
    http_access = [
        row
        for (kind, name), row in by_name.items()
        if kind == "POST" and (name == "/v1/access-requests" or name.endswith("[access]"))
    ]
    calls = sum(int(row["Request Count"]) for row in http_access)
    lines.append(
        f"\naccess requests (RequestAccess, both legs, committed): {done / seconds:.1f}/s;"
        f" HTTP calls on the access path: {calls / seconds:.1f}/s"
    )
    return "\n".join(lines)


def start_spy(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes]:
    """Sample the gateway's GIL holder with py-spy over the steady part of the run.

    It starts after Locust's ramp-up and stops before the end; ``--nonblocking``
    never pauses the gateway, so the run's numbers stay comparable to one
    without it (some samples are lost instead; py-spy reports how many).
    """
    duration = max(5, seconds - 15)
    command = [str(BIN / "py-spy"), "record", "--pid", str(pid), "--gil", "--nonblocking"]
    command += ["--rate", "250", "--duration", str(duration), "--format", "raw"]
    command += ["--output", str(out)]
    return subprocess.Popen(["sh", "-c", 'sleep 10 && exec "$@"', "spy", *command])


def spy_summary(samples: Path) -> str:
    if not samples.exists():
        return f"py-spy wrote no {samples} (is ptrace allowed here?)"
    with samples.open(encoding="utf-8", errors="replace") as stream:
        return spy_report.parse(stream, str(LOAD.parent)).render(top=20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--port", type=int, default=8130, help="not 8000: the demo's port")
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--batch-timeout-ms", type=int, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="profile the gateway into DIR")
    parser.add_argument(
        "--spy",
        type=Path,
        default=None,
        help="record the gateway's GIL-holding thread with py-spy into FILE and summarise it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args(argv)
    url = f"http://127.0.0.1:{args.port}"
    require_free_port(args.port)
    root = Path(tempfile.mkdtemp(prefix="accessledger-load-"))
    env = {
        **os.environ,
        "ACCESSLEDGER_RATE_LIMIT_PER_MINUTE": "0",
        "ACCESSLEDGER_LOAD_PEOPLE": str(args.people),
    }
    try:
        home = make_home(root, args.batch_timeout_ms)
        env["ACCESSLEDGER_HOME"] = str(home)
        if args.profile is None:
            command = [str(BIN / "accessledger"), "serve", "--home", str(home)]
        else:
            command = [sys.executable, str(LOAD / "profile_server.py"), "--home", str(home)]
            command += ["--out", str(args.profile)]
        command += ["--port", str(args.port)]
        log = (root / "gateway.log").open("wb")
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(url, server)
            subprocess.run(
                [sys.executable, str(LOAD / "locustfile.py"), "--seed", url], env=env, check=True
            )
            before, started = process_cpu(server.pid), time.monotonic()
            threads_before = thread_cpu(server.pid)
            workers_before = children_cpu(server.pid)
            load_before = uptime()
            prefix = root / "locust"
            run = [str(BIN / "locust"), "-f", str(LOAD / "locustfile.py"), "--headless"]
            run += ["-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.seconds}s"]
            run += ["--host", url, "--only-summary", "--csv", str(prefix)]
            locust = subprocess.Popen(
                run,
                env={**env, "ACCESSLEDGER_LOAD_SEED": "0"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            spy = start_spy(server.pid, args.spy, args.seconds) if args.spy else None
            _, _, usage = os.wait4(locust.pid, 0)
            wall = time.monotonic() - started
            server_cpu = process_cpu(server.pid) - before
            threads_after = thread_cpu(server.pid)
            workers_after = children_cpu(server.pid)
            load_after = uptime()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=120)
            log.close()
        load_cpu = usage.ru_utime + usage.ru_stime
        workers_cpu = sum(
            seconds - workers_before.get(child, 0.0) for child, seconds in workers_after.items()
        )
        if spy is not None and args.spy is not None:
            spy.wait(timeout=60)
            print(spy_summary(args.spy) + "\n")
        print(summary(read_stats(prefix), args.seconds))
        print(
            f"\nCPU over {wall:.1f} s: gateway {server_cpu:.1f} s ({100 * server_cpu / wall:.0f}%"
            f" of one core), locust {load_cpu:.1f} s ({100 * load_cpu / wall:.0f}%)"
            f", simulation workers {workers_cpu:.1f} s on {os.cpu_count()} cores"
        )
        event_loop = threads_after[0] - threads_before[0]
        print(
            f"gateway threads: event loop {event_loop:.1f} s, other threads (committer, key"
            f" releases, executors; threads that ended are not counted)"
            f" {threads_after[1] - threads_before[1]:.1f} s"
        )
        committed = committed_access_requests(read_stats(prefix))
        if committed:
            print(
                f"gateway CPU per committed access request: {1000 * server_cpu / committed:.2f} ms"
                f" ({committed} access requests); all processes (gateway, its workers, locust):"
                f" {1000 * (server_cpu + workers_cpu + load_cpu) / committed:.2f} ms"
            )
        print(f"uptime before: {load_before}\nuptime after:  {load_after}")
        if args.batch_timeout_ms is not None:
            print(f"orderer batch timeout: {args.batch_timeout_ms} ms")
    finally:
        if args.keep:
            print(f"home kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
