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
* ``eventloop.pyisession`` -- the raw session (``pyinstrument --load``).

Usage::

    ACCESSLEDGER_RATE_LIMIT_PER_MINUTE=0 .venv/bin/python load/profile_server.py \\
        --home DIR --port 8000 --out /tmp/profile
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
from pathlib import Path

import uvicorn
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
    args: argparse.Namespace, profiler: Profiler, threads: list[tuple[str, float]]
) -> None:
    settings = load_settings(home=args.home)
    service = await GatewayService.start(settings)
    config = uvicorn.Config(
        create_app(settings, service=service),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    print(f"profiling the gateway for {args.home} on http://{args.host}:{args.port}", flush=True)
    profiler.start()
    try:
        await server.serve()
    finally:
        profiler.stop()
        threads[:] = thread_cpu()  # before closing: the network's threads are still alive
        await service.aclose()


def write_report(out: Path, profiler: Profiler, threads: list[tuple[str, float]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
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
    args = parser.parse_args(argv)
    profiler = Profiler(interval=args.interval, async_mode="disabled")
    threads: list[tuple[str, float]] = []
    # uvicorn turns SIGINT and SIGTERM into a graceful shutdown; serve() then returns.
    asyncio.run(serve(args, profiler, threads))
    write_report(args.out, profiler, threads)


if __name__ == "__main__":
    main()
