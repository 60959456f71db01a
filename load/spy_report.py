"""Where the gateway's GIL time goes, from a py-spy recording (``load/bench.py --spy FILE``).

The gateway is bound by one core (the GIL), so the question under load is
which work holds it. ``py-spy record --gil --format raw`` samples the thread
holding the GIL, with no call hooks in the process (pyinstrument's hooks
inflate code that makes many small calls, such as the web framework). This
module folds those samples into the operations a reader of
``docs/benchmarks.md`` cares about -- one row per step of an access request,
plus the rest of the mixed workload -- and lists the functions that spend
the most time of their own.

Usage::

    .venv/bin/python load/spy_report.py SAMPLES.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

#: (row label, frame substrings): a sample belongs to the first row with a frame matching any.
CATEGORIES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("key release: re-verify the committed event, re-seal, log", ("verify_and_release",)),
    ("committer thread: validate the block, SQLite commit", ("Committer.commit ",)),
    (
        "POST /v1/access-requests: endorse RequestAccess",
        ("request_access (gateway/routes/access_requests.py",),
    ),
    ("POST .../commit: check the envelope, order", ("commit (gateway/routes/transactions.py",)),
    ("GET /v1/me/accesses: citizen view", ("my_accesses (gateway/routes/me.py",)),
    (
        "registration: draft, encrypt and store, propose",
        (
            "register (gateway/routes/records.py",
            "propose (gateway/routes/transactions.py",
            "_encrypt_and_store",
        ),
    ),
    ("request authentication: RFC 9421 signature, nonce", ("GatewayMiddleware._admit",)),
    (
        "HTTP and framework: uvicorn, Starlette, FastAPI, responses",
        ("run_asgi", "HttpToolsProtocol", "RequestResponseCycle"),
    ),
    ("event loop: callbacks, scheduling, other", ("Runner.run",)),
)
OTHER: Final = "unattributed: other threads, and stacks py-spy read only in part"

_SITE_PACKAGES = re.compile(r"\(/[^()]*?/site-packages/")
_LINE = re.compile(r":\d+\)$")


def _frame(raw: str, repo: str) -> str:
    """``function (file)`` without line numbers, site-packages or the repository prefix."""
    frame = _SITE_PACKAGES.sub("(", _LINE.sub(")", raw))
    return frame.replace(f"({repo}/", "(")


@dataclass
class Report:
    """Samples per category and per function (own time)."""

    total: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    own_by_category: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, frames: Sequence[str], count: int) -> None:
        self.total += count
        category = categorize(frames)
        self.by_category[category] += count
        if frames:
            self.own[frames[-1]] += count
            self.own_by_category.setdefault(category, Counter())[frames[-1]] += count

    def render(self, top: int) -> str:
        if not self.total:
            return "no samples"
        lines = [f"{self.total} samples of the thread holding the GIL", "", "by operation:"]
        for label, _ in (*CATEGORIES, (OTHER, ())):
            count = self.by_category.get(label, 0)
            if not count:
                continue
            lines.append(f"  {100 * count / self.total:5.1f}%  {label}")
            heaviest = self.own_by_category[label].most_common(3)
            lines.append(
                "          heaviest: "
                + "; ".join(f"{name} {100 * n / self.total:.1f}%" for name, n in heaviest)
            )
        lines += ["", "by function (own time):"]
        for name, count in self.own.most_common(top):
            lines.append(f"  {100 * count / self.total:5.1f}%  {name}")
        return "\n".join(lines)


def categorize(frames: Sequence[str]) -> str:
    """The row of :data:`CATEGORIES` a sample's stack (outermost first) belongs to."""
    for label, needles in CATEGORIES:
        if any(needle in frame for frame in frames for needle in needles):
            return label
    return OTHER


def parse(lines: Iterable[str], repo: str) -> Report:
    """Fold py-spy ``--format raw`` lines (``frame;frame;... count``) into a :class:`Report`."""
    report = Report()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # The first element names the thread; the rest are frames, outermost first.
        frames = [_frame(raw, repo) for raw in stack.split(";")[1:]]
        report.add(frames, int(count))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    repo = str(Path(__file__).resolve().parent.parent)
    with args.samples.open(encoding="utf-8", errors="replace") as stream:
        print(parse(stream, repo).render(args.top))


if __name__ == "__main__":
    main()
