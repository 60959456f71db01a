"""I6: crash safety of the whole gateway -- ``kill -9`` of ``accessledger serve``.

The real console script serves a copy of the demo home. Through the SDK a
registrar registers a record about a new person and an officer gets a grant
on it; then, while registrars and the officer keep submitting from several
threads, the server is SIGKILLed. Restarted on the same home:

* every transaction the SDK saw committed (a commit response) is on the
  ledger, VALID; the hash chain verifies from genesis;
* the record and its access history are there: the officer fetches the grant
  again and decrypts the original fields; an auditor lists every access to
  the person;
* the auditor's full replay of the home (blocks, state, stores, key-release
  logs) finds nothing: no partial block, no lost or half-written state.

The engine-level crash loops (50 kills each) are
tests/network/engine/test_crash.py and test_statedb_crash.py. The server's
own log output (``--access-log``) is checked for the person's data too (I1).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.replay import ReplayConfig, replay_ledger
from audit.sources import HomeSource
from gateway.client import Client, ClientError
from network.engine.network import open_ledger
from tests.gateway.client.people import new_person, record, up_to
from tests.invariants.ledger import VALID
from tests.invariants.served import ServedHome

REGISTRAR = "registrar.publicsecurity.sz1"
OFFICER = "officer.education.sz1"
AUDITOR = "auditor.audit.sz1"
WRITERS = 4
KILL_AFTER_ACKS = 12
KILL_DEADLINE_S = 8.0


class Load:
    """Threads submitting until the server dies; what they saw committed."""

    def __init__(self, home: Path, url: str, subject: str) -> None:
        self.home, self.url, self.subject = home, url, subject
        self.acked: dict[str, str] = {}  # tx id -> what
        self.accesses: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._register, daemon=True) for _ in range(WRITERS - 1)
        ] + [threading.Thread(target=self._ask, daemon=True)]

    def _ack(self, tx_id: str, what: str) -> None:
        with self.lock:
            self.acked[tx_id] = what

    def _register(self) -> None:
        with Client.from_home(self.home, REGISTRAR, gateway_url=self.url) as client:
            while not self.stop.is_set():
                person = new_person()
                try:
                    receipt = client.put_record(
                        "residence_permit", person, record("residence_permit", person)
                    )
                except (ClientError, httpx.HTTPError):
                    return  # the server is gone
                self._ack(receipt.tx_id, "RegisterRecord")

    def _ask(self) -> None:
        with Client.from_home(self.home, OFFICER, gateway_url=self.url) as client:
            while not self.stop.is_set():
                try:
                    result = client.request_access(
                        self.subject, ["residence_permit"], "T1", "school_enrolment"
                    )
                except (ClientError, httpx.HTTPError):
                    return
                self._ack(result.tx_id, "RequestAccess")
                with self.lock:
                    self.accesses.add(result.event_id)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def wait_for(self, count: int, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and len(self.acked) < count:
            time.sleep(0.01)

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _replay(home: Path) -> list[Any]:
    with HomeSource(home) as source:
        outcome = replay_ledger(
            source, ReplayConfig(stores=home / "stores"), now=datetime.now().astimezone()
        )
    return [str(f) for f in outcome.report.findings]


@pytest.mark.timeout(180)
def test_kill_9_of_the_gateway_loses_no_committed_transaction(
    demo_copy: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    person = new_person()
    fields = record("residence_permit", person)
    server = ServedHome(demo_copy, log)
    try:
        with Client.from_home(demo_copy, REGISTRAR, gateway_url=server.url) as registrar:
            receipt = registrar.put_record("residence_permit", person, fields)
        with Client.from_home(demo_copy, OFFICER, gateway_url=server.url) as officer:
            first = officer.request_access(
                receipt.subject, ["residence_permit"], "T1", "school_enrolment"
            )
        assert first.decision == "granted"
        load = Load(demo_copy, server.url, receipt.subject)
        load.start()
        load.wait_for(KILL_AFTER_ACKS, KILL_DEADLINE_S)
    finally:
        server.kill()  # kill -9 while the load is in flight
    load.join()
    acked = {receipt.tx_id: "RegisterRecord", first.tx_id: "RequestAccess", **load.acked}
    assert len(acked) > 4, "the load hardly committed anything before the kill"

    with open_ledger(demo_copy) as store:  # re-hashes every block and the chain
        for tx_id, what in acked.items():
            location = store.get_transaction(tx_id)
            assert location is not None, f"acknowledged {what} {tx_id} was lost"
            assert location.validation_code == VALID, f"{what} {tx_id}"

    server = ServedHome(demo_copy, log)
    try:
        with Client.from_home(demo_copy, OFFICER, gateway_url=server.url) as officer:
            again = officer.fetch_access(first.tx_id)
        assert again.decision == "granted"
        [granted] = again.granted
        assert granted.record_id == receipt.record_id
        assert granted.fields == up_to("residence_permit", fields, "T1")
        with Client.from_home(demo_copy, AUDITOR, gateway_url=server.url) as auditor:
            listed = auditor.audit_events(subject=receipt.subject)
        history = {e["event_id"] for e in listed["events"]}
        assert {first.event_id, *load.accesses} <= history
    finally:
        server.stop()

    assert _replay(demo_copy) == []
    output = log.read_bytes()
    assert b"Uvicorn running" in output
    assert person.encode("ascii") not in output
    assert fields["holder_name"].encode("utf-8") not in output
