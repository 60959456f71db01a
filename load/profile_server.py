"""Serve the gateway like ``accessledger serve``, profiled: where does its time go under load?

Run it instead of ``accessledger serve``, drive it with Locust, stop it with
Ctrl-C (or SIGTERM); it then writes to ``--out``:

* ``eventloop.txt`` / ``eventloop.html`` -- pyinstrument's call tree of the
  event-loop thread (HTTP, authentication, endorsement, handlers), sampled
  every millisecond;
* ``threads.txt`` -- CPU seconds of every thread of the process, from
  ``/proc/self/task`` (the committer, signature-verification workers and
  ``asyncio.to_thread`` workers run outside the event loop, and the
  pyinstrument tree does not see them);
* ``top.txt`` -- the event-loop thread's time by package and by function;
* ``workers.txt`` -- where the other threads (key releases in
  ``asyncio.to_thread`` workers, the committer) spend their busy time: a
  sampler reads every thread's Python stack every few milliseconds and
  counts, per thread group, each function's inclusive and own share of the
  samples that were not waiting for work. It samples wall time: a thread
  blocked in C (an fsync, a SQLite call) counts for the Python function that
  made the call;
* ``eventloop.pyisession`` -- the raw session (``pyinstrument --load``).

Usage::

    ACCESSLEDGER_RATE_LIMIT_PER_MINUTE=0 .venv/bin/python load/profile_server.py \\
        --home DIR --port 8000 --out /tmp/profile
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import threading
from pathlib import Path
from types import FrameType

import uvicorn
import uvloop
from pyinstrument import Profiler
from pyinstrument.frame import Frame
from pyinstrument.session import Session

from gateway.app import create_app
from gateway.service.core import GatewayService
from gateway.settings import load_settings

_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> list[tuple[str, float]]:
    """(thread name, CPU seconds) of every live thread of this process, busiest first."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    found = []
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / _TICKS
        found.append((names.get(int(task.name), f"native-{task.name}"), seconds))
    return sorted(found, key=lambda item: -item[1])


#: Libraries that are the web stack (attributed to "framework" wherever they run).
_FRAMEWORK = ("fastapi", "starlette", "uvicorn", "anyio", "h11", "asyncio", "pydantic")
_IDLE = frozenset({"epoll.poll", "select.poll", "select"})


#: Leaf functions of a thread that is waiting for work (not busy).
_WAITING = frozenset(
    {
        ("threading.py", "wait"),
        ("threading.py", "_wait_for_tstate_lock"),
        ("queue.py", "get"),
        ("thread.py", "_worker"),
        ("selectors.py", "select"),
    }
)


class ThreadSampler:
    """Samples the Python stacks of every thread but the event loop's (see ``workers.txt``)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.samples: dict[str, int] = {}
        self.inclusive: dict[tuple[str, str], int] = {}
        self.own: dict[tuple[str, str], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="profile-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me, main = threading.get_ident(), threading.main_thread().ident
        while not self._stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, top in sys._current_frames().items():
                if ident in (me, main):
                    continue
                stack = []
                frame: FrameType | None = top
                while frame is not None:
                    code = frame.f_code
                    stack.append((code.co_filename, code.co_name, code.co_firstlineno))
                    frame = frame.f_back
                if (Path(stack[0][0]).name, stack[0][1]) in _WAITING:
                    continue
                group = re.sub(r"[_\-]?\d+$", "", names.get(ident, "unnamed"))
                self.samples[group] = self.samples.get(group, 0) + 1
                leaf = f"{stack[0][1]} ({_short(stack[0][0])}:{stack[0][2]})"
                self.own[(group, leaf)] = self.own.get((group, leaf), 0) + 1
                for name in {f"{f} ({_short(path)}:{line})" for path, f, line in stack}:
                    self.inclusive[(group, name)] = self.inclusive.get((group, name), 0) + 1

    def report(self, limit: int = 30) -> str:
        lines = [f"busy samples every {1000 * self.interval:.0f} ms, by thread group\n"]
        for group, count in sorted(self.samples.items(), key=lambda item: -item[1]):
            lines.append(f"== {group}: {count} busy samples ({count * self.interval:.1f} s)")
            for title, table in (("inclusive", self.inclusive), ("own", self.own)):
                rows = sorted(
                    ((n, c) for (g, n), c in table.items() if g == group), key=lambda r: -r[1]
                )[:limit]
                lines.append(f"-- {title}")
                lines += [f"{100 * c / count:6.1f}%  {n}" for n, c in rows]
            lines.append("")
        return "\n".join(lines)


def _short(path: str) -> str:
    """A path relative to the repository or to site-packages."""
    for marker in ("/site-packages/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    repo = str(Path(__file__).resolve().parent.parent) + "/"
    return path.removeprefix(repo)


def _name(frame: Frame) -> str:
    """A frame's function; a synthetic ``[self]`` frame stands for its parent's own time."""
    if frame.is_synthetic and frame.parent is not None:
        frame = frame.parent
    return f"{frame.function} ({frame.file_path_short}:{frame.line_no})"


def _package(frame: Frame, repo: Path) -> str | None:
    """``gateway/auth``, ``network/engine``, ``crypto``..., "framework", or None (a library)."""
    path = frame.file_path or ""
    if "/site-packages/" in path or "/lib/python3" in path:
        if any(f"/{name}/" in path or path.endswith(f"/{name}.py") for name in _FRAMEWORK):
            return "framework"
        return None
    if not path.startswith(str(repo) + "/"):
        return None
    parts = Path(path).relative_to(repo).parts
    if parts[0] in ("gateway", "network") and len(parts) > 1:
        return f"{parts[0]}/{parts[1].removesuffix('.py')}"
    return parts[0]


def breakdown(session: Session, repo: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Own time per function, and per package: a library's time counts for the package
    that called it (``cryptography`` under ``crypto``, ``sqlite3`` under whoever queried)."""
    functions: dict[str, float] = {}
    packages: dict[str, float] = {}
    root = session.root_frame()
    stack: list[tuple[Frame, str]] = [(root, "framework")] if root is not None else []
    while stack:
        frame, owner = stack.pop()
        owner = _package(frame, repo) or owner
        own = frame.time - sum(child.time for child in frame.children)
        name = _name(frame)
        functions[name] = functions.get(name, 0.0) + own
        where = "idle (waiting for requests)" if name.split(" ")[0] in _IDLE else owner
        packages[where] = packages.get(where, 0.0) + own
        stack.extend((child, owner) for child in frame.children)
    return functions, packages


async def serve(
    args: argparse.Namespace,
    profiler: Profiler,
    threads: list[tuple[str, float]],
    workers: list[str],
) -> None:
    settings = load_settings(home=args.home)
    service = await GatewayService.start(settings)
    config = uvicorn.Config(
        create_app(settings, service=service),
        host=args.host,
        port=args.port,
        http="httptools",
        loop=args.loop,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    print(f"profiling the gateway for {args.home} on http://{args.host}:{args.port}", flush=True)
    sampler = ThreadSampler()
    profiler.start()
    sampler.start()
    try:
        await server.serve()
    finally:
        profiler.stop()
        sampler.stop()
        workers[:] = [sampler.report()]
        threads[:] = thread_cpu()  # before closing: the network's threads are still alive
        await service.aclose()


def write_report(
    out: Path, profiler: Profiler, threads: list[tuple[str, float]], workers: list[str]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "workers.txt").write_text("".join(workers))
    session = profiler.last_session
    (out / "eventloop.txt").write_text(
        profiler.output_text(unicode=True, show_all=False, short_mode=False)
    )
    (out / "eventloop.html").write_text(profiler.output_html())
    lines = [f"{seconds:9.2f} s  {name}" for name, seconds in threads]
    total = sum(seconds for _, seconds in threads)
    (out / "threads.txt").write_text(
        "CPU seconds per thread\n" + "\n".join(lines) + f"\n{total:9.2f} s  total\n"
    )
    if session is not None:
        session.save(out / "eventloop.pyisession")
        functions, packages = breakdown(session, Path(__file__).resolve().parent.parent)
        sampled = sum(packages.values()) or 1.0

        def table(rows: dict[str, float], limit: int) -> str:
            ranked = sorted(rows.items(), key=lambda item: -item[1])[:limit]
            return "\n".join(
                f"{seconds:8.2f} s {100 * seconds / sampled:5.1f}%  {name}"
                for name, seconds in ranked
            )

        (out / "top.txt").write_text(
            f"event-loop thread: {sampled:.1f} s sampled, {session.cpu_time:.1f} s CPU\n\n"
            "by package (a library's time counts for the package calling it):\n"
            f"{table(packages, 30)}\n\nby function (own time):\n{table(functions, 40)}\n"
        )
    print(f"profile written to {out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=Path(".accessledger"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--out", type=Path, default=Path("profile"))
    parser.add_argument("--interval", type=float, default=0.001, help="sampling interval (s)")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop (uvloop, as `accessledger serve` uses; asyncio for comparison)",
    )
    args = parser.parse_args(argv)
    profiler = Profiler(interval=args.interval, async_mode="disabled")
    threads: list[tuple[str, float]] = []
    workers: list[str] = []
    # uvicorn turns SIGINT and SIGTERM into a graceful shutdown; serve() then returns.
    if args.loop == "uvloop":
        uvloop.run(serve(args, profiler, threads, workers))
    else:
        asyncio.run(serve(args, profiler, threads, workers))
    write_report(args.out, profiler, threads, workers)


if __name__ == "__main__":
    main()
