"""Request verification: a genuine request passes; each tamper fails with its own code."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from http_sfv.dictionary import Dictionary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.ca import CertificateAuthority
from crypto.certtwin import signature_twin
from crypto.consortium import Consortium
from crypto.errors import AccessLedgerError
from crypto.identity import Identity, IdentityKind
from crypto.signing import P256_ORDER, verify
from gateway.auth import (
    AuthenticationError,
    CertificateInvalidError,
    CertificateRevokedError,
    CertificateUnknownError,
    ComponentsMissingError,
    DigestMismatchError,
    HttpRequest,
    MemoryNonceCache,
    NonceReusedError,
    RequestVerifier,
    SignatureInvalidError,
    SignatureMissingError,
    SqliteNonceCache,
    TimestampStaleError,
    TrustStore,
    VerifierPolicy,
    certificate_fingerprint,
    content_digest,
    signature_base,
    verify_request,
)
from gateway.auth.signature_base import parse_inner_list
from tests.gateway.auth.conftest import (
    BODY,
    URL,
    custom_signed,
    replace_header,
    signed_request,
)

PROFILE = {"alg": "ecdsa-p256-sha256", "tag": "accessledger"}
COMPONENTS = ("@method", "@path", "@query", "content-digest")


def _verify(request: HttpRequest, trust: TrustStore, now: datetime, **kwargs: object):  # type: ignore[no-untyped-def]
    return verify_request(request, trust=trust, nonces=MemoryNonceCache(), now=now, **kwargs)  # type: ignore[arg-type]


def _params(now: datetime, **extra: int | str) -> dict[str, int | str]:
    return {"created": int(now.timestamp()), "nonce": "fresh-nonce-0123456789", **PROFILE, **extra}


# ------------------------------------------------------------------------- success


def test_round_trip_authenticates_the_signer(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    request = signed_request(officer, now)
    result = _verify(request, trust, now)

    assert result.identity.name == "officer.education.sz1"
    assert result.identity.kind is IdentityKind.OFFICER
    assert (result.identity.org, result.identity.msp_id) == ("Education", "EducationMSP")
    assert result.identity.attributes["role"] == "enrolment_officer"
    assert result.identity.private_key is None
    assert result.keyid == certificate_fingerprint(officer.certificate)
    assert result.components == (*COMPONENTS, "content-type")
    assert result.created == now.replace(microsecond=0)
    # What the gateway records is enough for anyone holding the certificate to re-check.
    inner = parse_inner_list(result.signature_params)
    assert result.signature_base == signature_base(request, inner)
    assert result.signature_base.startswith(b'"@method": POST\n"@path": /v1/access-requests\n')
    assert b'"@query": ?dry_run=false\n' in result.signature_base
    verify(officer.public_key, result.signature_base, result.der_signature)


def test_get_without_body_or_query(officer: Identity, trust: TrustStore, now: datetime) -> None:
    request = signed_request(
        officer, now, method="GET", url="https://gw.example/v1/me/accesses", body=b"", headers={}
    )
    result = _verify(request, trust, now)
    assert result.components == COMPONENTS
    assert b'"@query": ?\n' in result.signature_base
    assert request.header("content-digest") == content_digest(b"")


def test_known_certificates_need_not_be_sent(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    request = signed_request(officer, now, include_certificate=False)
    assert request.header("accessledger-certificate") is None
    assert _verify(request, trust, now).identity.name == officer.name


def test_citizens_and_auditors_authenticate_too(
    consortium: Consortium, trust: TrustStore, now: datetime
) -> None:
    for name, kind in (
        ("citizen.c1", IdentityKind.CITIZEN),
        ("auditor.audit.sz1", IdentityKind.AUDITOR),
    ):
        result = _verify(signed_request(consortium.identity(name), now), trust, now)
        assert (result.identity.name, result.identity.kind) == (name, kind)


def test_clock_skew_up_to_the_limit_is_accepted(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    skew = timedelta(seconds=300)
    _verify(signed_request(officer, now - skew + timedelta(seconds=1)), trust, now)
    _verify(signed_request(officer, now + skew), trust, now)
    # Exactly the skew old is stale: that is the instant the request's nonce may be forgotten.
    with pytest.raises(TimestampStaleError):
        _verify(signed_request(officer, now - skew), trust, now)


@pytest.mark.parametrize("cache", ["memory", "sqlite"])
def test_a_request_is_never_accepted_twice_however_late_the_replay(
    officer: Identity, trust: TrustStore, now: datetime, tmp_path: Path, cache: str
) -> None:
    # The nonce is kept until created + skew; from that instant on the request is stale.
    nonces = MemoryNonceCache() if cache == "memory" else SqliteNonceCache(tmp_path / "n.sqlite")
    verifier = RequestVerifier(trust=trust, nonces=nonces)
    request = signed_request(officer, now)
    verifier.verify(request, now=now)
    created = datetime.fromtimestamp(int(now.timestamp()), UTC)
    for later in (299, 299.999999, 300, 300.000001, 301, 3600):
        with pytest.raises((NonceReusedError, TimestampStaleError)):
            verifier.verify(request, now=created + timedelta(seconds=later))
    if isinstance(nonces, SqliteNonceCache):
        nonces.close()


def test_a_request_built_from_the_asgi_scope_verifies(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    url = "http://127.0.0.1:8000/v1/records/r%2F1/versions?note=a%20b"
    sent = signed_request(officer, now, url=url)
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/records/r/1/versions",
        "raw_path": b"/v1/records/r%2F1/versions",
        "query_string": b"note=a%20b",
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent.headers]
        + [(b"host", b"127.0.0.1:8000")],
    }
    assert _verify(HttpRequest.from_asgi(scope, BODY), trust, now).identity.name == officer.name


# ------------------------------------------------------------------- tampering


def test_changed_body_is_a_digest_mismatch(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    request = signed_request(officer, now)
    tampered = HttpRequest(
        request.method, request.url, request.headers, BODY.replace(b"abc", b"abd")
    )
    with pytest.raises(DigestMismatchError):
        _verify(tampered, trust, now)


def test_changed_body_with_a_recomputed_digest_breaks_the_signature(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    request = signed_request(officer, now)
    body = BODY.replace(b"abc", b"abd")
    tampered = replace_header(request, "Content-Digest", content_digest(body))
    tampered = HttpRequest(tampered.method, tampered.url, tampered.headers, body)
    with pytest.raises(SignatureInvalidError, match="does not verify"):
        _verify(tampered, trust, now)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "https://gateway.example/v1/records?dry_run=false"),  # path
        ("POST", "https://gateway.example/v1/access-requests?dry_run=true"),  # query
        ("POST", "https://gateway.example/v1/access-requests"),  # query dropped
        ("PUT", URL),  # method
    ],
)
def test_changed_target_or_method_breaks_the_signature(
    officer: Identity, trust: TrustStore, now: datetime, method: str, url: str
) -> None:
    request = signed_request(officer, now)
    with pytest.raises(SignatureInvalidError, match="does not verify"):
        _verify(HttpRequest(method, url, request.headers, request.body), trust, now)


def test_changed_covered_header_breaks_the_signature(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    request = replace_header(signed_request(officer, now), "Content-Type", "text/plain")
    with pytest.raises(SignatureInvalidError):
        _verify(request, trust, now)


def test_removed_component_is_refused(officer: Identity, trust: TrustStore, now: datetime) -> None:
    base = signed_request(officer, now)
    # A genuine signature that simply does not cover the body digest...
    for dropped in COMPONENTS:
        kept = [c for c in COMPONENTS if c != dropped]
        request = custom_signed(base, officer, kept, _params(now))
        with pytest.raises(ComponentsMissingError, match=dropped):
            _verify(request, trust, now)
    # ...and a component struck from Signature-Input after signing.
    value = base.header("signature-input") or ""
    stripped = replace_header(base, "Signature-Input", value.replace(' "content-digest"', ""))
    with pytest.raises(ComponentsMissingError, match="content-digest"):
        _verify(stripped, trust, now)


@pytest.mark.parametrize("parameter", ["created", "nonce", "alg", "tag"])
def test_missing_signature_parameters_are_refused(
    officer: Identity, trust: TrustStore, now: datetime, parameter: str
) -> None:
    params = _params(now)
    del params[parameter]
    request = custom_signed(signed_request(officer, now), officer, COMPONENTS, params)
    with pytest.raises(ComponentsMissingError, match=f";{parameter}"):
        _verify(request, trust, now)


@pytest.mark.parametrize(
    ("created", "message"),
    [(timedelta(seconds=-301), "older than 300 s"), (timedelta(seconds=301), "in the future")],
)
def test_stale_and_future_timestamps_are_refused(
    officer: Identity, trust: TrustStore, now: datetime, created: timedelta, message: str
) -> None:
    with pytest.raises(TimestampStaleError, match=message):
        _verify(signed_request(officer, now + created), trust, now)


def test_expired_signatures_are_refused(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    params = _params(now - timedelta(seconds=20), expires=int(now.timestamp()) - 10)
    request = custom_signed(signed_request(officer, now), officer, COMPONENTS, params)
    with pytest.raises(TimestampStaleError, match="expired"):
        _verify(request, trust, now)


def test_skew_is_configurable(officer: Identity, trust: TrustStore, now: datetime) -> None:
    policy = VerifierPolicy(max_skew=timedelta(seconds=30))
    request = signed_request(officer, now - timedelta(seconds=31))
    with pytest.raises(TimestampStaleError, match="older than 30 s"):
        _verify(request, trust, now, policy=policy)


def test_reused_nonce_is_refused(officer: Identity, trust: TrustStore, now: datetime) -> None:
    verifier = RequestVerifier(trust=trust, nonces=MemoryNonceCache())
    request = signed_request(officer, now)
    verifier.verify(request, now=now)
    with pytest.raises(NonceReusedError):
        verifier.verify(request, now=now + timedelta(seconds=1))
    # A fresh signature (new nonce) from the same officer is fine.
    verifier.verify(signed_request(officer, now), now=now)


def test_reused_nonce_is_refused_after_a_restart(
    officer: Identity, trust: TrustStore, now: datetime, tmp_path: Path
) -> None:
    request = signed_request(officer, now)
    with SqliteNonceCache(tmp_path / "nonces.sqlite") as cache:
        RequestVerifier(trust=trust, nonces=cache).verify(request, now=now)
    with SqliteNonceCache(tmp_path / "nonces.sqlite") as reopened:
        verifier = RequestVerifier(trust=trust, nonces=reopened)
        with pytest.raises(NonceReusedError):
            verifier.verify(request, now=now + timedelta(seconds=60))
        # Once the window has passed the timestamp check refuses the replay instead.
        with pytest.raises(TimestampStaleError):
            verifier.verify(request, now=now + timedelta(seconds=301))


def test_a_refused_request_does_not_use_up_its_nonce(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    verifier = RequestVerifier(trust=trust, nonces=MemoryNonceCache())
    genuine = signed_request(officer, now, nonce="same-nonce-0123456789")
    tampered = HttpRequest(genuine.method, genuine.url, genuine.headers, b"{}")
    with pytest.raises(DigestMismatchError):
        verifier.verify(tampered, now=now)
    verifier.verify(genuine, now=now)


# ---------------------------------------------------------------- certificates


def _foreign_identity(now: datetime) -> Identity:
    # Same names as the Education CA and officer, different key: a look-alike.
    rogue = CertificateAuthority.create(
        org="Education", msp_id="EducationMSP", domain="education.gov.example", now=now
    )
    cert, key = rogue.issue(
        common_name="officer.education.sz1",
        node_ou="client",
        attributes={"role": "enrolment_officer", "region": "440300", "clearance": "3"},
        now=now,
    )
    return Identity(
        name="officer.education.sz1",
        kind=IdentityKind.OFFICER,
        org="Education",
        msp_id="EducationMSP",
        certificate=cert,
        private_key=key,
        attributes={},
    )


def test_certificate_from_a_ca_outside_the_consortium_is_unknown(
    trust: TrustStore, now: datetime, demo_now: datetime
) -> None:
    request = signed_request(_foreign_identity(demo_now), now)
    with pytest.raises(CertificateUnknownError, match="not issued by any consortium CA"):
        _verify(request, trust, now)


def test_unknown_key_id_without_a_certificate_is_unknown(
    trust: TrustStore, now: datetime, demo_now: datetime
) -> None:
    request = signed_request(_foreign_identity(demo_now), now, include_certificate=False)
    with pytest.raises(CertificateUnknownError, match="names no known certificate"):
        _verify(request, trust, now)


def test_certificate_swapped_under_the_key_id_is_unknown(
    officer: Identity, consortium: Consortium, trust: TrustStore, now: datetime
) -> None:
    other = consortium.identity("officer.education.cd1").certificate
    swapped = replace_header(
        signed_request(officer, now),
        "AccessLedger-Certificate",
        ":" + base64.b64encode(other.public_bytes(serialization.Encoding.DER)).decode() + ":",
    )
    with pytest.raises(CertificateUnknownError, match="not the SHA-256"):
        _verify(swapped, trust, now)
    garbage = replace_header(signed_request(officer, now), "AccessLedger-Certificate", ":AAAA:")
    with pytest.raises(CertificateUnknownError, match="DER certificate"):
        _verify(garbage, trust, now)


def test_a_revoked_certificate_re_encoded_with_the_other_signature_stays_revoked(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    original = officer.certificate
    twin = signature_twin(original)
    assert twin is not None
    # The twin is the same certificate with another valid CA signature, another DER encoding...
    assert twin.tbs_certificate_bytes == original.tbs_certificate_bytes
    assert _der_sha256(twin) != _der_sha256(original)
    assert signature_twin(twin) == original
    # ...that the CA's signature check accepts, for the same officer, under the same name.
    assert trust.identify(twin, now=now).name == officer.name
    assert certificate_fingerprint(twin) == certificate_fingerprint(original)
    # Revoked by its fingerprint, or by the plain SHA-256 of either encoding: both refused.
    for revoked in (certificate_fingerprint(original), _der_sha256(original), _der_sha256(twin)):
        for presented in (original, twin):
            with pytest.raises(CertificateRevokedError):
                trust.identify(presented, now=now, revoked={revoked})


def _der_sha256(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_revoked_certificate_is_refused(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    revoked = {certificate_fingerprint(officer.certificate)}
    with pytest.raises(CertificateRevokedError):
        _verify(signed_request(officer, now), trust, now, revoked=revoked)
    # Revocation is checked on every request, even for a certificate seen (and cached) before.
    _verify(signed_request(officer, now), trust, now)
    with pytest.raises(CertificateRevokedError):
        _verify(signed_request(officer, now), trust, now, revoked=revoked)


def test_expired_consortium_certificate_is_invalid(
    consortium: Consortium, demo_now: datetime
) -> None:
    ca = consortium.certificate_authority("Education")
    cert, key = ca.issue(
        common_name="officer.education.temp",
        node_ou="client",
        attributes={"role": "enrolment_officer", "region": "440300", "clearance": "1"},
        now=demo_now,
        valid_for=timedelta(minutes=10),
    )
    temp = Identity(
        name="officer.education.temp",
        kind=IdentityKind.OFFICER,
        org="Education",
        msp_id="EducationMSP",
        certificate=cert,
        private_key=key,
    )
    trust = TrustStore.from_consortium(consortium)
    during = demo_now + timedelta(minutes=5)
    assert _verify(signed_request(temp, during), trust, during).identity.name == temp.name
    after = demo_now + timedelta(minutes=30)
    with pytest.raises(CertificateInvalidError, match="expired"):
        _verify(signed_request(temp, after), trust, after)


# -------------------------------------------------------------- signature form


def test_high_s_signature_is_refused(officer: Identity, trust: TrustStore, now: datetime) -> None:
    request = signed_request(officer, now)
    parsed = Dictionary()
    parsed.parse((request.header("signature") or "").encode())
    raw = parsed["accessledger"].value
    s = int.from_bytes(raw[32:], "big")
    high = raw[:32] + (P256_ORDER - s).to_bytes(32, "big")  # same signature, other S
    parsed["accessledger"] = high
    with pytest.raises(SignatureInvalidError, match="low-S"):
        _verify(replace_header(request, "Signature", str(parsed)), trust, now)


@pytest.mark.parametrize(
    "signature_input",
    [
        'accessledger=("@method" "@path"',  # unclosed inner list
        'accessledger=("@method" "@path");created=1;',  # trailing separator
        "accessledger=:AAAA:",  # not an inner list
        'accessledger=("@method" @path)',  # bare item that is not a string
        "ACCESSLEDGER=()",  # uppercase key
    ],
)
def test_malformed_signature_input_is_refused(
    officer: Identity, trust: TrustStore, now: datetime, signature_input: str
) -> None:
    request = replace_header(signed_request(officer, now), "Signature-Input", signature_input)
    with pytest.raises(SignatureInvalidError):
        _verify(request, trust, now)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"alg": "ed25519"}, "alg"),
        ({"tag": "other-app"}, "tag"),
        ({"nonce": "short"}, "nonce"),
        ({"nonce": "has/slashes+and=0123456789"}, "nonce"),
        ({"keyid": "test-key-ecc-p256"}, "keyid"),
        ({"created": "1700000000"}, "integer"),
    ],
)
def test_bad_signature_parameters_are_refused(
    officer: Identity, trust: TrustStore, now: datetime, params: dict[str, str], message: str
) -> None:
    request = custom_signed(
        signed_request(officer, now), officer, COMPONENTS, {**_params(now), **params}
    )
    with pytest.raises(SignatureInvalidError, match=message):
        _verify(request, trust, now)


def test_wrong_length_signature_is_refused(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    request = replace_header(signed_request(officer, now), "Signature", "accessledger=:AAAA:")
    with pytest.raises(SignatureInvalidError, match="64 bytes"):
        _verify(request, trust, now)


def test_unsigned_requests_are_refused(officer: Identity, trust: TrustStore, now: datetime) -> None:
    request = signed_request(officer, now)
    for header in ("Signature", "Signature-Input"):
        with pytest.raises(SignatureMissingError):
            _verify(replace_header(request, header, None), trust, now)
    relabelled = custom_signed(request, officer, COMPONENTS, _params(now), label="sig1")
    with pytest.raises(SignatureMissingError, match="accessledger"):
        _verify(relabelled, trust, now)


def test_every_refusal_is_an_authentication_error_with_a_stable_code() -> None:
    codes = {
        SignatureMissingError: "signature_missing",
        SignatureInvalidError: "signature_invalid",
        CertificateUnknownError: "certificate_unknown",
        CertificateInvalidError: "certificate_invalid",
        CertificateRevokedError: "certificate_revoked",
        TimestampStaleError: "timestamp_stale",
        NonceReusedError: "nonce_reused",
        DigestMismatchError: "digest_mismatch",
        ComponentsMissingError: "components_missing",
    }
    for error, code in codes.items():
        assert issubclass(error, AuthenticationError)
        assert issubclass(error, AccessLedgerError)
        assert error("x").code == code


@pytest.mark.parametrize("created", [999_999_999_999_999, -999_999_999_999_999, 0])
def test_absurd_timestamps_are_stale_not_crashes(
    officer: Identity, trust: TrustStore, now: datetime, created: int
) -> None:
    params = {**_params(now), "created": created}
    request = custom_signed(signed_request(officer, now), officer, COMPONENTS, params)
    with pytest.raises(TimestampStaleError):
        _verify(request, trust, now)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.sampled_from(
        ["Signature-Input", "Signature", "Content-Digest", "AccessLedger-Certificate"]
    ),
    value=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
    | st.text(max_size=40),
)
def test_arbitrary_header_values_only_ever_raise_authentication_errors(
    officer: Identity, trust: TrustStore, now: datetime, header: str, value: str
) -> None:
    request = replace_header(signed_request(officer, now), header, value)
    # Any other value than the one signed is refused, and always with a typed error.
    with pytest.raises(AuthenticationError):
        _verify(request, trust, now)
