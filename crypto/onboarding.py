"""Onboard one more department into an existing consortium home.

:func:`add_department` creates the department's root CA, MSP, first
identities and custodian key, and adds the organisation to ``network.yaml``.
The material is built aside and moved in, and ``network.yaml`` is rewritten
last (temporary file + rename), so a failure never leaves a half-added
organisation in the topology. Making the department a member of the channel
and of the contract is the operator's next step (``docs/operations.md``).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from crypto.consortium import (
    CHENGDU,
    NETWORK_FILE,
    SHENZHEN,
    DemoIdentity,
    OrgInfo,
    create_org,
    dump_topology,
    issue_identity,
    org_dir,
    orgs_of,
    read_topology,
    require_home,
)
from crypto.errors import AccessLedgerError
from crypto.identity import IdentityKind, officer_attributes

#: Names a new department (and its MSP ID) may take: an ASCII letter, then letters and
#: digits, at most 64. That is the intersection of every place the name travels: Fabric
#: config keys (``[a-zA-Z0-9.\-_]``), Fabric policy principals (``'<MSPID>.peer'``, no
#: underscore), the contract's department names (no dot or dash) and, lowercased, DNS
#: labels and identity names (``peer0.<org>``).
DEPARTMENT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
#: Clearance of the officer a new department starts with (most demo officers hold 2).
NEW_OFFICER_CLEARANCE = 2
#: Peers listen on 7051, 8051, ...: a new department takes the first free port of the series.
_PEER_PORT_BASE = 7051
_PEER_PORT_STEP = 1000
_DEFAULT_PEER_HOST = "127.0.0.1"
_REGION_TAGS = {SHENZHEN: "sz", CHENGDU: "cd"}
_DOMAIN_RE = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IMPLICIT_META_RE = re.compile(r"^\s*(ANY|ALL|MAJORITY)\s+[A-Za-z0-9_.-]+\s*$")
_OUT_OF_RE = re.compile(r"^\s*OutOf\(\s*([0-9]+)\s*,(.*)\)\s*$", re.DOTALL)
_QUOTED_PRINCIPAL_RE = re.compile(r"^\s*'([A-Za-z0-9.-]+\.[a-z]+)'\s*$")


def department_officer_name(org: str, region: str) -> str:
    """The officer :func:`add_department` issues: ``officer.<org>.sz1`` in the roster's style.

    The demo regions keep their short tags (``sz``, ``cd``); any other region is
    named by its GB/T 2260 code (``officer.transport.330100-1``).
    """
    tag = _REGION_TAGS.get(region)
    return f"officer.{org.lower()}.{tag}1" if tag else f"officer.{org.lower()}.{region}-1"


def department_roster(org: str, *, region: str, officer_role: str) -> list[DemoIdentity]:
    """The identities a new department starts with: its peer, its admin and one officer."""
    slug = org.lower()
    attrs = officer_attributes(role=officer_role, region=region, clearance=NEW_OFFICER_CLEARANCE)
    return [
        DemoIdentity(f"peer0.{slug}", org, IdentityKind.PEER),
        DemoIdentity(f"admin.{slug}", org, IdentityKind.ADMIN),
        DemoIdentity(department_officer_name(org, region), org, IdentityKind.OFFICER, attrs),
    ]


def _refuse(message: str, code: str) -> AccessLedgerError:
    return AccessLedgerError(message, code=code)


def _with_endorser(rule: str, msp_id: str) -> str:
    """``rule`` with ``'<msp_id>.peer'`` added as one more endorser of its ``OutOf``.

    An implicit-meta rule (``MAJORITY Endorsement``) already covers every
    organisation of the channel and is kept as it is. Anything but a flat
    ``OutOf(n, 'A.peer', ...)`` is left to the operator: there is no single
    right way to extend an arbitrary expression.
    """
    if _IMPLICIT_META_RE.match(rule):
        return rule
    match = _OUT_OF_RE.match(rule)
    quoted = (
        [_QUOTED_PRINCIPAL_RE.match(part) for part in match.group(2).split(",")] if match else []
    )
    if match is None or not all(quoted):
        raise _refuse(
            f"cannot add {msp_id} to the endorsement_policy {rule!r}: only a flat "
            "OutOf(n, 'MSP.role', ...) or an implicit-meta rule can be extended; edit it by hand",
            "endorsement_policy_unsupported",
        )
    principals = [m.group(1) for m in quoted if m is not None] + [f"{msp_id}.peer"]
    return f"OutOf({match.group(1)}, {', '.join(repr(p) for p in principals)})"


def _next_peer_address(topology: Mapping[str, Any]) -> str:
    """``host:port`` on the first free port of the 7051, 8051, ... series."""
    addresses = [str(topology["orderer"].get("address", ""))]
    for organization in topology["organizations"]:
        addresses.extend(str(peer.get("address", "")) for peer in organization.get("peers") or ())
    used = {a.rpartition(":")[2] for a in addresses}
    peer_hosts = [a.rpartition(":")[0] for a in addresses[1:] if ":" in a]
    host = peer_hosts[-1] if peer_hosts else _DEFAULT_PEER_HOST
    for port in range(_PEER_PORT_BASE, 65536, _PEER_PORT_STEP):
        if str(port) not in used:
            return f"{host}:{port}"
    raise _refuse("no free peer port is left in the 7051, 8051, ... series", "no_free_port")


#: Marks an organisation folder moved in by :func:`add_department` before ``network.yaml``
#: names it; removed once it does. Found with the organisation absent from the topology,
#: it can only be the leftover of an interrupted onboarding.
_IN_PROGRESS = ".onboarding-in-progress"


def _clear_interrupted(home: Path, topology: Mapping[str, Any], org: str) -> None:
    """Remove what an interrupted :func:`add_department` of ``org`` left, so it can run again.

    Only this function's own traces go: its staging folders, and an
    organisation folder carrying the in-progress marker that ``network.yaml``
    does not name. A folder without the marker is someone else's and is
    refused later (``org_dir_exists``).
    """
    for staging in home.glob(f".add-{org}-*"):
        shutil.rmtree(staging, ignore_errors=True)
    folder = org_dir(home, org)
    named = {str(entry.get("name")) for entry in topology.get("organizations", [])}
    if org not in named and (folder / _IN_PROGRESS).is_file():
        shutil.rmtree(folder)


def _check_new_department(
    home: Path,
    topology: Mapping[str, Any],
    org: str,
    msp_id: str,
    domain: str,
    names: set[str],
) -> None:
    if not DEPARTMENT_NAME_RE.match(org):
        raise _refuse(
            f"organisation name {org!r} must be an ASCII letter followed by letters and digits "
            "(at most 64)",
            "invalid_org_name",
        )
    if not DEPARTMENT_NAME_RE.match(msp_id):
        raise _refuse(
            f"MSP ID {msp_id!r} must be an ASCII letter followed by letters and digits "
            "(at most 64)",
            "invalid_msp_id",
        )
    if len(domain) > 253 or not _DOMAIN_RE.match(domain):
        raise _refuse(f"{domain!r} is not a DNS domain", "invalid_domain")
    existing = orgs_of(topology, home / NETWORK_FILE)
    # Names and MSP IDs share one namespace in the topology; identity names and
    # directories derive from the lowercased name, so compare without case.
    taken = {key.lower(): spec for spec in existing for key in (spec.name, spec.msp_id)}
    if org.lower() in taken:
        raise _refuse(f"organisation {taken[org.lower()].name} already exists", "org_exists")
    if msp_id.lower() in taken:
        holder = taken[msp_id.lower()].name
        raise _refuse(f"MSP ID {msp_id} is already used by {holder}", "msp_id_exists")
    if any(spec.domain.lower() == domain.lower() for spec in existing):
        raise _refuse(f"domain {domain} is already used by another organisation", "domain_exists")
    used = {p.name for p in (home / "orgs").glob("*/identities/*")}
    clash = sorted(used & names)
    if clash:
        raise _refuse(f"identity {clash[0]} already exists in {home}", "identity_exists")
    if org_dir(home, org).exists():
        raise _refuse(
            f"{org_dir(home, org)} exists but is not in {NETWORK_FILE} (left over from an "
            "interrupted onboarding?); remove it and try again",
            "org_dir_exists",
        )


@contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    """Serialise writers of ``network.yaml`` (two onboardings at once would lose one).

    The lock is on the home directory itself, so no lock file is left behind.
    """
    fd = os.open(home, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _replace_file(path: Path, text: str) -> None:
    """Write ``path`` through a synced temporary file and a rename: old or new, never half."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def add_department(
    home: Path,
    *,
    org: str,
    msp_id: str | None = None,
    domain: str | None = None,
    region: str,
    officer_role: str,
    now: datetime,
) -> OrgInfo:
    """Onboard a department into the home at ``home`` and return its :class:`OrgInfo`.

    Creates the department's root CA, its MSP (Fabric layout, NodeOUs), the
    identities of :func:`department_roster` (the officer with an X25519 key)
    and its custodian key; then ``network.yaml`` gains the organisation, with
    ``peer0`` on the next free port, and the endorsement policy gains its peer.
    ``msp_id`` defaults to ``<org>MSP`` and ``domain`` to ``<org>.gov.example``.

    Refuses (:class:`AccessLedgerError`, before writing anything) an invalid
    name (``invalid_org_name``, ``invalid_msp_id``, ``invalid_domain``,
    ``invalid_attributes``), an organisation, MSP ID or domain already in the
    home (``org_exists``, ``msp_id_exists``, ``domain_exists``) and an
    endorsement policy it cannot extend. The material is built in a staging
    directory and moved in; ``network.yaml`` is replaced last by a rename, so
    after a failure the topology does not name the department.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    home = Path(home).absolute()
    require_home(home)
    msp_id = f"{org}MSP" if msp_id is None else msp_id
    domain = f"{org.lower()}.gov.example" if domain is None else domain
    roster = department_roster(org, region=region, officer_role=officer_role)
    with _home_lock(home):
        topology = read_topology(home / NETWORK_FILE)
        _clear_interrupted(home, topology, org)
        _check_new_department(home, topology, org, msp_id, domain, {p.name for p in roster})
        spec = OrgInfo(name=org, msp_id=msp_id, domain=domain, msp_dir=f"orgs/{org}/msp")
        entry = {
            "name": spec.name,
            "msp_id": spec.msp_id,
            "domain": spec.domain,
            "msp_dir": spec.msp_dir,
            "peers": [{"identity": roster[0].name, "address": _next_peer_address(topology)}],
        }
        updated = {**topology, "organizations": [*topology["organizations"], entry]}
        updated["endorsement_policy"] = _with_endorser(str(topology["endorsement_policy"]), msp_id)
        staging = Path(tempfile.mkdtemp(dir=home, prefix=f".add-{org}-"))
        try:
            ca = create_org(staging, spec, now)
            for person in roster:
                issue_identity(staging, ca, person, now)
            (org_dir(staging, org) / _IN_PROGRESS).write_text("onboarding\n", encoding="utf-8")
            (home / "orgs").mkdir(exist_ok=True)
            os.rename(org_dir(staging, org), org_dir(home, org))
            try:
                _replace_file(home / NETWORK_FILE, dump_topology(updated))
            except BaseException:
                shutil.rmtree(org_dir(home, org), ignore_errors=True)
                raise
            (org_dir(home, org) / _IN_PROGRESS).unlink()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return spec
