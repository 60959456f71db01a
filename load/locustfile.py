"""Locust: a mixed AccessLedger workload against a running gateway (how to run: load/README.md).

Each simulated user is an agency system that plays several demo identities
of the home the gateway serves (``ACCESSLEDGER_HOME``), through the Python
SDK's own operations (:mod:`gateway.client.flows`, sans I/O) driven over
Locust's HTTP client, so every request is signed, every transaction is
signed by its caller and every granted payload is decrypted, exactly as the
SDK does it. The mix, per user:

=============== ====== ===================================================================
task            weight what
=============== ====== ===================================================================
granted lookup  5      RequestAccess that the default policy grants (propose + commit,
                       keys released, payload decrypted)
denied lookup   3      RequestAccess that the policy denies (still a committed event)
registration    1      a newcomer's housing rental: POST /v1/records, propose, commit
citizen view    2      GET /v1/me/accesses of a citizen bound to a looked-up subject
=============== ====== ===================================================================

Locust's table shows each HTTP request by route (``[access]`` and
``[register]`` tell the two commits apart) and each whole operation as a
``FLOW`` row (both legs of an access request, for instance). A lookup whose
decision is not the expected one counts as a failure.

Before the users start (``test_start``) the people to look up are seeded
through the same gateway with fixed record ids, so a second run on the same
home finds them already there. Settings (environment):

* ``ACCESSLEDGER_HOME`` -- the home the gateway serves (default ``./.accessledger``);
* ``ACCESSLEDGER_LOAD_PEOPLE`` -- how many people to seed (default 40);
* ``ACCESSLEDGER_LOAD_SEED=0`` -- skip seeding (already done with ``--seed``).
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import gevent.pool  # type: ignore[import-untyped]
from locust import FastHttpUser, constant, events, task
from locust.env import Environment

from crypto.consortium import Consortium
from crypto.pseudonym import check_character, pseudonym
from gateway.client import Client, ClientError, operations_from
from gateway.client.flows import Flow, Operations
from gateway.client.http import Call, interpret, prepare
from policies.catalogue import Catalogue

T = TypeVar("T")

HOME: Final = Path(os.environ.get("ACCESSLEDGER_HOME", ".accessledger"))
PEOPLE: Final = int(os.environ.get("ACCESSLEDGER_LOAD_PEOPLE", "40"))

PERMIT_REGISTRAR: Final = "registrar.publicsecurity.sz1"
INSURANCE_REGISTRAR: Final = "registrar.hrss.sz1"
RENTAL_REGISTRAR: Final = "registrar.housing.sz1"
CIVIL_REGISTRAR: Final = "registrar.civilaffairs.sz1"
CITIZENS: Final = ("citizen.c1", "citizen.c2", "citizen.c3")


@dataclass(frozen=True)
class Lookup:
    """An access request the default policy decides one known way (gateway/demo/scenarios.py)."""

    officer: str
    record_types: tuple[str, ...]
    tier: str
    purpose: str
    expect: str


GRANTED: Final = (
    Lookup("officer.education.sz1", ("residence_permit",), "T1", "school_enrolment", "granted"),
    Lookup("officer.hrss.cd1", ("social_insurance",), "T2", "social_insurance_transfer", "granted"),
)
DENIED: Final = (
    # clearance 1 cannot read T2
    Lookup("officer.education.sz1", ("residence_permit",), "T2", "school_enrolment", "denied"),
    # the records are in Shenzhen, the officer in Chengdu
    Lookup("officer.education.cd1", ("residence_permit",), "T1", "school_enrolment", "denied"),
    # a criminal investigation needs a case reference
    Lookup(
        "officer.publicsecurity.sz2",
        ("residence_permit",),
        "T2",
        "criminal_investigation",
        "denied",
    ),
)
IDENTITIES: Final = sorted(
    {lookup.officer for lookup in GRANTED + DENIED} | {RENTAL_REGISTRAR, *CITIZENS}
)
_TX_ID = re.compile(r"/[0-9a-f]{64}(?=/|$)")
# The seeding client (httpx) logs every request at INFO.
logging.getLogger("httpx").setLevel(logging.WARNING)


def identity_number(index: int) -> str:
    """The GB 11643 number of seeded person ``index`` (a Shenzhen-born 1990s resident)."""
    year, month, day = index // 3650 % 10, 1 + index // 28 % 12, 1 + index % 28
    first17 = f"440304199{year}{month:02d}{day:02d}{index % 1000:03d}"
    return first17 + check_character(first17)


class Workload:
    """What every user of this process shares: the identities' SDK operations and the people."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.consortium = Consortium.load(home)
        catalogue = Catalogue.load_default()
        self.operations = {
            name: operations_from(self.consortium, name, catalogue=catalogue) for name in IDENTITIES
        }
        secret = self.consortium.consortium_secret()
        self.subjects = [pseudonym(identity_number(i), secret) for i in range(PEOPLE)]
        self.examples = {
            kind: dict(catalogue.schema(kind, 1)["examples"][0])
            for kind in ("residence_permit", "social_insurance", "housing_rental")
        }
        self.seeded = False

    def seed(self, base_url: str) -> None:
        """Register each person's permit and insurance record, bind the citizens (idempotent)."""
        if self.seeded:
            return
        started = time.monotonic()
        jobs: list[tuple[str, str, int]] = []
        for index in range(PEOPLE):
            jobs.append((PERMIT_REGISTRAR, "residence_permit", index))
            jobs.append((INSURANCE_REGISTRAR, "social_insurance", index))
        clients = {
            name: Client.from_home(self.home, name, gateway_url=base_url)
            for name in (PERMIT_REGISTRAR, INSURANCE_REGISTRAR, CIVIL_REGISTRAR)
        }
        try:

            def register(job: tuple[str, str, int]) -> None:
                registrar, kind, index = job
                record_id = f"load-{kind}-{index:05d}"
                try:
                    clients[registrar].put_record(
                        kind, identity_number(index), self.examples[kind], record_id=record_id
                    )
                except ClientError as exc:
                    if exc.code != "record_exists":
                        raise

            gevent.pool.Pool(16).map(register, jobs)
            for index, citizen in enumerate(CITIZENS):
                certificate = self.consortium.identity(citizen).cert_pem().decode("ascii")
                try:
                    clients[CIVIL_REGISTRAR].register_citizen(certificate, self.subjects[index])
                except ClientError as exc:
                    if exc.code != "citizen_exists":
                        raise
        finally:
            for client in clients.values():
                client.close()
        self.seeded = True
        print(f"seeded {PEOPLE} people in {time.monotonic() - started:.1f} s")


_workload: Workload | None = None


def workload() -> Workload:
    global _workload
    if _workload is None:
        _workload = Workload(HOME)
    return _workload


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _seed(environment: Environment, **_: Any) -> None:
    """Seed the people before any user starts (on each worker in a distributed run)."""
    if os.environ.get("ACCESSLEDGER_LOAD_SEED", "1") == "0":
        return  # seeded beforehand (load/bench.py)
    host = environment.host or os.environ.get("LOCUST_HOST", "http://127.0.0.1:8000")
    workload().seed(host)


def _route(call: Call) -> str:
    return _TX_ID.sub("/{tx_id}", call.path)


class Agency(FastHttpUser):
    """An agency system: officers' lookups, a registrar, the citizens' app (module docstring)."""

    wait_time = constant(0)
    # Commits wait for their block; allow for a loaded gateway.
    network_timeout = 60.0
    connection_timeout = 10.0

    def run_flow(self, name: str, operations: Operations, flow: Flow[T], label: str = "") -> T:
        """Drive one SDK operation over Locust's client; report it as a ``FLOW`` too."""
        started = time.perf_counter()
        error: Exception | None = None
        try:
            return self._drive(operations, flow, label)
        except Exception as exc:
            error = exc
            raise
        finally:
            self.environment.events.request.fire(
                request_type="FLOW",
                name=name,
                response_time=(time.perf_counter() - started) * 1000,
                response_length=0,
                exception=error,
                context={},
            )

    def _drive(self, operations: Operations, flow: Flow[T], label: str) -> T:
        suffix = f" [{label}]" if label else ""
        try:
            call = next(flow)
            while True:
                prepared = prepare(
                    call,
                    base_url=self.host or "",
                    identity=operations.identity,
                    now=operations.now(),
                )
                with self.client.request(
                    prepared.method,
                    prepared.url,
                    data=prepared.content,  # type: ignore[arg-type]  # bytes are sent as is
                    headers=prepared.headers,
                    name=_route(call) + (suffix if "/commit" in call.path else ""),
                    catch_response=True,
                ) as response:
                    headers = {k.lower(): str(v) for k, v in response.headers.items()}
                    status = int(response.status_code or 0)
                    try:
                        answer = interpret(call, status, headers, response.content or b"")
                    except ClientError as exc:
                        response.failure(f"{status} {exc.code}")
                        call = flow.throw(exc)
                        continue
                    response.success()
                call = flow.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _lookup(self, choices: Sequence[Lookup], name: str) -> None:
        shared = workload()
        lookup = random.choice(choices)
        operations = shared.operations[lookup.officer]
        subject = random.choice(shared.subjects)
        result = self.run_flow(
            name,
            operations,
            operations.request_access(
                subject, list(lookup.record_types), lookup.tier, lookup.purpose
            ),
            label="access",
        )
        if result.decision != lookup.expect:
            self._unexpected(name, f"{lookup} decided {result.decision}")

    def _unexpected(self, name: str, detail: str) -> None:
        self.environment.events.request.fire(
            request_type="CHECK",
            name=name,
            response_time=0,
            response_length=0,
            exception=AssertionError(detail),
            context={},
        )

    @task(5)
    def granted_lookup(self) -> None:
        self._lookup(GRANTED, "access granted")

    @task(3)
    def denied_lookup(self) -> None:
        self._lookup(DENIED, "access denied")

    @task(1)
    def registration(self) -> None:
        shared = workload()
        operations = shared.operations[RENTAL_REGISTRAR]
        # A newcomer: a rental about a looked-up person would make concurrent lookups
        # about them fail validation (phantom read of their record index), and be retried.
        subject = identity_number(random.randrange(PEOPLE, 1_000_000))
        record_id = f"load-rental-{uuid.uuid4().hex[:16]}"
        self.run_flow(
            "registration",
            operations,
            operations.put_record(
                "housing_rental", subject, shared.examples["housing_rental"], record_id=record_id
            ),
            label="register",
        )

    @task(2)
    def citizen_view(self) -> None:
        operations = workload().operations[random.choice(CITIZENS)]
        self.run_flow("citizen view", operations, operations.my_accesses(limit=20))


if __name__ == "__main__":
    # ``python load/locustfile.py --seed URL``: only seed (load/bench.py does, before measuring).
    if len(sys.argv) != 3 or sys.argv[1] != "--seed":
        raise SystemExit("usage: python load/locustfile.py --seed http://127.0.0.1:8000")
    workload().seed(sys.argv[2])
