"""``bench policy``: Cedar decisions per second, one at a time and in batches.

The workload is a realistic mix of the default scenarios: an education
enrolment officer in Shenzhen asks for T1 of residence, housing and
social-insurance records (some in another region, some of types the scenario
does not cover, some above the officer's clearance), so both permits and
denials are evaluated. Single evaluation calls :meth:`PolicySet.evaluate` once
per record; batched evaluation hands ``batch`` records to one
:meth:`PolicySet.evaluate_batch` call, as the chaincode does for one request.
Tests only check the figures exist; speed is never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crypto.bench import machine_info
from crypto.errors import AccessLedgerError
from policies.engine import Decision, PolicySet
from policies.requests import AccessContext, AccessRequest, Action, Principal, RecordResource

_SHENZHEN = "440300"
_CHENGDU = "510100"
_MIX: tuple[tuple[str, str, str, str], ...] = (
    # (owner org, record type, tier, region)
    ("PublicSecurity", "residence_permit", "T1", _SHENZHEN),
    ("Housing", "housing_rental", "T1", _SHENZHEN),
    ("HRSS", "social_insurance", "T1", _SHENZHEN),
    ("HRSS", "social_insurance", "T1", _CHENGDU),  # other region: denied
    ("Health", "health_record", "T1", _SHENZHEN),  # not in the scenario: denied
    ("PublicSecurity", "residence_permit", "T2", _SHENZHEN),  # above clearance: denied
)


@dataclass(frozen=True)
class PolicyBenchResult:
    """Decisions per second for single and batched evaluation."""

    decisions: int
    batch: int
    single_per_s: float
    batched_per_s: float
    allowed_share: float
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "single_decisions_per_s": round(self.single_per_s, 1),
            "batched_decisions_per_s": round(self.batched_per_s, 1),
            "batch": self.batch,
            "decisions": self.decisions,
            "allowed_share": round(self.allowed_share, 3),
            "machine": self.machine,
        }


def _workload(decisions: int) -> tuple[Principal, list[RecordResource], AccessContext]:
    principal = Principal(
        officer_id="officer.education.sz1",
        org="Education",
        role="enrolment_officer",
        region=_SHENZHEN,
        clearance=1,
    )
    resources = [
        RecordResource(
            record_id=f"rec-{i:08d}", owner_org=org, record_type=rtype, tier=tier, region=region
        )
        for i, (org, rtype, tier, region) in ((i, _MIX[i % len(_MIX)]) for i in range(decisions))
    ]
    return principal, resources, AccessContext(purpose="school_enrolment")


def _timed(run: Callable[[], list[Decision]]) -> tuple[float, list[Decision]]:
    start = time.perf_counter()
    decisions = run()
    return time.perf_counter() - start, decisions


def run_policy_bench(
    *, decisions: int = 2000, batch: int = 100, now: datetime | None = None
) -> PolicyBenchResult:
    """Evaluate ``decisions`` requests singly and in batches of ``batch``; return the rates.

    Raises if the two modes disagree on any decision: batching must not change
    an answer (I4).
    """
    if decisions < 1 or batch < 1:
        raise AccessLedgerError("decisions and batch must be at least 1", code="invalid_argument")
    policy_set = PolicySet.load_default()
    principal, resources, context = _workload(decisions)
    action = Action.READ
    # Warm-up: the first Cedar call parses the policy set and schema.
    policy_set.evaluate_batch(principal, action, resources[: min(batch, decisions)], context)

    def single() -> list[Decision]:
        return [
            policy_set.evaluate(AccessRequest(principal, action, resource, context))
            for resource in resources
        ]

    def batched() -> list[Decision]:
        out: list[Decision] = []
        for start in range(0, len(resources), batch):
            out.extend(
                policy_set.evaluate_batch(
                    principal, action, resources[start : start + batch], context
                )
            )
        return out

    single_s, single_decisions = _timed(single)
    batched_s, batched_decisions = _timed(batched)
    if single_decisions != batched_decisions:
        raise AccessLedgerError(
            "batched and single evaluation disagree", code="policy_nondeterministic"
        )
    allowed = sum(d.allowed for d in single_decisions)
    stamp = now if now is not None else datetime.now(UTC)
    return PolicyBenchResult(
        decisions=decisions,
        batch=batch,
        single_per_s=decisions / single_s,
        batched_per_s=decisions / batched_s,
        allowed_share=allowed / decisions,
        machine=machine_info(stamp),
    )
