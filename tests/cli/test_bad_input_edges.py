"""I7 at the edges: odd payload files, unwritable outputs, broken homes, busy ports, bugs.

Each case is an input a reviewer found to end in a stack trace (or to be
misreported): every one must now be exactly one ``error [<code>]: ...`` line
on stderr and a non-zero exit. Commands run in-process through Typer's
runner; the last-resort handler of :func:`cli.main.main` is exercised
through ``main`` itself, as the console script runs it.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import cli.version
from cli import main as cli_main
from cli.main import app, main
from cli.operator import write_policy_files
from crypto.errors import AccessLedgerError
from policies.bundle import PolicyBundle
from tests.audit.conftest import FIXTURE_LEDGER
from tests.gateway.client.people import new_person, record

REGISTRAR = "registrar.publicsecurity.sz1"
#: Nothing listens here: a request that got as far as the network would fail as unreachable.
NO_GATEWAY = "http://127.0.0.1:1"
LINE = re.compile(r"error \[(?P<code>[a-z0-9_]+)\]: (?P<message>.+)")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(
        env={"ACCESSLEDGER_HOME": None, "ACCESSLEDGER_GATEWAY_URL": None, "COLUMNS": "200"}
    )


def one_error(runner: CliRunner, *args: str) -> tuple[str, str]:
    """Run the CLI; require exit 1 and one ``error [code]: message`` line; return both parts."""
    return error_line(runner.invoke(app, list(args)))


def error_line(result: Result) -> tuple[str, str]:
    """``(code, message)`` of a run that ended in exactly one error line and exit 1."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    match = LINE.fullmatch(lines[0])
    assert match is not None, lines[0]
    return match["code"], match["message"]


@pytest.fixture
def home(demo_home: Path, tmp_path: Path) -> Path:
    """A private copy of the demo home (some cases break its files)."""
    target = tmp_path / "home"
    shutil.copytree(demo_home, target)
    return target


# -- payload files (record put) -------------------------------------------------------------


def _put(runner: CliRunner, demo_home: Path, payload: Path) -> tuple[str, str]:
    return one_error(
        runner, "record", "put", "--as", REGISTRAR, "--type", "residence_permit",
        "--subject", new_person(), "--file", str(payload), "--home", str(demo_home),
        "--gateway", NO_GATEWAY,
    )  # fmt: skip


def test_a_payload_with_a_lone_surrogate_is_refused_by_the_sdk(
    runner: CliRunner, demo_home: Path, tmp_path: Path
) -> None:
    fields = record("residence_permit", new_person())
    text = json.dumps(fields).replace('"holder_name": "', '"holder_name": "\\ud800', 1)
    assert "\\ud800" in text
    payload = tmp_path / "surrogate.json"
    payload.write_text(text, encoding="utf-8")
    code, message = _put(runner, demo_home, payload)
    # Refused before anything is sent: not "unreachable", though no gateway listens.
    assert code == "request_invalid"
    assert "fields.holder_name" in message
    assert "surrogate" in message


def test_a_payload_nested_too_deep_to_parse_is_one_line(
    runner: CliRunner, demo_home: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "deep.json"
    payload.write_text('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}", encoding="utf-8")
    code, message = _put(runner, demo_home, payload)
    assert code == "payload_too_deep"
    assert str(payload) in message


def test_a_payload_with_a_duplicated_member_is_refused(
    runner: CliRunner, demo_home: Path, tmp_path: Path
) -> None:
    fields = record("residence_permit", new_person())
    text = json.dumps(fields)[:-1] + ', "holder_name": "x"}'
    payload = tmp_path / "dup.json"
    payload.write_text(text, encoding="utf-8")
    code, message = _put(runner, demo_home, payload)
    assert code == "payload_duplicate_member"
    assert "'holder_name'" in message
    assert str(payload) in message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_payload_with_a_non_json_number_is_refused(
    runner: CliRunner, demo_home: Path, tmp_path: Path, constant: str
) -> None:
    payload = tmp_path / "nan.json"
    payload.write_text('{"valid_to": ' + constant + "}", encoding="utf-8")
    code, message = _put(runner, demo_home, payload)
    assert code == "payload_not_json"
    assert constant in message


# -- audit options ---------------------------------------------------------------------------


def test_an_unknown_time_zone_is_an_input_error(runner: CliRunner) -> None:
    code, message = one_error(
        runner, "audit", "replay", "--export", str(FIXTURE_LEDGER), "--timezone", "Mars/Base"
    )
    assert code == "audit_input_invalid"
    assert "Mars/Base" in message


@pytest.mark.parametrize("tip", ["zz", "00" * 31, "0" * 65, "../etc"])
def test_a_malformed_expected_tip_is_an_input_error_not_a_failed_audit(
    runner: CliRunner, tip: str
) -> None:
    result = runner.invoke(
        app, ["audit", "replay", "--export", str(FIXTURE_LEDGER), "--expect-tip", tip]
    )
    assert "FAILED" not in result.stdout
    code, message = error_line(result)
    assert code == "audit_input_invalid"
    assert "--expect-tip" in message


@pytest.mark.parametrize("option", ["--key-releases", "--note-releases"])
def test_a_file_that_is_not_a_release_log_is_an_input_error(
    runner: CliRunner, tmp_path: Path, option: str
) -> None:
    wrong = tmp_path / "good.json"
    wrong.write_text(json.dumps(record("residence_permit", new_person())), encoding="utf-8")
    code, message = one_error(
        runner, "audit", "replay", "--export", str(FIXTURE_LEDGER), option, str(wrong)
    )
    assert code == "audit_input_invalid"
    assert str(wrong) in message
    assert "release log" in message


def test_an_unreadable_release_log_is_an_input_error(runner: CliRunner, tmp_path: Path) -> None:
    code, message = one_error(
        runner, "audit", "replay", "--export", str(FIXTURE_LEDGER),
        "--key-releases", str(tmp_path / "missing.jsonl"),
    )  # fmt: skip
    assert code == "audit_input_invalid"
    assert "missing.jsonl" in message


# -- output paths ----------------------------------------------------------------------------


@pytest.fixture
def blocked(tmp_path: Path) -> Path:
    """A path that cannot be created: its parent is a regular file."""
    parent = tmp_path / "a-file"
    parent.write_text("not a directory\n")
    return parent / "out"


def test_an_unwritable_replay_report_names_its_path(runner: CliRunner, blocked: Path) -> None:
    code, message = one_error(
        runner, "audit", "replay", "--export", str(FIXTURE_LEDGER), "--report", str(blocked)
    )
    assert code == "output_unwritable"
    assert str(blocked) in message


@pytest.mark.parametrize("export_format", ["csv", "fhir"])
def test_an_unwritable_audit_export_names_its_path(
    runner: CliRunner, blocked: Path, export_format: str
) -> None:
    code, message = one_error(
        runner, "audit", "export", "--format", export_format,
        "--export", str(FIXTURE_LEDGER), "--out", str(blocked),
    )  # fmt: skip
    assert code == "output_unwritable"
    assert str(blocked) in message


def test_unwritable_network_artefacts_name_their_path(
    runner: CliRunner, demo_home: Path, blocked: Path
) -> None:
    code, message = one_error(
        runner, "network", "artefacts", "--home", str(demo_home), "--out", str(blocked)
    )
    assert code == "output_unwritable"
    assert str(blocked) in message


def test_an_unwritable_bench_ledger_names_its_path(runner: CliRunner, blocked: Path) -> None:
    code, message = one_error(
        runner, "bench", "replay", "--transactions", "4", "--per-block", "2",
        "--workers", "0", "--out", str(blocked),
    )  # fmt: skip
    assert code == "output_unwritable"
    assert str(blocked) in message


@pytest.mark.parametrize("where", ["under-a-file", "under-dev-null"])
def test_init_where_no_home_can_be_made_names_the_home(
    runner: CliRunner, blocked: Path, where: str
) -> None:
    target = blocked if where == "under-a-file" else Path("/dev/null/home")
    code, message = one_error(runner, "init", "--home", str(target))
    assert code == "home_unwritable"
    assert str(target) in message


def test_policy_files_into_an_unwritable_directory_name_it(blocked: Path) -> None:
    with pytest.raises(AccessLedgerError) as caught:
        write_policy_files(PolicyBundle.load_default(), blocked)
    assert caught.value.code == "output_unwritable"
    assert str(blocked) in caught.value.message


def test_policy_files_are_written_when_the_directory_is_writable(tmp_path: Path) -> None:
    bundle = PolicyBundle.load_default()
    write_policy_files(bundle, tmp_path / "policies")
    written = {p.name for p in (tmp_path / "policies").iterdir()}
    assert written == {"accessledger.cedarschema", *bundle.policies}


# -- a broken network.yaml -------------------------------------------------------------------

HOME_COMMANDS = [
    ("identities",),
    ("ledger", "info"),
    ("network", "artefacts", "--out", "{tmp}/artefacts"),
    ("audit", "replay", "--workers", "0"),
    ("record", "put", "--as", REGISTRAR, "--type", "residence_permit", "--subject",
     "11010519491231002X", "--file", "{tmp}/payload.json", "--gateway", NO_GATEWAY),
    ("serve", "--port", "1"),
]  # fmt: skip


def _home_command(command: tuple[str, ...], home: Path, tmp_path: Path) -> list[str]:
    (tmp_path / "payload.json").write_text("{}")
    return [part.format(tmp=tmp_path) for part in command] + ["--home", str(home)]


@pytest.mark.parametrize("command", HOME_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_network_yaml_that_is_not_utf8_is_one_line(
    runner: CliRunner, home: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    network = home / "network.yaml"
    network.write_bytes(network.read_bytes() + b"# \xff\xfe\n")
    code, message = one_error(runner, *_home_command(command, home, tmp_path))
    assert code == "invalid_topology"
    assert str(network) in message
    assert "UTF-8" in message


@pytest.mark.parametrize("command", HOME_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_invalid_yaml_is_one_line_with_its_position(
    runner: CliRunner, home: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    network = home / "network.yaml"
    network.write_text("version: 1\n  channel: [\n", encoding="utf-8")
    code, message = one_error(runner, *_home_command(command, home, tmp_path))
    assert code == "invalid_topology"
    assert str(network) in message
    assert "line 2, column" in message


# -- serve -----------------------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_serve_on_a_busy_port_says_so_before_announcing(
    runner: CliRunner, home: Path, busy_port: int
) -> None:
    result = runner.invoke(app, ["serve", "--home", str(home), "--port", str(busy_port)])
    assert result.stdout == ""
    code, message = error_line(result)
    assert code == "port_in_use"
    assert message == f"127.0.0.1:{busy_port} is already in use"


def test_serve_on_a_host_that_does_not_resolve_is_one_line(runner: CliRunner, home: Path) -> None:
    code, message = one_error(
        runner, "serve", "--home", str(home), "--host", "999.1.1.1", "--port", "8733"
    )
    assert code == "host_invalid"
    assert "999.1.1.1" in message


# -- the last resort -------------------------------------------------------------------------


def _crash(*_args: object) -> str:
    raise RuntimeError("an unforeseen bug\nspread over two lines")


def _main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["accessledger", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


def test_an_unexpected_exception_is_one_line_and_a_distinct_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ACCESSLEDGER_DEBUG", raising=False)
    monkeypatch.setattr(cli.version, "_dist_version", _crash)
    status = _main(monkeypatch, "version")
    captured = capsys.readouterr()
    assert status == getattr(cli_main, "EXIT_INTERNAL", None)
    assert status not in (0, 1, 2)
    assert captured.out == ""
    assert "Traceback" not in captured.err
    [line] = [line for line in captured.err.splitlines() if line.strip()]
    match = LINE.fullmatch(line)
    assert match is not None, line
    assert match["code"] == "internal_error"
    assert match["message"].startswith("RuntimeError: an unforeseen bug spread over two lines")
    assert "ACCESSLEDGER_DEBUG=1" in match["message"]


def test_debug_switch_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACCESSLEDGER_DEBUG", "1")
    monkeypatch.setattr(cli.version, "_dist_version", _crash)
    status = _main(monkeypatch, "version")
    captured = capsys.readouterr()
    assert status == getattr(cli_main, "EXIT_INTERNAL", None)
    assert "Traceback" in captured.err
    assert "RuntimeError: an unforeseen bug" in captured.err


def test_deliberate_errors_keep_exit_1_under_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status = _main(monkeypatch, "identities", "--home", str(tmp_path / "missing"))
    assert status == 1
    assert capsys.readouterr().err.startswith("error [home_missing]: ")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_behind_stdout_is_one_line(demo_home: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-c", "from cli.main import main; main()", "identities", "--json",
             "--home", str(demo_home)],
            stdout=full, stderr=subprocess.PIPE, text=True, check=False,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "error [io_error]: I/O failed: No space left on device\n"
