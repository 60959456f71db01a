"""I4: decisions are replayable -- the same signed request, ledger state and anchored policy
give the same decision.

Every access event of the demo ledger is re-decided twice, by two
implementations that share nothing but the policy engine:

* tests/invariants/redecide.py: state rebuilt from the blocks' valid writes,
  the documented matching and consent rules, one Cedar call per record;
* the auditor's replay (``audit.replay``), from the home.

Both must agree with every recorded event. The oracle is shown to have teeth:
under a policy set that is not the anchored one, it disagrees.
"""

from __future__ import annotations

from datetime import datetime

from audit.replay import ReplayConfig, replay_ledger
from audit.sources import HomeSource
from policies.bundle import PolicyBundle
from tests.invariants.ledger import ledger_transactions
from tests.invariants.redecide import Redecider
from tests.invariants.seeding import DemoRun


def test_every_event_re_decides_identically_from_the_blocks(demo_run: DemoRun) -> None:
    transactions = ledger_transactions(demo_run.home)
    results = Redecider().run(transactions)
    problems = {r.tx_id: r.mismatches for r in results if r.mismatches}
    assert problems == {}
    # Every access of the demo was re-decided, granted (or partial) and denied alike.
    requests = [t for t in transactions if t.function == "RequestAccess" and t.valid]
    assert len(results) == len(requests) == sum(demo_run.report.decisions.values())
    assert {r.tx_id for r in results} == demo_run.event_ids()
    assert {"granted", "denied"} <= {r.decision for r in results}


def test_a_decision_under_another_policy_set_would_be_caught(demo_run: DemoRun) -> None:
    anchored = PolicyBundle.load_default()
    policies = anchored.policies
    assert "school_enrolment.cedar" in policies
    del policies["school_enrolment.cedar"]
    other = PolicyBundle(
        version=1,
        cedar_schema=anchored.cedar_schema,
        policies=policies,
        catalogue=anchored.catalogue,
    )
    results = Redecider(override=other).run(ledger_transactions(demo_run.home))
    wrong = [r for r in results if r.mismatches]
    assert wrong, "re-deciding under a different policy set found nothing"
    assert all(r.decision in ("granted", "partial") for r in wrong)
    assert any("policy says default_deny" in m for r in wrong for m in r.mismatches)


def test_the_auditors_replay_re_decides_every_event(demo_run: DemoRun) -> None:
    with HomeSource(demo_run.home) as source:
        outcome = replay_ledger(
            source,
            ReplayConfig(stores=demo_run.home / "stores"),
            now=datetime.now().astimezone(),
        )
    report = outcome.report
    assert report.findings == []
    events = sum(demo_run.report.decisions.values())
    assert report.access["events"] == events
    assert len(outcome.events) == events
    found = [
        entry
        for t in ledger_transactions(demo_run.home)
        if t.function == "RequestAccess" and t.valid
        for entry in ((t.event() or {})["granted"] + (t.event() or {})["denied"])
        if entry.get("reason") != "record_not_found"
    ]
    assert report.access["decisions_rechecked"] == len(found) > 0
