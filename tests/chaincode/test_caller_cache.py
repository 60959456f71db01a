"""Caching of certificate validation in the contract is invisible: same results, same errors."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from chaincode.caller import LedgerConfig, identify, identify_certificate
from chaincode.errors import Forbidden
from crypto.certificates import certificate_to_pem
from crypto.consortium import Consortium
from crypto.identity import Identity


@pytest.fixture
def fresh(consortium: Consortium) -> LedgerConfig:
    """A configuration whose cache is empty."""
    return LedgerConfig.from_consortium(consortium)


@pytest.fixture(scope="module")
def officer(consortium: Consortium) -> Identity:
    return consortium.identity("officer.education.sz1")


def _error(call: object) -> str:
    assert callable(call)
    with pytest.raises(Forbidden) as caught:
        call()
    return str(caught.value)


def test_repeat_identification_equals_a_fresh_one(
    consortium: Consortium, fresh: LedgerConfig, officer: Identity, demo_now: datetime
) -> None:
    pem = certificate_to_pem(officer.certificate)
    now = demo_now + timedelta(hours=1)
    first = identify(fresh, officer.msp_id, pem, now=now)
    second = identify(fresh, officer.msp_id, pem, now=now + timedelta(days=1))
    uncached = identify(LedgerConfig.from_consortium(consortium), officer.msp_id, pem, now=now)
    assert first == second == uncached
    assert second.fingerprint == uncached.fingerprint
    assert second.role == uncached.role
    assert second.region == uncached.region


def test_cached_attributes_cannot_be_altered_by_a_caller(
    fresh: LedgerConfig, officer: Identity, demo_now: datetime
) -> None:
    pem = certificate_to_pem(officer.certificate)
    first = identify(fresh, officer.msp_id, pem, now=demo_now)
    assert isinstance(first.attributes, dict)
    first.attributes["role"] = "tampered"
    assert identify(fresh, officer.msp_id, pem, now=demo_now).role != "tampered"


@pytest.mark.parametrize("outside", ["before", "after"])
def test_validity_is_checked_at_every_call(
    consortium: Consortium,
    fresh: LedgerConfig,
    officer: Identity,
    demo_now: datetime,
    outside: str,
) -> None:
    pem = certificate_to_pem(officer.certificate)
    identify(fresh, officer.msp_id, pem, now=demo_now + timedelta(hours=1))  # fills the cache
    cert = officer.certificate
    when = (
        cert.not_valid_before_utc - timedelta(seconds=1)
        if outside == "before"
        else cert.not_valid_after_utc + timedelta(seconds=1)
    )
    cached = _error(lambda: identify(fresh, officer.msp_id, pem, now=when))
    uncached = _error(
        lambda: identify(LedgerConfig.from_consortium(consortium), officer.msp_id, pem, now=when)
    )
    assert cached == uncached
    assert ("not valid before" if outside == "before" else "expired") in cached


def test_cached_success_under_one_msp_does_not_vouch_for_another(
    fresh: LedgerConfig, officer: Identity, demo_now: datetime
) -> None:
    pem = certificate_to_pem(officer.certificate)
    identify(fresh, officer.msp_id, pem, now=demo_now)
    other = next(d.msp_id for d in fresh.departments if d.msp_id != officer.msp_id)
    assert "not a valid" in _error(lambda: identify(fresh, other, pem, now=demo_now))


def test_identify_certificate_cached_equals_fresh(
    consortium: Consortium, fresh: LedgerConfig, officer: Identity, demo_now: datetime
) -> None:
    cert = officer.certificate
    first = identify_certificate(fresh, cert, now=demo_now, what="approval 0")
    again = identify_certificate(fresh, cert, now=demo_now, what="approval 1")
    uncached = identify_certificate(
        LedgerConfig.from_consortium(consortium), cert, now=demo_now, what="approval 0"
    )
    assert first == again == uncached
    assert first.msp_id == officer.msp_id
    late = cert.not_valid_after_utc + timedelta(seconds=1)
    cached_error = _error(lambda: identify_certificate(fresh, cert, now=late, what="approval 2"))
    reference = LedgerConfig.from_consortium(consortium)
    fresh_error = _error(lambda: identify_certificate(reference, cert, now=late, what="approval 2"))
    assert cached_error == fresh_error
    assert "expired" in cached_error


def test_unknown_issuer_is_refused_every_time(
    fresh: LedgerConfig, consortium: Consortium, demo_now: datetime
) -> None:
    # An orderer-org identity: its CA is not a department of the ledger.
    orderer = next(o for o in consortium.orgs() if o.is_orderer)
    cert = consortium.org_ca_certs(orderer.name)[0]
    for _ in range(2):
        assert "not issued by any department" in _error(
            lambda: identify_certificate(fresh, cert, now=demo_now, what="approval")
        )
