"""X.509 helpers: Fabric CA attributes, NodeOUs, PEM, and certificate validation.

Validation follows what a Fabric MSP checks before it accepts an identity: the
certificate must be signed by one of the organisation's CA certificates, be
within its validity period at the (injected) time of the check, and carry the
key usage its job needs. A certificate that is itself a CA cannot act as a
signing identity (Fabric refuses those too). Every rejection raises
:class:`~crypto.errors.CertificateError` with a message naming the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crypto.certtwin import low_s_form
from crypto.errors import CertificateError

#: Fabric CA's attribute extension (``attrmgr.AttrOID``).
ATTRIBUTE_OID = x509.ObjectIdentifier("1.2.3.4.5.6.7.8.1")

#: Usages :func:`validate_certificate` understands.
USAGES = ("signing", "ca")

# Chains are short (root -> leaf, at most an intermediate); the bound stops loops.
_MAX_CHAIN_DEPTH = 4


def encode_attributes(attributes: Mapping[str, str]) -> bytes:
    """Encode attributes as Fabric CA does: JSON ``{"attrs": {...}}``."""
    for key, value in attributes.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("certificate attributes must map str to str")
    return json.dumps({"attrs": dict(attributes)}, sort_keys=True, separators=(",", ":")).encode()


def read_attributes(cert: x509.Certificate) -> dict[str, str]:
    """Return the Fabric CA attributes of ``cert`` (``{}`` when it has none).

    Raises :class:`CertificateError` if the extension is present but malformed,
    because a verifier must not silently treat a broken attribute set as empty.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(ATTRIBUTE_OID)
    except x509.ExtensionNotFound:
        return {}
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CertificateError("attribute extension is not valid JSON") from exc
    attrs = document.get("attrs") if isinstance(document, dict) else None
    if not isinstance(attrs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()
    ):
        raise CertificateError('attribute extension is not {"attrs": {string: string}}')
    return dict(attrs)


def node_ou(cert: x509.Certificate) -> str | None:
    """Return the Fabric NodeOU (the subject OU), or ``None`` if there is none."""
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    for ou in ous:
        value = ou.value if isinstance(ou.value, str) else ou.value.decode()
        if value in ("client", "peer", "admin", "orderer"):
            return value
    return None


def common_name(cert: x509.Certificate) -> str:
    """Return the subject common name (the identity's enrolment ID)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise CertificateError("certificate has no subject common name")
    value = names[0].value
    return value if isinstance(value, str) else value.decode()


def subject_key_identifier(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of the uncompressed public point, as Fabric's cryptogen computes SKIs."""
    point = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return hashlib.sha256(point).digest()


def certificate_to_pem(cert: x509.Certificate) -> bytes:
    """PEM-encode a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificate_pem(data: bytes) -> x509.Certificate:
    """Parse one PEM certificate; raise :class:`CertificateError` if it is not one."""
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError("not a PEM X.509 certificate") from exc


def _check_time(cert: x509.Certificate, now: datetime, what: str) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    if now < not_before:
        raise CertificateError(f"{what} is not valid before {not_before.isoformat()}")
    if now > not_after:
        raise CertificateError(f"{what} expired at {not_after.isoformat()}")


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_p256(cert: x509.Certificate, what: str) -> None:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CertificateError(f"{what} key is not ECDSA P-256")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_ca_usage(cert: x509.Certificate, what: str) -> None:
    if not _is_ca(cert):
        raise CertificateError(f"{what} is not a CA (basic constraints CA:TRUE missing)")
    usage = _key_usage(cert)
    if usage is None or not usage.key_cert_sign:
        raise CertificateError(f"{what} is missing keyCertSign key usage")


def _validate(
    cert: x509.Certificate,
    ca_certs: Sequence[x509.Certificate],
    now: datetime,
    usage: str,
    depth: int,
) -> None:
    what = "issuer certificate" if depth else "certificate"
    issuer = next((ca for ca in ca_certs if _signed_by(cert, ca)), None)
    if issuer is None:
        raise CertificateError(f"{what} is not issued by the organisation's CA")
    _check_time(cert, now, what)
    _check_p256(cert, what)
    if usage == "ca":
        _check_ca_usage(cert, what)
    else:
        if _is_ca(cert):
            raise CertificateError("a CA certificate cannot be used as a signing identity")
        key_usage = _key_usage(cert)
        if key_usage is None or not key_usage.digital_signature:
            raise CertificateError("certificate is missing digitalSignature key usage")
    if issuer == cert:
        return  # a self-signed root in the trusted set ends the chain
    if depth >= _MAX_CHAIN_DEPTH:
        raise CertificateError("certificate chain is too long")
    _validate(issuer, ca_certs, now, "ca", depth + 1)


def validate_certificate(
    cert: x509.Certificate,
    *,
    ca_certs: Sequence[x509.Certificate],
    now: datetime,
    usage: str = "signing",
) -> None:
    """Accept ``cert`` for ``usage`` under the organisation's ``ca_certs``, or raise.

    ``usage="signing"`` is an identity certificate (needs digitalSignature,
    must not be a CA); ``usage="ca"`` is a CA certificate (needs CA:TRUE and
    keyCertSign). Every certificate on the way to a self-signed root in
    ``ca_certs`` is checked the same way at ``now``.
    """
    if usage not in USAGES:
        raise ValueError(f"unknown certificate usage {usage!r}; expected one of {USAGES}")
    if not ca_certs:
        raise CertificateError("no CA certificates to validate against")
    _validate(cert, ca_certs, now, usage, 0)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """How AccessLedger names a certificate: lowercase hex SHA-256 of its DER, in low-S form.

    An ECDSA certificate signature ``(r, s)`` verifies exactly when
    ``(r, n - s)`` does, so anyone can re-encode a certificate
    (:func:`crypto.certtwin.signature_twin`); as Fabric's MSP sanitises
    certificates before naming them, both encodings get this one name. The
    contract, the gateway, the MSP and the auditor all name identities by it.
    """
    return hashlib.sha256(low_s_form(cert).public_bytes(serialization.Encoding.DER)).hexdigest()
