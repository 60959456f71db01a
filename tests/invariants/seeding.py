"""One demo run, observed from outside: what was sent, what was logged, what was written.

:func:`seed_observed` creates a fresh demo consortium home and seeds it with
:func:`gateway.demo.seed.seed_demo` through the gateway app in this process
(the path ``accessledger demo`` takes). While it runs it keeps

* every log record of every logger at DEBUG (message, arguments, exception
  text and stack), as ``caplog`` at DEBUG would;
* the JSON body of every request the SDK sent (the plaintext the gateway
  received: record fields, identity numbers, contest reasons, review notes);
* for every access request, which identity signed the HTTP call (the
  ``keyid`` of its RFC 9421 signature) and the transaction id it got back.

The observation uses httpx's public event hooks and a logging handler; the
gateway, SDK and chaincode run unmodified.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

from crypto.consortium import Consortium, create_demo_consortium
from gateway.demo.inprocess import IN_PROCESS_URL, in_process_gateway
from gateway.demo.population import Person, PopulationGenerator, all_people
from gateway.demo.seed import DemoReport, seed_demo

#: Size and seed of the observed demo (14 people in 5 households: every kind of outcome).
PEOPLE = 14
SEED = 2024

_KEYID = re.compile(r'keyid="([0-9a-f]{64})"')


@dataclass
class SentRequest:
    """One HTTP request the SDK sent: method, path, signer fingerprint, JSON body."""

    method: str
    path: str
    keyid: str | None
    body: Any


@dataclass
class DemoRun:
    """What one observed demo run did and left behind."""

    home: Path
    today: date
    report: DemoReport
    people: list[Person]
    sent: list[SentRequest] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    #: access-request tx id -> fingerprint of the identity that signed the HTTP call
    access_requesters: dict[str, str] = field(default_factory=dict)

    @property
    def log_text(self) -> str:
        return "\n".join(self.log_lines)

    def event_ids(self) -> set[str]:
        """Every access event id the demo got back, whatever the decision."""
        return {event for events in self.report.events.values() for event in events}


class _Collector(logging.Handler):
    """Keeps every record, fully formatted, with its raw arguments and exception text."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines = lines
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.args))
        if record.stack_info:
            self.lines.append(record.stack_info)


@contextmanager
def capture_logs(lines: list[str]) -> Iterator[None]:
    """Every logger at DEBUG into ``lines`` for the duration."""
    root = logging.getLogger()
    handler = _Collector(lines)
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


async def _seed(run: DemoRun) -> DemoReport:
    async def on_request(request: httpx.Request) -> None:
        match = _KEYID.search(request.headers.get("signature-input", ""))
        body = json.loads(request.content) if request.content else None
        run.sent.append(
            SentRequest(request.method, request.url.path, match.group(1) if match else None, body)
        )

    async def on_response(response: httpx.Response) -> None:
        request = response.request
        if (request.method, request.url.path) != ("POST", "/v1/access-requests"):
            return
        await response.aread()
        if response.status_code == 201:
            match = _KEYID.search(request.headers.get("signature-input", ""))
            assert match is not None, "access request without an RFC 9421 keyid"
            run.access_requesters[response.json()["tx_id"]] = match.group(1)

    consortium = Consortium.load(run.home)
    async with in_process_gateway(run.home, rate_limit_per_minute=0) as http:
        http.event_hooks["request"].append(on_request)
        http.event_hooks["response"].append(on_response)
        return await seed_demo(
            consortium, http, IN_PROCESS_URL, people=PEOPLE, seed=SEED, today=run.today
        )


def seed_observed(root: Path) -> DemoRun:
    """Create a fresh home under ``root`` and seed it while observing (module docstring)."""
    home = root / "home"
    create_demo_consortium(home, now=datetime.now(UTC))
    today = date.today()
    people = all_people(PopulationGenerator(SEED, today).population(PEOPLE))
    run = DemoRun(home=home, today=today, report=DemoReport(), people=people)
    with capture_logs(run.log_lines):
        run.report = asyncio.run(_seed(run))
    return run
