"""Seed a home's ledger with a living demo: records, and a realistic stream of accesses.

:func:`seed_demo` acts out, through the SDK and the gateway's HTTP API
exactly as agencies would (every request signed by the acting identity,
every transaction signed by its creator), what a few months of cross-agency
work on a migrant population looks like:

1. **Registration.** Each department's registrar registers its records:
   residence permits (public security), social insurance and employment
   contracts (HRSS), rentals (housing), tax records (tax), health records
   (health -- Chengdu people are insured at home, in Chengdu, and registered
   there), then the children's student records naming their parents'
   pseudonyms as guardians (education).
2. **Citizens.** CivilAffairs binds the three demo citizen credentials to
   three adults; two consent to points-based hukou scoring.
3. **Accesses**, per household: school enrolment (granted, T1), an
   over-reaching T2 enrolment lookup (denied), a Chengdu officer reaching
   for Shenzhen records (denied), social-insurance transfers to Chengdu,
   wage-arrears cases with and without a case reference, medical settlement
   (T2 granted, T3 without consent denied), break-glass emergency reads of
   health records (granted, left open for review), criminal investigations,
   owner-department reads, and hukou scoring with and without consent.
4. **Aftermath.** A citizen revokes a consent (the next hukou lookup is
   denied), another contests an access, an auditor reviews one break-glass
   access and leaves the others open.

Independent steps run concurrently (``concurrency`` operations in flight),
so blocks fill up instead of waiting for the orderer's batch timeout.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any, Protocol, TypeVar

import httpx

from crypto.consortium import CHENGDU, Consortium
from crypto.errors import AccessLedgerError
from gateway.client import AccessResult, AsyncClient, PermissionDenied, operations_from
from gateway.demo import records as build
from gateway.demo.population import Household, Person, PopulationGenerator
from gateway.demo.scenarios import (
    HUKOU_TYPES,
    PlannedAccess,
    hukou_lookup,
    plan_accesses,
    wage_case,
)

T = TypeVar("T")

#: Citizens of the demo consortium (CivilAffairs credentials), bound to the first adults.
CITIZENS = ("citizen.c1", "citizen.c2", "citizen.c3")


class Progress(Protocol):
    """Where the seeding reports its phases and steps (a Rich progress bar in the CLI)."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, steps: int = 1) -> None: ...


class _Silent:
    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass


@dataclass
class DemoReport:
    """What the seeding did; event ids by category for anyone who wants to look them up."""

    people: int = 0
    households: int = 0
    children: int = 0
    records: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    scenarios: Counter[str] = field(default_factory=Counter)
    citizens: dict[str, str] = field(default_factory=dict)
    consents: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    break_glass: list[str] = field(default_factory=list)
    contested: list[str] = field(default_factory=list)
    reviewed: list[str] = field(default_factory=list)
    events: dict[str, list[str]] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "people": self.people,
            "households": self.households,
            "children": self.children,
            "records": dict(sorted(self.records.items())),
            "accesses": sum(self.decisions.values()),
            "decisions": dict(sorted(self.decisions.items())),
            "scenarios": dict(sorted(self.scenarios.items())),
            "citizens": self.citizens,
            "consents_granted": self.consents,
            "consents_revoked": self.revoked,
            "break_glass_open": [e for e in self.break_glass if e not in self.reviewed],
            "contested": self.contested,
            "reviewed": self.reviewed,
            "elapsed_seconds": round(self.elapsed_seconds, 2),
        }


class DemoSeeder:
    """One seeding run: the clients of the acting identities and what they registered."""

    def __init__(
        self,
        consortium: Consortium,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        seed: int,
        today: date,
        concurrency: int,
        progress: Progress,
    ) -> None:
        self.consortium = consortium
        self.http = http
        self.base_url = base_url
        self.today = today
        self.random = random.Random(seed)  # noqa: S311 - invented data, not secrets
        self.seed = seed
        self.progress = progress
        self.report = DemoReport()
        self._limit = asyncio.Semaphore(concurrency)
        self._clients: dict[str, AsyncClient] = {}
        self.subjects: dict[str, str] = {}  # identity number -> pseudonym
        self.held: dict[str, set[str]] = {}  # identity number -> record types registered

    def client(self, name: str) -> AsyncClient:
        if name not in self._clients:
            operations = operations_from(self.consortium, name)
            self._clients[name] = AsyncClient(operations, base_url=self.base_url, http=self.http)
        return self._clients[name]

    async def run_all(self, steps: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        async def one(step: Callable[[], Awaitable[T]]) -> T:
            async with self._limit:
                result = await step()
            self.progress.advance()
            return result

        return list(await asyncio.gather(*(one(step) for step in steps)))

    # -- 0. not twice ----------------------------------------------------------------------

    async def check_fresh(self) -> None:
        try:
            await self.client(CITIZENS[0]).my_consents()
        except PermissionDenied as exc:
            if exc.code == "citizen_not_registered":
                return
            raise
        raise AccessLedgerError(
            f"{self.consortium.home} already holds demo data; to start again, create a fresh"
            " home (accessledger init --force) and run demo on it",
            code="demo_already_seeded",
        )

    # -- 1. registration -------------------------------------------------------------------

    async def _put(
        self, registrar: str, record_type: str, person: Person, fields: dict[str, Any]
    ) -> None:
        status = fields.get("status")
        metadata = {"status": status} if isinstance(status, str) else None
        receipt = await self.client(registrar).put_record(
            record_type, person.identity_number, fields, metadata=metadata
        )
        self.subjects[person.identity_number] = receipt.subject
        self.held.setdefault(person.identity_number, set()).add(record_type)
        self.report.records[record_type] += 1

    def adult_steps(self, households: Sequence[Household]) -> list[Callable[[], Awaitable[None]]]:
        steps: list[Callable[[], Awaitable[None]]] = []
        rnd, today = self.random, self.today

        def put(registrar: str, record_type: str, person: Person, fields: dict[str, Any]) -> None:
            steps.append(lambda: self._put(registrar, record_type, person, fields))

        for household in households:
            for person in household.adults:
                job = build.job_for(person, household, rnd, today)
                permit = build.residence_permit(person, household, job, rnd, today)
                put("registrar.publicsecurity.sz1", "residence_permit", person, permit)
                health = build.health_record(person, household, job, rnd, today)
                tag = "cd1" if health["insurance_region_code"] == CHENGDU else "sz1"
                put(f"registrar.health.{tag}", "health_record", person, health)
                if job is not None:
                    si = build.social_insurance(person, household, job, rnd, today)
                    put("registrar.hrss.sz1", "social_insurance", person, si)
                    ec = build.employment_contract(person, household, job, rnd, today)
                    put("registrar.hrss.sz1", "employment_contract", person, ec)
                    tax = build.tax_record(person, household, job, rnd, today)
                    put("registrar.tax.sz1", "tax_record", person, tax)
            rental = build.housing_rental(household.head, household, rnd, today)
            put("registrar.housing.sz1", "housing_rental", household.head, rental)
        return steps

    def pupil_steps(self, households: Sequence[Household]) -> list[Callable[[], Awaitable[None]]]:
        steps: list[Callable[[], Awaitable[None]]] = []
        for household in households:
            guardians = [
                ("father" if adult.sex == "M" else "mother", self.subjects[adult.identity_number])
                for adult in household.adults
            ]
            for child in household.children:
                fields = build.student_record(child, household, guardians, self.random, self.today)
                steps.append(
                    partial(self._put, "registrar.education.sz1", "student_record", child, fields)
                )
        return steps

    # -- 2. citizens -------------------------------------------------------------------------

    async def bind_citizens(self, adults: Sequence[Person]) -> dict[str, Person]:
        """Bind the demo citizens' credentials to the first adults (a CivilAffairs registrar)."""
        registrar = self.client("registrar.civilaffairs.sz1")
        bound = dict(zip(CITIZENS, adults, strict=False))

        async def bind(name: str, person: Person) -> None:
            certificate = self.consortium.identity(name).cert_pem().decode("ascii")
            await registrar.register_citizen(certificate, self.subjects[person.identity_number])
            self.report.citizens[name] = self.subjects[person.identity_number]
            self.progress.advance()

        await asyncio.gather(*(bind(name, person) for name, person in bound.items()))
        self.report.citizens = dict(sorted(self.report.citizens.items()))
        return bound

    async def consent_to_hukou(self, citizen: str) -> str:
        committed = await self.client(citizen).grant_consent(
            "PublicSecurity", "points_hukou", HUKOU_TYPES, max_tier="T2"
        )
        consent_id = str(committed.result["consent_id"])
        self.report.consents.append(consent_id)
        self.progress.advance()
        return consent_id

    # -- 3. accesses -------------------------------------------------------------------------

    async def access(self, planned: PlannedAccess) -> AccessResult:
        result = await self.client(planned.officer).request_access(
            self.subjects[planned.person.identity_number],
            planned.record_types,
            planned.tier,
            planned.purpose,
            case_ref=planned.case_ref,
            emergency=planned.justification is not None,
            justification=planned.justification,
        )
        self.report.decisions[result.decision] += 1
        self.report.scenarios[f"{planned.label}:{result.decision}"] += 1
        self.report.events.setdefault(result.decision, []).append(result.event_id)
        if planned.justification is not None and result.decision != "denied":
            self.report.break_glass.append(result.event_id)
        return result


async def seed_demo(
    consortium: Consortium,
    http: httpx.AsyncClient,
    base_url: str,
    *,
    people: int = 100,
    seed: int = 2024,
    today: date | None = None,
    concurrency: int = 48,
    progress: Progress | None = None,
) -> DemoReport:
    """Seed the ledger behind ``base_url`` (see the module docstring); returns what was done."""
    started = time.perf_counter()
    today = today or date.today()
    seeder = DemoSeeder(
        consortium,
        http,
        base_url,
        seed=seed,
        today=today,
        concurrency=concurrency,
        progress=progress or _Silent(),
    )
    report = seeder.report
    await seeder.check_fresh()
    households = PopulationGenerator(seed, today).population(people)
    adults = [adult for household in households for adult in household.adults]
    report.households = len(households)
    report.people = sum(len(h.members) for h in households)
    report.children = report.people - len(adults)

    adult_steps = seeder.adult_steps(households)
    seeder.progress.phase("Registering records", len(adult_steps) + report.children)
    await seeder.run_all(adult_steps)
    # Pupils name their parents' pseudonyms, known once the parents are registered.
    await seeder.run_all(seeder.pupil_steps(households))

    bindable = [a for a in adults if a.identity_number in seeder.subjects]
    consenting = min(2, len(bindable))
    seeder.progress.phase("Binding citizens and consents", min(3, len(bindable)) + consenting)
    citizens = await seeder.bind_citizens(bindable)
    consenting_citizens = list(citizens)[:consenting]
    granted = await asyncio.gather(*(seeder.consent_to_hukou(c) for c in consenting_citizens))
    consents = dict(zip(consenting_citizens, granted, strict=True))

    applicants = [c for c in citizens if c != CITIZENS[2]]  # citizen.c3 has not applied
    plan = plan_accesses(
        households, citizens, seeder.held, year=today.year, hukou_applicants=applicants
    )
    seeder.progress.phase("Access requests", len(plan))
    results = await seeder.run_all([partial(seeder.access, p) for p in plan])

    seeder.progress.phase("Revocation, contest and review", 4)
    await _aftermath(seeder, citizens, consents, plan, results)
    report.elapsed_seconds = time.perf_counter() - started
    return report


async def _aftermath(
    seeder: DemoSeeder,
    citizens: dict[str, Person],
    consents: dict[str, str],
    plan: Sequence[PlannedAccess],
    results: Sequence[AccessResult],
) -> None:
    report = seeder.report
    # citizen.c2 withdraws consent; the next hukou lookup about them is denied.
    if CITIZENS[1] in consents:
        await seeder.client(CITIZENS[1]).revoke_consent(consents[CITIZENS[1]])
        report.revoked.append(consents[CITIZENS[1]])
        person = citizens[CITIZENS[1]]
        await seeder.access(hukou_lookup(person, "points_hukou_after_revocation"))
    seeder.progress.advance(2)
    # citizen.c3 (or the last bound citizen) contests an access about them.
    contester = next((c for c in reversed(CITIZENS) if c in citizens), None)
    if contester is not None:
        person = citizens[contester]
        about = [r for p, r in zip(plan, results, strict=True) if p.person == person]
        if not about:
            about = [await seeder.access(wage_case(person, seeder.today.year))]
        event = about[0].event_id
        await seeder.client(contester).contest(
            event, "我从未申请过相关业务，也不认识查询我信息的单位，请核查此次查询。"
        )
        report.contested.append(event)
    seeder.progress.advance()
    # An auditor reviews one break-glass access; the others stay open for review.
    if len(report.break_glass) > 1:
        event = report.break_glass[0]
        await seeder.client("auditor.audit.sz1").review(
            event, "justified", "急诊记录与值班医生陈述一致，紧急调阅合理。"
        )
        report.reviewed.append(event)
    seeder.progress.advance()


__all__ = ["CITIZENS", "DemoReport", "DemoSeeder", "PlannedAccess", "Progress", "seed_demo"]
