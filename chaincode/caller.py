"""Who is calling: the departments the ledger trusts and the transaction's creator.

Trust anchor. ``InitLedger`` records, once, every department's organisation
name, MSP ID and root CA certificates (the same ``cacerts`` its MSP has in
the channel configuration). The contract classifies every identity it meets
-- the transaction's creator, a citizen credential being bound, an admin
approving a policy bundle -- by validating its certificate against those
pinned roots at the transaction time. A Fabric peer already validates the
creator against the channel MSPs before it runs the chaincode; checking again
here costs one signature verification and matters for what the peer does
*not* check: approvals and citizen credentials are just certificates inside
arguments, and the contract must know which department issued them. The MSP
ID in a ``SerializedIdentity`` is never trusted on its own; the issuing CA
decides the department.

The meaning of a certificate is read from it exactly as
:mod:`crypto.identity` defines it: the subject OU is the Fabric NodeOU and
the Fabric CA attribute extension carries ``role``, ``region`` and
``clearance``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from cryptography import x509

from chaincode.codec import ORG, check_fields, dumps, integer, text
from chaincode.errors import Forbidden, InvalidArgument
from crypto.certificates import certificate_fingerprint as fingerprint_of
from crypto.certificates import (
    certificate_to_pem,
    common_name,
    node_ou,
    read_attributes,
    validate_certificate,
)
from crypto.errors import CertificateError, CryptoError
from crypto.identity import IdentityKind, kind_of
from policies.requests import Principal

if TYPE_CHECKING:
    from crypto.consortium import Consortium

#: Format tag of the ``InitLedger`` argument and the stored configuration.
CONFIG_FORMAT: Final = "accessledger-ledger-config/1"
#: Default half-width of the window around the transaction time for signed documents.
DEFAULT_REQUEST_WINDOW: Final = 300
_MAX_WINDOW: Final = 3600
_MSP_ID = ORG
#: Certificates whose validation each configuration remembers.
_IDENTITY_CACHE_SIZE = 1024


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """How the ledger names an identity (:func:`crypto.certificates.certificate_fingerprint`)."""
    return fingerprint_of(cert)


@lru_cache(maxsize=1024)
def _load_pem(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise InvalidArgument("identity bytes are not a PEM X.509 certificate") from None


def load_certificate(pem: bytes) -> x509.Certificate:
    """Parse a PEM certificate (cached: the same bytes always give the same object)."""
    return _load_pem(bytes(pem))


@dataclass(frozen=True)
class _Identified:
    caller: Caller
    valid_from: datetime
    valid_until: datetime


class _IdentityCache:
    """Per-configuration memo of certificate validations (bounded, least recently used out).

    Validating a certificate against a department's pinned roots is a pure
    function of the certificate bytes, the roots and the transaction time; the
    time enters only through validity periods. So a successful result is kept
    with the period in which it holds and reused only inside it; outside it,
    or for anything that failed, the full validation runs again and raises
    exactly what it always would. Which department's root issued a certificate
    does not depend on time at all. Endorsing peers therefore compute the same
    results whether or not they hit the cache.
    """

    def __init__(self) -> None:
        self._callers: OrderedDict[tuple[str, bytes], _Identified] = OrderedDict()
        self._issuers: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def caller(self, msp_id: str, id_bytes: bytes, now: datetime) -> Caller | None:
        with self._lock:
            found = self._callers.get((msp_id, id_bytes))
            if found is not None:
                self._callers.move_to_end((msp_id, id_bytes))
        if found is None or not found.valid_from <= now <= found.valid_until:
            return None
        # A fresh attributes mapping: callers must not be able to alter the cache.
        return replace(found.caller, attributes=dict(found.caller.attributes))

    def remember_caller(
        self,
        msp_id: str,
        id_bytes: bytes,
        caller: Caller,
        *,
        valid_from: datetime,
        valid_until: datetime,
    ) -> None:
        entry = _Identified(
            replace(caller, attributes=dict(caller.attributes)), valid_from, valid_until
        )
        with self._lock:
            self._callers[(msp_id, id_bytes)] = entry
            self._callers.move_to_end((msp_id, id_bytes))
            while len(self._callers) > _IDENTITY_CACHE_SIZE:
                self._callers.popitem(last=False)

    def issuer(self, pem: bytes) -> str | None:
        with self._lock:
            return self._issuers.get(pem)

    def remember_issuer(self, pem: bytes, msp_id: str) -> None:
        with self._lock:
            self._issuers[pem] = msp_id
            while len(self._issuers) > _IDENTITY_CACHE_SIZE:
                self._issuers.popitem(last=False)


@dataclass(frozen=True)
class Department:
    """One organisation of the consortium and the root CAs that issue its identities."""

    org: str
    msp_id: str
    root_certs: tuple[x509.Certificate, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "msp_id": self.msp_id,
            "root_certs": [certificate_to_pem(c).decode("ascii") for c in self.root_certs],
        }


@dataclass(frozen=True)
class LedgerConfig:
    """What ``InitLedger`` pinned: the departments and the signed-document window."""

    departments: tuple[Department, ...]
    request_window: int = DEFAULT_REQUEST_WINDOW
    _by_msp: dict[str, Department] = field(init=False, repr=False, compare=False)
    _by_org: dict[str, Department] = field(init=False, repr=False, compare=False)
    _identities: _IdentityCache = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.departments:
            raise InvalidArgument("the ledger configuration needs at least one department")
        by_msp = {d.msp_id: d for d in self.departments}
        by_org = {d.org: d for d in self.departments}
        if len(by_msp) != len(self.departments) or len(by_org) != len(self.departments):
            raise InvalidArgument("department names and MSP IDs must be unique")
        object.__setattr__(self, "_by_msp", by_msp)
        object.__setattr__(self, "_by_org", by_org)
        object.__setattr__(self, "_identities", _IdentityCache())

    def department_of_msp(self, msp_id: str) -> Department:
        try:
            return self._by_msp[msp_id]
        except KeyError:
            raise Forbidden(f"MSP {msp_id!r} is not a department of this ledger") from None

    def department(self, org: str) -> Department:
        try:
            return self._by_org[org]
        except KeyError:
            raise InvalidArgument(f"{org!r} is not a department of this ledger") from None

    @property
    def orgs(self) -> tuple[str, ...]:
        return tuple(d.org for d in self.departments)

    def with_department(self, department: Department) -> LedgerConfig:
        """A copy with ``department`` appended (``AddDepartment``); names must stay unique."""
        return LedgerConfig(
            departments=(*self.departments, department), request_window=self.request_window
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CONFIG_FORMAT,
            "departments": [d.to_dict() for d in self.departments],
            "request_window_seconds": self.request_window,
        }

    def to_json(self) -> str:
        """The canonical ``InitLedger`` argument for this configuration."""
        return dumps(self.to_dict()).decode("utf-8")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerConfig:
        """Parse and validate a configuration (the ``InitLedger`` argument)."""
        check_fields(data, "config", {"format", "departments"}, {"request_window_seconds"})
        if data["format"] != CONFIG_FORMAT:
            raise InvalidArgument(f"config.format must be {CONFIG_FORMAT!r}")
        window = DEFAULT_REQUEST_WINDOW
        if "request_window_seconds" in data:
            window = integer(data, "request_window_seconds", what="config", low=1, high=_MAX_WINDOW)
        entries = data["departments"]
        if not isinstance(entries, list) or not entries:
            raise InvalidArgument("config.departments must be a non-empty list")
        departments = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise InvalidArgument("config.departments items must be objects")
            check_fields(entry, "department", {"org", "msp_id", "root_certs"})
            org = text(entry, "org", ORG, what="department")
            msp_id = text(entry, "msp_id", _MSP_ID, what="department")
            pems = entry["root_certs"]
            if not isinstance(pems, list) or not pems or not all(isinstance(p, str) for p in pems):
                raise InvalidArgument(f"department {org}: root_certs must list PEM certificates")
            roots = tuple(load_certificate(p.encode("ascii", "replace")) for p in pems)
            departments.append(Department(org=org, msp_id=msp_id, root_certs=roots))
        return cls(departments=tuple(departments), request_window=window)

    @classmethod
    def from_consortium(
        cls, consortium: Consortium, *, request_window: int = DEFAULT_REQUEST_WINDOW
    ) -> LedgerConfig:
        """The departments of a consortium home (every organisation but the orderer's)."""
        return cls.build(
            {
                org.name: (org.msp_id, consortium.org_ca_certs(org.name))
                for org in consortium.orgs()
                if not org.is_orderer
            },
            request_window=request_window,
        )

    @classmethod
    def build(
        cls,
        departments: Mapping[str, tuple[str, Sequence[x509.Certificate]]],
        *,
        request_window: int = DEFAULT_REQUEST_WINDOW,
    ) -> LedgerConfig:
        """From ``{org: (msp_id, root CA certificates)}``, in the given order."""
        return cls(
            departments=tuple(
                Department(org=org, msp_id=msp, root_certs=tuple(roots))
                for org, (msp, roots) in departments.items()
            ),
            request_window=request_window,
        )


@dataclass(frozen=True)
class Caller:
    """A validated identity: its department, certificate, NodeOU, kind and attributes."""

    msp_id: str
    org: str
    certificate: x509.Certificate
    fingerprint: str
    name: str
    node_ou: str
    kind: IdentityKind
    attributes: Mapping[str, str]

    @property
    def role(self) -> str | None:
        return self.attributes.get("role")

    @property
    def region(self) -> str | None:
        return self.attributes.get("region")

    def ref(self) -> dict[str, str]:
        """How the ledger refers to this identity in events and records."""
        return {
            "msp_id": self.msp_id,
            "org": self.org,
            "cert_fingerprint": self.fingerprint,
            "name": self.name,
        }

    def principal(self) -> Principal:
        """The Cedar ``Officer`` this identity is (attributes from the certificate)."""
        return Principal.from_attributes(
            f"{self.msp_id}:{self.fingerprint}", self.org, self.attributes
        )


def identify(
    config: LedgerConfig, msp_id: str, id_bytes: bytes, *, now: datetime, what: str = "creator"
) -> Caller:
    """Validate ``id_bytes`` (a PEM certificate) as an identity of ``msp_id`` at ``now``.

    Raises :class:`Forbidden` when the MSP is not a department, the
    certificate is not issued by that department's pinned root CA, or it is
    outside its validity period at ``now``.
    """
    department = config.department_of_msp(msp_id)
    id_bytes = bytes(id_bytes)
    cache = config._identities
    if now.tzinfo is not None:
        hit = cache.caller(msp_id, id_bytes, now)
        if hit is not None:
            return hit
    cert = load_certificate(id_bytes)
    try:
        validate_certificate(cert, ca_certs=department.root_certs, now=now)
        attributes = read_attributes(cert)
        ou = node_ou(cert)
        kind = kind_of(ou, attributes)
        name = common_name(cert)
    except (CertificateError, CryptoError) as exc:
        raise Forbidden(f"{what} is not a valid {department.org} identity: {exc.message}") from None
    assert ou is not None  # kind_of refuses a missing OU
    caller = Caller(
        msp_id=department.msp_id,
        org=department.org,
        certificate=cert,
        fingerprint=certificate_fingerprint(cert),
        name=name,
        node_ou=ou,
        kind=kind,
        attributes=dict(attributes),
    )
    # Every certificate the validation may have walked is ``cert`` or one of
    # the department's roots, so inside the intersection of their validity
    # periods a repeat validation would pass every time check it passed now.
    chain = (cert, *department.root_certs)
    cache.remember_caller(
        msp_id,
        id_bytes,
        caller,
        valid_from=max(c.not_valid_before_utc for c in chain),
        valid_until=min(c.not_valid_after_utc for c in chain),
    )
    return caller


def identify_certificate(
    config: LedgerConfig, cert: x509.Certificate, *, now: datetime, what: str
) -> Caller:
    """Find the department whose pinned root issued ``cert`` and validate it there."""
    pem = certificate_to_pem(cert)
    cache = config._identities
    msp_id = cache.issuer(pem)
    if msp_id is None:
        msp_id = next(
            (
                d.msp_id
                for d in config.departments
                if any(_issued_by(cert, root) for root in d.root_certs)
            ),
            None,
        )
        if msp_id is None:
            raise Forbidden(f"{what} is not issued by any department's root CA")
        cache.remember_issuer(pem, msp_id)
    return identify(config, msp_id, pem, now=now, what=what)


def _issued_by(cert: x509.Certificate, root: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(root)
    except Exception:  # wrong issuer name, bad signature, unsupported key: not this root
        return False
    return True
