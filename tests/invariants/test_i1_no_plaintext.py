"""I1: no plaintext personal data on the ledger or in logs.

One demo run (tests/invariants/seeding.py) registers records about synthetic
migrants and acts out their accesses through the real SDK and gateway. The
plaintext it handed the gateway -- every person's name and 18-character
identity number, and every other personal value of their records (addresses,
phone numbers, employers, schools...), contest reasons and review notes --
must then appear nowhere in:

* any block (raw bytes, as stored and as exported);
* any file of the home: the SQLite ledger (blocks, world state, history, tx
  index), the off-chain stores (only ciphertexts), the key-release logs, the
  gateway's nonce cache -- the whole tree, byte for byte;
* the log output of every logger at DEBUG for the whole run.

Each value is searched as UTF-8, as a JSON ``\\uXXXX`` escape (either hex
case), and, for ASCII values, case-insensitively.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.demo.scenarios import EMERGENCY_NOTE
from policies.bundle import PolicyBundle
from tests.invariants.ledger import raw_blocks
from tests.invariants.seeding import DemoRun

_IDENTITY_NUMBER = re.compile(r"\d{17}[\dXx]")
_PHONE = re.compile(r"1\d{10}")


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)


def _is_personal(text: str) -> bool:
    """Free text (any non-ASCII), identity numbers and mobile numbers."""
    return (
        (not text.isascii() and len(text) >= 2)
        or _IDENTITY_NUMBER.fullmatch(text) is not None
        or _PHONE.fullmatch(text) is not None
    )


def _forms(text: str) -> list[bytes]:
    """The byte forms of ``text`` a careless writer could have produced."""
    if text.isascii():
        return [text.lower().encode("ascii")]
    escaped = json.dumps(text)[1:-1]  # \uXXXX with lowercase hex
    upper = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), escaped)
    return [text.encode("utf-8"), escaped.encode("ascii"), upper.encode("ascii")]


@dataclass(frozen=True)
class Needles:
    """The personal values to look for, and where each came from."""

    values: dict[str, str]  # value -> what it is

    def found_in(self, data: bytes) -> list[str]:
        lowered = data.lower()
        hits = []
        for value, what in self.values.items():
            haystack = lowered if value.isascii() else data
            if any(form in haystack for form in _forms(value)):
                hits.append(f"{what} {value!r}")
        return hits


def _public_text() -> bytes:
    """The default policy bundle (catalogue examples included): public, on the ledger by design."""
    return PolicyBundle.load_default().canonical_bytes()


@pytest.fixture(scope="module")
def needles(demo_run: DemoRun) -> Needles:
    values: dict[str, str] = {}
    for person in demo_run.people:
        values[person.name] = "name of a person"
        values[person.identity_number] = "identity number"
    for sent in demo_run.sent:
        if sent.body is None:
            continue
        for text in _leaves(sent.body):
            if _is_personal(text) and not text.startswith("ps1:"):
                values.setdefault(text, f"value sent to {sent.method} {sent.path}")
    values[EMERGENCY_NOTE] = "break-glass justification"
    public = _public_text()
    # Values that are also public catalogue text (an example job title, or a name that
    # happens to be a catalogue example such as 李明) prove nothing: they are on the
    # ledger by design. The people's generated names depend on the date, so allow a few.
    shared = {v for v in values if any(form in public for form in _forms(v))}
    assert not shared & {p.identity_number for p in demo_run.people}
    assert len(shared & {p.name for p in demo_run.people}) <= 2
    return Needles({v: what for v, what in values.items() if v not in shared})


def test_the_observed_run_sent_personal_data(demo_run: DemoRun, needles: Needles) -> None:
    """The search is not vacuous: the gateway really was given every person's data."""
    sent = json.dumps([s.body for s in demo_run.sent], ensure_ascii=False)
    for person in demo_run.people:
        assert person.name in sent
        assert person.identity_number in sent
    kinds = set(needles.values.values())
    assert any("/v1/records" in k for k in kinds)
    assert any("/v1/me/contests" in k for k in kinds), "a contest reason was sent"
    assert len(needles.values) > 3 * len(demo_run.people)


def test_no_block_holds_personal_data(demo_run: DemoRun, needles: Needles) -> None:
    blocks = raw_blocks(demo_run.home)
    assert len(blocks) > 5
    for number, data in enumerate(blocks):
        assert needles.found_in(data) == [], f"block {number}"


def _files(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_no_file_of_the_home_holds_personal_data(demo_run: DemoRun, needles: Needles) -> None:
    files = list(_files(demo_run.home))
    names = {p.relative_to(demo_run.home).as_posix() for p in files}
    # The places that matter are really there (and really searched).
    assert "ledger/accessledger.sqlite" in names
    assert {"stores/PublicSecurity.sqlite", "stores/Audit.sqlite"} <= names
    assert "custodians/PublicSecurity/releases.jsonl" in names
    for path in files:
        assert needles.found_in(path.read_bytes()) == [], path.relative_to(demo_run.home)


def test_no_log_line_holds_personal_data(demo_run: DemoRun, needles: Needles) -> None:
    text = demo_run.log_text
    # The capture saw the gateway's own loggers, not just silence.
    assert "accessledger.gateway.bootstrap" in text
    assert needles.found_in(text.encode("utf-8")) == []


def test_the_search_finds_what_it_looks_for(demo_run: DemoRun, needles: Needles) -> None:
    """Planted plaintext, in each form the search claims to cover, is found."""
    person = demo_run.people[0]
    planted = [
        json.dumps({"holder_name": person.name}, ensure_ascii=False).encode("utf-8"),
        json.dumps({"holder_name": person.name}).encode("ascii"),
        re.sub(
            r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), json.dumps(person.name)
        ).encode("ascii"),
        b"id=" + person.identity_number.lower().encode("ascii"),
    ]
    for data in planted:
        assert needles.found_in(b"\x00binary\xff" + data + b"\x01"), data
