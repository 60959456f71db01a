"""The consortium "home": every department's CA, MSPs, identities, keys and topology.

A home directory is what ``accessledger init`` creates and every other command
reads (see ``notes/interfaces.md`` for the layout)::

    network.yaml                      topology (orgs, peers, orderer, policy)
    consortium.secret                 pseudonym HMAC key (hex, 0600)
    orgs/<Org>/ca/                    root CA certificate and key (0600)
    orgs/<Org>/msp/                   organisation MSP (public)
    orgs/<Org>/identities/<name>/     one local MSP per identity, plus x25519.key
    orgs/<Org>/custodian/x25519.key   the department's key-custodian key

An identity's kind and attributes are read back from its certificate, never
from a side file, so the home cannot say one thing while the certificates say
another.

Onboarding a further department into an existing home is
:mod:`crypto.onboarding`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from crypto.ca import CertificateAuthority
from crypto.certificates import common_name, node_ou, read_attributes, validate_certificate
from crypto.errors import AccessLedgerError, CryptoError, os_error_reason
from crypto.identity import (
    AUDITOR_ROLE,
    CITIZEN_ROLE,
    NODE_OU_FOR_KIND,
    REGISTRAR_ROLE,
    Identity,
    IdentityKind,
    kind_of,
    officer_attributes,
)
from crypto.keyfiles import (
    generate_x25519_private_key,
    load_x25519_private_key,
    read_private_file,
    write_private_file,
    write_x25519_private_key,
    x25519_public_key,
)
from crypto.msp import read_ca_certs, read_local_msp, write_local_msp, write_org_msp

NETWORK_FILE = "network.yaml"
SECRET_FILE = "consortium.secret"  # noqa: S105 - a file name, not a secret
X25519_FILE = "x25519.key"

#: Kinds that receive payload keys and therefore hold an X25519 key.
ENCRYPTING_KINDS = frozenset({IdentityKind.OFFICER, IdentityKind.AUDITOR, IdentityKind.CITIZEN})

_KIND_ORDER = {kind: index for index, kind in enumerate(IdentityKind)}


#: Administrative division codes (GB/T 2260) of the demo's two regions.
SHENZHEN = "440300"  # destination city: where migrants live and work
CHENGDU = "510100"  # origin city: where their household registration is

#: The demo departments: (organisation name, DNS domain).
DEPARTMENTS: tuple[tuple[str, str], ...] = tuple(
    (name, f"{name.lower()}.gov.example")
    for name in (
        "PublicSecurity",
        "HRSS",
        "Housing",
        "Education",
        "Health",
        "Tax",
        "CivilAffairs",
        "Audit",
    )
)
ORDERER_ORG = "Orderer"
ORDERER_DOMAIN = "orderer.gov.example"
ORDERER_IDENTITY = "orderer0.orderer"

#: Demo officers: (name, org, role, region, clearance).
_OFFICERS: tuple[tuple[str, str, str, str, int], ...] = (
    # Roles are the ones the default Cedar policy set gives meaning to
    # (policies.vocabulary.ROLES); a role outside that list is denied by default.
    ("officer.publicsecurity.sz1", "PublicSecurity", "hukou_officer", SHENZHEN, 2),
    ("officer.publicsecurity.cd1", "PublicSecurity", "caseworker", CHENGDU, 2),
    ("officer.publicsecurity.sz2", "PublicSecurity", "investigator", SHENZHEN, 3),
    ("officer.hrss.sz1", "HRSS", "social_security_officer", SHENZHEN, 2),
    ("officer.hrss.cd1", "HRSS", "social_security_officer", CHENGDU, 2),
    ("officer.hrss.sz2", "HRSS", "labour_inspector", SHENZHEN, 2),
    ("officer.education.sz1", "Education", "enrolment_officer", SHENZHEN, 1),
    ("officer.education.cd1", "Education", "enrolment_officer", CHENGDU, 1),
    ("officer.health.sz1", "Health", "medical_settlement_officer", SHENZHEN, 3),
    ("officer.health.cd1", "Health", "medical_settlement_officer", CHENGDU, 2),
    ("officer.health.sz2", "Health", "emergency_physician", SHENZHEN, 3),
    ("officer.tax.sz1", "Tax", "caseworker", SHENZHEN, 2),
    ("officer.tax.cd1", "Tax", "caseworker", CHENGDU, 2),
)
#: Citizens holding a CivilAffairs credential; bound to a pseudonym on the ledger later.
_CITIZENS = ("citizen.c1", "citizen.c2", "citizen.c3")


@dataclass(frozen=True)
class DemoIdentity:
    """One identity ``init`` issues: who, which org, what kind, which attributes."""

    name: str
    org: str
    kind: IdentityKind
    attributes: Mapping[str, str] | None = field(default=None)


def demo_roster() -> list[DemoIdentity]:
    """Every identity of the demo consortium, in issuing order."""
    roster = [DemoIdentity(ORDERER_IDENTITY, ORDERER_ORG, IdentityKind.ORDERER)]
    roster.append(DemoIdentity("admin.orderer", ORDERER_ORG, IdentityKind.ADMIN))
    for org, _ in DEPARTMENTS:
        slug = org.lower()
        roster.append(DemoIdentity(f"peer0.{slug}", org, IdentityKind.PEER))
        roster.append(DemoIdentity(f"admin.{slug}", org, IdentityKind.ADMIN))
        if org == "Audit":
            continue
        # Record-owning departments register in both regions.
        for tag, region in (("sz1", SHENZHEN), ("cd1", CHENGDU)):
            attrs = officer_attributes(role=REGISTRAR_ROLE, region=region, clearance=2)
            roster.append(DemoIdentity(f"registrar.{slug}.{tag}", org, IdentityKind.OFFICER, attrs))
    for name, org, role, region, clearance in _OFFICERS:
        attrs = officer_attributes(role=role, region=region, clearance=clearance)
        roster.append(DemoIdentity(name, org, IdentityKind.OFFICER, attrs))
    for tag, region in (("sz1", SHENZHEN), ("cd1", CHENGDU)):
        # Auditors read access events, never payloads: clearance 0.
        attrs = officer_attributes(role=AUDITOR_ROLE, region=region, clearance=0)
        roster.append(DemoIdentity(f"auditor.audit.{tag}", "Audit", IdentityKind.AUDITOR, attrs))
    for name in _CITIZENS:
        attrs = {"role": CITIZEN_ROLE}
        roster.append(DemoIdentity(name, "CivilAffairs", IdentityKind.CITIZEN, attrs))
    return roster


def demo_topology() -> dict[str, Any]:
    """The demo ``network.yaml`` document (see ``notes/interfaces.md``)."""
    organizations = []
    for index, (org, domain) in enumerate(DEPARTMENTS):
        peer = {"identity": f"peer0.{org.lower()}", "address": f"127.0.0.1:{7051 + 1000 * index}"}
        organizations.append(
            {
                "name": org,
                "msp_id": f"{org}MSP",
                "domain": domain,
                "msp_dir": f"orgs/{org}/msp",
                "peers": [peer],
            }
        )
    principals = ", ".join(f"'{o['msp_id']}.peer'" for o in organizations)
    return {
        "version": 1,
        "channel": "accessledger",
        "orderer": {
            "org": ORDERER_ORG,
            "msp_id": f"{ORDERER_ORG}MSP",
            "identity": ORDERER_IDENTITY,
            "address": "127.0.0.1:7050",
            "batch": {
                "max_message_count": 100,
                "batch_timeout_ms": 200,
                "absolute_max_bytes": 10485760,
                "preferred_max_bytes": 524288,
            },
            "domain": ORDERER_DOMAIN,
            "msp_dir": f"orgs/{ORDERER_ORG}/msp",
        },
        "organizations": organizations,
        "chaincode": {"name": "accessledger", "version": "1.0"},
        "endorsement_policy": f"OutOf(2, {principals})",
        "gateway": {"url": "http://127.0.0.1:8000"},
    }


@dataclass(frozen=True)
class OrgInfo:
    """What the crypto layer needs to know about one organisation of the topology."""

    name: str
    msp_id: str
    domain: str
    msp_dir: str
    is_orderer: bool = False


def orgs_of(topology: Mapping[str, Any], source: Path) -> list[OrgInfo]:
    """The orderer org then the departments, as listed in ``network.yaml``."""
    try:
        orderer = topology["orderer"]
        result = [
            OrgInfo(
                name=orderer["org"],
                msp_id=orderer["msp_id"],
                domain=orderer.get("domain", ""),
                msp_dir=orderer.get("msp_dir") or f"orgs/{orderer['org']}/msp",
                is_orderer=True,
            )
        ]
        for org in topology["organizations"]:
            result.append(OrgInfo(org["name"], org["msp_id"], org["domain"], org["msp_dir"]))
    except (KeyError, TypeError) as exc:
        raise AccessLedgerError(
            f"{source} does not describe the orderer and organisations ({exc})",
            code="invalid_topology",
        ) from None
    return result


def org_dir(home: Path, org: str) -> Path:
    """``HOME/orgs/<Org>``."""
    return home / "orgs" / org


def identity_dir(home: Path, org: str, name: str) -> Path:
    """``HOME/orgs/<Org>/identities/<name>``."""
    return org_dir(home, org) / "identities" / name


class Consortium:
    """A loaded home: topology, CA certificates, identities and their keys."""

    def __init__(
        self, home: Path, topology: Mapping[str, Any], identities: Iterable[Identity]
    ) -> None:
        #: The home directory.
        self.home = home
        #: ``network.yaml`` as parsed (``network.topology`` gives the validated, typed view).
        self.topology = topology
        self._orgs = orgs_of(topology, home / NETWORK_FILE)
        self._org_index = {key: o for o in self._orgs for key in (o.name, o.msp_id)}
        self._identities = {identity.name: identity for identity in identities}

    @classmethod
    def load(cls, home: Path, *, public_only: bool = False) -> Consortium:
        """Read the home at ``home``.

        Private keys are loaded (and their file permissions checked) unless
        ``public_only``, in which case every identity's ``private_key`` is None.
        """
        home = Path(home)
        require_home(home)
        topology = read_topology(home / NETWORK_FILE)
        orgs = orgs_of(topology, home / NETWORK_FILE)
        identities: list[Identity] = []
        for spec in orgs:
            identities.extend(_load_org_identities(home, spec, with_keys=not public_only))
        order = {spec.name: index for index, spec in enumerate(orgs)}
        identities.sort(key=lambda i: (order[i.org], _KIND_ORDER[i.kind], i.name))
        return cls(home, topology, identities)

    def identity(self, name: str) -> Identity:
        """The identity called ``name``; raises ``unknown_identity`` if there is none."""
        try:
            return self._identities[name]
        except KeyError:
            raise AccessLedgerError(
                f"no identity named {name!r} in {self.home}", code="unknown_identity"
            ) from None

    def identities(
        self, *, kind: IdentityKind | None = None, org: str | None = None
    ) -> list[Identity]:
        """Every identity (ordered by org, then kind, then name), optionally filtered."""
        org_name = self.org(org).name if org is not None else None
        return [
            i
            for i in self._identities.values()
            if (kind is None or i.kind == kind) and (org_name is None or i.org == org_name)
        ]

    def orgs(self) -> list[OrgInfo]:
        """The orderer organisation, then every department, in ``network.yaml`` order."""
        return list(self._orgs)

    def org(self, org_or_msp: str) -> OrgInfo:
        """The organisation named ``org_or_msp`` (by name or MSP ID), orderer org included."""
        try:
            return self._org_index[org_or_msp]
        except KeyError:
            raise AccessLedgerError(
                f"no organisation named {org_or_msp!r} in {self.home}", code="unknown_org"
            ) from None

    def org_ca_certs(self, org_or_msp: str) -> list[x509.Certificate]:
        """The organisation's trusted CA certificates (its MSP ``cacerts``)."""
        return read_ca_certs(self.home / self.org(org_or_msp).msp_dir)

    def certificate_authority(self, org_or_msp: str) -> CertificateAuthority:
        """The organisation's CA with its private key (to issue further identities)."""
        spec = self.org(org_or_msp)
        return CertificateAuthority.load(
            org_dir(self.home, spec.name) / "ca", org=spec.name, msp_id=spec.msp_id
        )

    def validate_identity(self, identity: Identity, *, now: datetime) -> None:
        """Check ``identity``'s certificate against its organisation's CA at ``now``."""
        validate_certificate(
            identity.certificate, ca_certs=self.org_ca_certs(identity.msp_id), now=now
        )

    def consortium_secret(self) -> bytes:
        """The 32-byte pseudonym HMAC key."""
        text = read_private_file(self.home / SECRET_FILE).decode("ascii", errors="replace")
        try:
            secret = bytes.fromhex(text.strip())
        except ValueError:
            secret = b""
        if len(secret) != 32:
            raise CryptoError(
                f"{self.home / SECRET_FILE} must hold 32 bytes as hex", code="secret_invalid"
            )
        return secret

    def custodian_key(self, org: str) -> bytes:
        """The department custodian's raw X25519 private key."""
        spec = self.org(org)
        path = org_dir(self.home, spec.name) / "custodian" / X25519_FILE
        if not path.exists():
            raise AccessLedgerError(
                f"organisation {spec.name} has no key custodian", code="no_custodian"
            )
        return load_x25519_private_key(path)

    def custodian_public_key(self, org: str) -> bytes:
        """The department custodian's raw X25519 public key."""
        return x25519_public_key(self.custodian_key(org))

    def encryption_key(self, name: str) -> bytes:
        """The raw X25519 private key an officer, auditor or citizen receives payload keys on."""
        identity = self.identity(name)
        if identity.kind not in ENCRYPTING_KINDS:
            raise AccessLedgerError(
                f"identity {name} ({identity.kind}) has no encryption key",
                code="no_encryption_key",
            )
        return load_x25519_private_key(identity_dir(self.home, identity.org, name) / X25519_FILE)

    def encryption_public_key(self, name: str) -> bytes:
        """The raw X25519 public key matching :meth:`encryption_key`."""
        return x25519_public_key(self.encryption_key(name))


def require_home(home: Path) -> None:
    if not (home / NETWORK_FILE).is_file():
        raise AccessLedgerError(
            f"{home} is not an AccessLedger home (no {NETWORK_FILE}); "
            "create one with: accessledger init --home DIR",
            code="home_missing",
        )


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: the problem and where (PyYAML's text spans four lines)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "malformed YAML"
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split()) or type(exc).__name__


def read_topology(path: Path) -> dict[str, Any]:
    """The parsed ``network.yaml``; any way it cannot be read is one ``invalid_topology`` line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise AccessLedgerError(f"cannot read {path}: {reason}", code="invalid_topology") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise AccessLedgerError(
            f"{path} is not UTF-8 text (line {line})", code="invalid_topology"
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AccessLedgerError(
            f"{path} is not valid YAML: {yaml_problem(exc)}", code="invalid_topology"
        ) from None
    except RecursionError:
        raise AccessLedgerError(
            f"{path} is not valid YAML: nested too deeply", code="invalid_topology"
        ) from None
    if not isinstance(document, dict) or document.get("version") != 1:
        raise AccessLedgerError(f"{path} is not a version 1 network.yaml", code="invalid_topology")
    return document


def _load_org_identities(home: Path, spec: OrgInfo, *, with_keys: bool) -> list[Identity]:
    base = org_dir(home, spec.name) / "identities"
    if not base.is_dir():
        return []
    result = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if not (folder / "msp").exists() and (folder / "msp.next").is_dir():
            raise CryptoError(
                f"identity {folder.name} is in the middle of a certificate renewal; finish it"
                f" with: accessledger certificate renew --identity {folder.name} --as <an admin"
                f" of {spec.name}>",
                code="renewal_interrupted",
            )
        local = read_local_msp(folder / "msp", with_key=with_keys)
        cert = local.certificate
        if common_name(cert) != folder.name:
            raise CryptoError(
                f"{folder} holds a certificate for {common_name(cert)!r}", code="msp_invalid"
            )
        attributes = read_attributes(cert)
        result.append(
            Identity(
                name=folder.name,
                kind=kind_of(node_ou(cert), attributes),
                org=spec.name,
                msp_id=spec.msp_id,
                certificate=cert,
                private_key=local.private_key,
                attributes=attributes,
            )
        )
    return result


def _check_home(home: Path, force: bool) -> None:
    if not home.exists():
        return
    if not home.is_dir():
        raise AccessLedgerError(f"{home} exists and is not a directory", code="home_exists")
    if not any(home.iterdir()):
        return
    if not force:
        raise AccessLedgerError(
            f"{home} already exists; pass --force to replace it", code="home_exists"
        )
    if not (home / NETWORK_FILE).is_file():
        raise AccessLedgerError(
            f"{home} is not an AccessLedger home (no {NETWORK_FILE}); refusing to replace it",
            code="home_exists",
        )


def issue_identity(home: Path, ca: CertificateAuthority, spec: DemoIdentity, now: datetime) -> None:
    cert, key = ca.issue(
        common_name=spec.name,
        node_ou=NODE_OU_FOR_KIND[spec.kind],
        attributes=spec.attributes,
        now=now,
    )
    folder = identity_dir(home, ca.org, spec.name)
    write_local_msp(folder / "msp", ca_cert=ca.certificate, certificate=cert, private_key=key)
    if spec.kind in ENCRYPTING_KINDS:
        write_x25519_private_key(folder / X25519_FILE, generate_x25519_private_key())


def create_org(home: Path, spec: OrgInfo, now: datetime) -> CertificateAuthority:
    """An organisation's root CA and public MSP, plus its custodian key unless it orders."""
    ca = CertificateAuthority.create(org=spec.name, msp_id=spec.msp_id, domain=spec.domain, now=now)
    ca.save(org_dir(home, spec.name) / "ca")
    write_org_msp(home / spec.msp_dir, ca.certificate)
    if not spec.is_orderer:
        custodian = org_dir(home, spec.name) / "custodian" / X25519_FILE
        write_x25519_private_key(custodian, generate_x25519_private_key())
    return ca


def dump_topology(topology: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(topology), sort_keys=False, default_flow_style=False)


def _populate(home: Path, now: datetime) -> None:
    topology = demo_topology()
    orgs = orgs_of(topology, home / NETWORK_FILE)
    authorities = {spec.name: create_org(home, spec, now) for spec in orgs}
    for person in demo_roster():
        issue_identity(home, authorities[person.org], person, now)
    write_private_file(home / SECRET_FILE, (secrets.token_bytes(32).hex() + "\n").encode())
    (home / NETWORK_FILE).write_text(dump_topology(topology), encoding="utf-8")


def create_demo_consortium(home: Path, *, now: datetime, force: bool = False) -> Consortium:
    """Create the demo consortium at ``home`` and return it loaded.

    An existing non-empty home is refused unless ``force``; even then, only a
    directory that is an AccessLedger home is replaced. The new home is built
    in a sibling staging directory and swapped in with renames, so a failure
    half-way leaves the previous home untouched.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    home = Path(home).absolute()
    try:
        _check_home(home, force)
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=home.parent, prefix=f".{home.name}.new-"))
        try:
            _populate(staging, now)
            if home.exists():
                retired = home.parent / f".{home.name}.old-{secrets.token_hex(4)}"
                os.rename(home, retired)
                os.rename(staging, home)
                shutil.rmtree(retired)
            else:
                os.rename(staging, home)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise _home_unwritable(home, exc) from None
    return Consortium.load(home)


def _home_unwritable(home: Path, exc: OSError) -> AccessLedgerError:
    return AccessLedgerError(
        f"cannot create the home {home}: {os_error_reason(exc)}", code="home_unwritable"
    )


# -- onboarding a department -------------------------------------------------------------
