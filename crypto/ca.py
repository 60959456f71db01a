"""A department's root certificate authority (ECDSA P-256), cryptogen/Fabric CA style.

Each organisation has exactly one self-signed root. It issues identity
certificates whose subject OU is the Fabric NodeOU and, for clients, whose
Fabric CA attribute extension (OID 1.2.3.4.5.6.7.8.1) carries the
AccessLedger attributes. Key identifiers are SHA-256 of the public point, as
``cryptogen`` makes them, so these certificates sit naturally next to ones a
real Fabric toolchain produced.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crypto.certificates import (
    ATTRIBUTE_OID,
    certificate_to_pem,
    encode_attributes,
    load_certificate_pem,
    subject_key_identifier,
)
from crypto.certtwin import low_s_form
from crypto.errors import CertificateError
from crypto.identity import NodeOU
from crypto.keyfiles import load_private_key, write_private_key

#: Root CA lifetime.
CA_VALIDITY = timedelta(days=3650)
#: Lifetime of identity certificates (peers, admins, officers, ...).
IDENTITY_VALIDITY = timedelta(days=730)

#: File names inside a CA directory (``orgs/<Org>/ca``).
CA_CERT_FILE = "ca-cert.pem"
CA_KEY_FILE = "ca-key.pem"

_COUNTRY = "CN"


def _serial() -> int:
    # 127 random bits: positive, unique, below the 20-octet limit of RFC 5280.
    return secrets.randbits(127) | 1


def _check_now(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # X.509 times have whole seconds; truncating keeps not_before <= now.
    return now.replace(microsecond=0)


@dataclass(frozen=True)
class CertificateAuthority:
    """An organisation's root CA: certificate, private key, and who it speaks for."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    org: str
    msp_id: str

    @property
    def domain(self) -> str:
        """The organisation's domain, taken from the CA subject ``O``."""
        names = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        value = names[0].value if names else ""
        return value if isinstance(value, str) else value.decode()

    @classmethod
    def create(
        cls,
        *,
        org: str,
        msp_id: str,
        domain: str,
        now: datetime,
        valid_for: timedelta = CA_VALIDITY,
    ) -> CertificateAuthority:
        """Generate a new self-signed P-256 root CA for ``org``."""
        start = _check_now(now)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, _COUNTRY),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, domain),
                x509.NameAttribute(NameOID.COMMON_NAME, f"ca.{domain}"),
            ]
        )
        ski = subject_key_identifier(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_serial())
            .not_valid_before(start)
            .not_valid_after(start + valid_for)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate=low_s_form(cert), private_key=key, org=org, msp_id=msp_id)

    def issue(
        self,
        *,
        common_name: str,
        node_ou: str,
        attributes: Mapping[str, str] | None = None,
        now: datetime,
        valid_for: timedelta = IDENTITY_VALIDITY,
        public_key: ec.EllipticCurvePublicKey | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | None]:
        """Issue an identity certificate; return it with its new private key.

        When ``public_key`` is given (the holder generated its own key) no key
        is generated and the second element is ``None``. ``attributes``, when
        given, go into the Fabric CA attribute extension together with
        ``hf.EnrollmentID`` and ``hf.Type`` as Fabric CA sets them. The
        certificate never outlives the CA.
        """
        if node_ou not in {ou.value for ou in NodeOU}:
            raise CertificateError(f"unknown NodeOU {node_ou!r}")
        start = _check_now(now)
        private_key: ec.EllipticCurvePrivateKey | None = None
        if public_key is None:
            private_key = ec.generate_private_key(ec.SECP256R1())
            public_key = private_key.public_key()
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise CertificateError("identity keys must be ECDSA P-256")
        end = min(start + valid_for, self.certificate.not_valid_after_utc)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, _COUNTRY),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.domain),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, node_ou),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(_serial())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier(subject_key_identifier(public_key)), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier(
                    key_identifier=subject_key_identifier(self.public_key),
                    authority_cert_issuer=None,
                    authority_cert_serial_number=None,
                ),
                critical=False,
            )
        )
        if attributes is not None:
            attrs = {"hf.EnrollmentID": common_name, "hf.Type": node_ou, **attributes}
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ATTRIBUTE_OID, encode_attributes(attrs)),
                critical=False,
            )
        # Low-S, the one encoding that names it (crypto.certtwin): its fingerprint is stable.
        return low_s_form(builder.sign(self.private_key, hashes.SHA256())), private_key

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The CA's public key."""
        return self.private_key.public_key()

    def revocation_list(
        self,
        revoked: Mapping[int, datetime],
        *,
        now: datetime,
        next_update: timedelta = timedelta(days=30),
    ) -> x509.CertificateRevocationList:
        """A CRL signed by this CA listing ``revoked`` (serial number -> revocation time).

        Fabric MSPs read CRLs from their config's ``revocation_list``; a CRL
        replaces the previous one of the same issuer, so it must list every
        certificate revoked so far, not only the newest.
        """
        now = _check_now(now)
        if not revoked:
            raise CertificateError("a revocation list needs at least one revoked certificate")
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + next_update)
        )
        for serial, when in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(_check_now(when))
                .build()
            )
        return builder.sign(self.private_key, hashes.SHA256())

    def save(self, directory: Path, *, passphrase: bytes | None = None) -> None:
        """Write ``ca-cert.pem`` and ``ca-key.pem`` (mode 0600) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CA_CERT_FILE).write_bytes(certificate_to_pem(self.certificate))
        write_private_key(directory / CA_KEY_FILE, self.private_key, passphrase=passphrase)

    @classmethod
    def load(
        cls, directory: Path, *, org: str, msp_id: str, passphrase: bytes | None = None
    ) -> CertificateAuthority:
        """Read a CA written by :meth:`save`; the key must match the certificate."""
        cert = load_certificate_pem((directory / CA_CERT_FILE).read_bytes())
        key = load_private_key(directory / CA_KEY_FILE, passphrase=passphrase)
        if key.public_key() != cert.public_key():
            raise CertificateError(f"CA key in {directory} does not match its certificate")
        return cls(certificate=cert, private_key=key, org=org, msp_id=msp_id)
