"""I7 (CLI): bad input gets one readable error line, a non-zero exit, and changes nothing.

Every case runs the installed ``.venv/bin/accessledger`` in a child process,
against a copy of the demo home served by ``accessledger serve`` (so the
gateway's own refusals come back through the SDK too) or against a home that
does not exist. For each: exit status 1, nothing on stdout, exactly one
non-empty line on stderr of the form ``error [<code>]: <message>`` with the
expected stable code, no traceback; the missing home is still missing, and
the served ledger's height and off-chain stores are unchanged (heights only
grow, so one comparison around the whole batch covers every case).

Usage errors (unknown command, missing or out-of-range option) are one line
too, with exit status 2, and a command that draws a progress bar on a
terminal draws none when stderr is captured, so its error is still one line.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gateway.client.people import record
from tests.invariants.seeding import DemoRun
from tests.invariants.served import ACCESSLEDGER, ServedHome, cli_env

VALID_NUMBER = "11010519491231002X"
OFFICER = "officer.education.sz1"
REGISTRAR = "registrar.publicsecurity.sz1"


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    code: str
    served: bool = True  # append --home/--gateway of the served copy


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def get(
    id: str, code: str, *, subject: str = VALID_NUMBER, tier: str = "1", who: str = OFFICER,
    purpose: str = "school_enrolment", types: tuple[str, ...] = ("residence_permit",),
    extra: tuple[str, ...] = (),
) -> Case:  # fmt: skip
    args = ["record", "get", "--as", who, "--subject", subject, "--tier", tier]
    args += ["--purpose", purpose, *(a for t in types for a in ("--type", t)), *extra]
    return Case(id, tuple(args), code)


def put(
    id: str, code: str, file: str, *, subject: str = VALID_NUMBER,
    record_type: str = "residence_permit", who: str = REGISTRAR,
) -> Case:  # fmt: skip
    args = ("record", "put", "--as", who, "--type", record_type, "--subject", subject)
    return Case(id, (*args, "--file", file), code)


MISSING_HOME = "{missing}"  # replaced by a path that does not exist

CASES = [
    # A home that does not exist, for every command that reads one.
    Case("identities/no-home", ("identities", "--home", MISSING_HOME), "home_missing", False),
    Case("ledger-info/no-home", ("ledger", "info", "--home", MISSING_HOME), "invalid_topology",
         False),
    Case("ledger-export/no-home",
         ("ledger", "export", "--home", MISSING_HOME, "--out", "{tmp}/x.bin"), "invalid_topology",
         False),
    Case("audit-replay/no-home", ("audit", "replay", "--home", MISSING_HOME),
         "audit_source_unavailable", False),
    Case("demo/no-home", ("demo", "--home", MISSING_HOME, "--people", "2"), "home_missing", False),
    Case("serve/no-home", ("serve", "--home", MISSING_HOME, "--port", "1"), "home_missing", False),
    Case("citizen/no-home",
         ("citizen", "accesses", "--as", "citizen.c1", "--home", MISSING_HOME), "home_missing",
         False),
    Case("record-get/no-home",
         ("record", "get", "--as", OFFICER, "--subject", VALID_NUMBER, "--tier", "1", "--purpose",
          "school_enrolment", "--type", "residence_permit", "--home", MISSING_HOME),
         "home_missing", False),
    Case("network-artefacts/no-home",
         ("network", "artefacts", "--home", MISSING_HOME, "--out", "{tmp}/artefacts"),
         "invalid_topology", False),
    # Unknown identities.
    get("record-get/unknown-identity", "unknown_identity", who="nobody"),
    put("record-put/unknown-identity", "unknown_identity", "{tmp}/permit.json", who="nobody"),
    Case("citizen/unknown-identity", ("citizen", "accesses", "--as", "nobody"), "unknown_identity"),
    # Bad identity numbers and pseudonyms.
    get("record-get/bad-check-character", "identity_number_invalid", subject="110105194912310021"),
    put("record-put/short-number", "identity_number_invalid", "{tmp}/permit.json", subject="12345"),
    get("record-get/bad-pseudonym", "subject_invalid", subject="ps1:notapseudonym"),
    # Malformed payload files.
    put("record-put/not-json", "payload_not_json", "{tmp}/broken.json"),
    put("record-put/json-array", "payload_not_object", "{tmp}/array.json"),
    put("record-put/not-utf8", "payload_unreadable", "{tmp}/latin1.json"),
    put("record-put/fields-invalid", "record_invalid", "{tmp}/incomplete.json"),
    # Unknown record types, purposes, departments; bad tiers.
    put("record-put/unknown-type", "unknown_record_type", "{tmp}/permit.json",
        record_type="alien_record"),
    get("record-get/unknown-type", "invalid_argument", types=("alien_record",)),
    get("record-get/unknown-purpose", "invalid_argument", purpose="curiosity"),
    get("record-get/tier-9", "tier_invalid", tier="9"),
    Case("citizen-consent/tier-5",
         ("citizen", "consent", "--as", "citizen.c1", "--grantee", "PublicSecurity", "--purpose",
          "points_hukou", "--type", "tax_record", "--max-tier", "5"), "tier_invalid"),
    Case("citizen-consent/unknown-department",
         ("citizen", "consent", "--as", "citizen.c1", "--grantee", "Nowhere", "--purpose",
          "points_hukou", "--type", "tax_record", "--max-tier", "2"), "invalid_argument"),
    # Refused by the contract: a registrar of another department (nothing stored off-chain).
    put("record-put/other-department", "not_owner_department", "{tmp}/permit.json",
        who="registrar.hrss.sz1"),
]  # fmt: skip


def _files(tmp: Path) -> None:
    (tmp / "permit.json").write_text(
        json.dumps(record("residence_permit", VALID_NUMBER), ensure_ascii=False), encoding="utf-8"
    )
    (tmp / "broken.json").write_text('{"holder_name": "李', encoding="utf-8")
    (tmp / "array.json").write_text("[1, 2]", encoding="utf-8")
    (tmp / "latin1.json").write_bytes('{"holder_name": "José"}'.encode("latin-1"))
    (tmp / "incomplete.json").write_text(json.dumps({"status": "valid"}), encoding="utf-8")


def _expand(args: tuple[str, ...], *, tmp: Path, home: Path, missing: Path) -> list[str]:
    return [
        a.replace(MISSING_HOME, str(missing))
        .replace("{tmp}", str(tmp))
        .replace("{home}", str(home))
        for a in args
    ]


def _run(args: list[str], cwd: Path) -> Outcome:
    done = subprocess.run(
        [str(ACCESSLEDGER), *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def _blob_counts(home: Path) -> dict[str, int]:
    counts = {}
    for path in sorted((home / "stores").glob("*.sqlite")):
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
            (counts[path.stem],) = conn.execute("SELECT COUNT(*) FROM blob").fetchone()
    return counts


@dataclass
class Batch:
    outcomes: dict[str, Outcome]
    heights: tuple[int, int]
    blobs: tuple[dict[str, int], dict[str, int]]
    missing: Path
    served: ServedHome
    tmp: Path


@pytest.fixture(scope="module")
def batch(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    root = tmp_path_factory.mktemp("cli-bad-input")
    home = root / "home"
    shutil.copytree(demo_run.home, home)
    tmp = root / "files"
    tmp.mkdir()
    _files(tmp)
    missing = root / "no" / "such" / "home"
    served = ServedHome(home, root / "serve.log")
    try:
        heights = [served.height()]
        blobs = [_blob_counts(home)]

        def one(case: Case) -> tuple[str, Outcome]:
            args = _expand(case.args, tmp=tmp, home=home, missing=missing)
            if case.served:
                args += ["--home", str(home), "--gateway", served.url]
            return case.id, _run(args, cwd=tmp)

        with ThreadPoolExecutor(max_workers=3) as pool:
            outcomes = dict(pool.map(one, CASES))
        heights.append(served.height())
        blobs.append(_blob_counts(home))
        yield Batch(outcomes, (heights[0], heights[1]), (blobs[0], blobs[1]), missing, served, tmp)
    finally:
        served.stop()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_error_line_and_a_non_zero_exit(batch: Batch, case: Case) -> None:
    outcome = batch.outcomes[case.id]
    assert outcome.returncode == 1, outcome.stderr
    assert outcome.stdout == ""
    assert "Traceback" not in outcome.stderr
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith(f"error [{case.code}]: "), lines[0]
    assert len(lines[0]) > len(f"error [{case.code}]: ") + 10  # says what is wrong


def test_bad_input_changed_nothing(batch: Batch) -> None:
    assert batch.heights[1] == batch.heights[0]
    assert batch.blobs[1] == batch.blobs[0]
    assert not batch.missing.exists()
    assert not batch.missing.parent.exists()
    assert not (batch.tmp / "x.bin").exists()
    assert not (batch.tmp / "artefacts").exists()


# -- where the CLI breaks the one-line rule today ---------------------------------------------


def _exactly_one_error_line(outcome: Outcome) -> None:
    assert outcome.returncode != 0
    assert "Traceback" not in outcome.stderr
    assert outcome.stderr.count("\n") == 1, repr(outcome.stderr)
    assert outcome.stderr.startswith("error ["), repr(outcome.stderr)


USAGE_ERRORS = {
    "unknown-command": ["no-such-command"],
    "missing-option": ["record", "get", "--as", OFFICER],
    "out-of-range": ["demo", "--people", "0", "--home", "{missing}"],
}


@pytest.mark.parametrize("args", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_are_one_line(batch: Batch, args: list[str]) -> None:
    expanded = _expand(tuple(args), tmp=batch.tmp, home=batch.tmp, missing=batch.missing)
    _exactly_one_error_line(_run(expanded, cwd=batch.tmp))


PROGRESS_ERRORS = {
    "audit-replay/missing-export": ["audit", "replay", "--export", "{tmp}/none.bin"],
    "demo/already-seeded": ["demo", "--people", "2"],
}  # fmt: skip


@pytest.mark.parametrize("args", PROGRESS_ERRORS.values(), ids=PROGRESS_ERRORS.keys())
def test_errors_after_a_progress_bar_are_one_line(batch: Batch, args: list[str]) -> None:
    expanded = _expand(tuple(args), tmp=batch.tmp, home=batch.tmp, missing=batch.missing)
    if args[0] == "demo":
        expanded += ["--home", str(batch.served.home), "--gateway", batch.served.url]
    outcome = _run(expanded, cwd=batch.tmp)
    assert next(line for line in outcome.stderr.splitlines() if line.strip()).startswith("error [")
    _exactly_one_error_line(outcome)
