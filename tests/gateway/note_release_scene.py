"""A live gateway where the Audit custodian releases note keys on demand (support, no tests).

One break-glass access about one person leaves three notes off-chain: the
physician's justification, the person's contest reason, the auditor's review
note. The person's citizen credentials are bound at different moments:

* ``citizen.c1`` before any note: every note is sealed to it when stored;
* ``citizen.n1`` after the justification, before the contest: the contest
  reason and review note are sealed to it when stored, the justification not;
* ``citizen.c2`` after all three: nothing is sealed to it when stored.

``citizen.c3`` is bound to another person. Used by
``tests/gateway/test_note_releases.py`` and ``tests/audit/test_note_releases.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crypto.consortium import Consortium, DemoIdentity, issue_identity
from crypto.identity import CITIZEN_ROLE, IdentityKind
from gateway.client import Client
from gateway.service.releases import note_release_log_path
from gateway.settings import GatewaySettings
from tests.gateway.client.people import new_person, record
from tests.gateway.test_app_support import (
    LiveGateway,
    ShiftedClock,
    SignedClient,
    copy_home,
)

PHYSICIAN = "officer.health.sz2"
SETTLEMENT = "officer.health.sz1"
AUDITOR = "auditor.audit.sz1"
CIVIL = "registrar.civilaffairs.sz1"
#: The extra citizen credential this scene issues (bound between two notes).
BETWEEN = "citizen.n1"
TEXTS = {
    "justification": "Bewusstlos eingeliefert; 患者昏迷, no relative reachable.",
    "contest_reason": "I was never in that emergency ward.",
    "review_note": "Emergency confirmed by the duty log of ward 3.",
}


@dataclass(frozen=True)
class NoteScene:
    home: Path
    gateway: LiveGateway
    consortium: Consortium
    person: str
    subject: str
    event_id: str
    #: Transaction that committed each note, by kind (justification, contest_reason, review_note).
    note_tx: dict[str, str]
    #: Block of that transaction, by kind.
    note_blocks: dict[str, int]
    #: An access about the same person that carries no note.
    plain_event_id: str
    #: Block of the ``RegisterCitizen`` of ``citizen.c2`` (after every note).
    c2_bound_block: int

    @property
    def log(self) -> Path:
        """``HOME/custodians/Audit/note-releases.jsonl``."""
        return note_release_log_path(self.home, "Audit")

    def lines(self) -> list[dict[str, Any]]:
        """The note-release log's lines so far."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def client(self, name: str) -> SignedClient:
        """A raw signing HTTP client (answers are inspected as they come)."""
        return SignedClient(self.gateway.url, self.consortium.identity(name), self.gateway.clock)

    def sdk(self, name: str) -> Client:
        return Client.from_home(self.home, name, gateway_url=self.gateway.url)


def _issue_citizen(home: Path, name: str) -> None:
    authority = Consortium.load(home).certificate_authority("CivilAffairs")
    spec = DemoIdentity(name, "CivilAffairs", IdentityKind.CITIZEN, {"role": CITIZEN_ROLE})
    issue_identity(home, authority, spec, datetime.now(UTC))


@contextmanager
def note_release_scene(demo_home: Path, root: Path) -> Iterator[NoteScene]:
    """Serve a copy of the demo home and play the story above; the gateway runs in the block."""
    home = copy_home(demo_home, root)
    _issue_citizen(home, BETWEEN)  # its X25519 key is registered when the gateway starts
    consortium = Consortium.load(home)
    with LiveGateway(GatewaySettings(home=home), ShiftedClock()) as gateway:
        scene = _play(home, gateway, consortium)
        yield scene


def _bind(civil: Client, consortium: Consortium, name: str, subject: str) -> int:
    pem = consortium.identity(name).cert_pem().decode()
    return civil.register_citizen(pem, subject).block_number


def _play(home: Path, gateway: LiveGateway, consortium: Consortium) -> NoteScene:
    url = gateway.url
    person, other = new_person(), new_person()
    with Client.from_home(home, "registrar.health.sz1", gateway_url=url) as registrar:
        subject = registrar.put_record("health_record", person, record("health_record", person))
    with Client.from_home(home, "registrar.tax.sz1", gateway_url=url) as registrar:
        elsewhere = registrar.put_record("tax_record", other, record("tax_record", other))
    with (
        Client.from_home(home, CIVIL, gateway_url=url) as civil,
        Client.from_home(home, PHYSICIAN, gateway_url=url) as physician,
        Client.from_home(home, "citizen.c1", gateway_url=url) as citizen,
        Client.from_home(home, AUDITOR, gateway_url=url) as auditor,
        Client.from_home(home, SETTLEMENT, gateway_url=url) as settlement,
    ):
        _bind(civil, consortium, "citizen.c1", subject.subject)
        _bind(civil, consortium, "citizen.c3", elsewhere.subject)
        access = physician.request_access(
            person,
            ["health_record"],
            "T3",
            "emergency_care",
            emergency=True,
            justification=TEXTS["justification"],
        )
        assert access.decision == "granted"
        _bind(civil, consortium, BETWEEN, subject.subject)
        contest = citizen.contest(access.event_id, TEXTS["contest_reason"])
        review = auditor.review(access.event_id, "justified", TEXTS["review_note"])
        c2_block = _bind(civil, consortium, "citizen.c2", subject.subject)
        plain = settlement.request_access(person, ["health_record"], "T1", "medical_settlement")
    return NoteScene(
        home=home,
        gateway=gateway,
        consortium=consortium,
        person=person,
        subject=subject.subject,
        event_id=access.event_id,
        note_tx={
            "justification": access.event_id,
            "contest_reason": contest.tx_id,
            "review_note": review.tx_id,
        },
        note_blocks={
            "justification": access.block_number,
            "contest_reason": contest.block_number,
            "review_note": review.block_number,
        },
        plain_event_id=plain.event_id,
        c2_bound_block=c2_block,
    )
