"""Fabric MSP folders: write and read ``cacerts``, ``signcerts``, ``keystore``, ``config.yaml``.

The layout and the NodeOUs ``config.yaml`` are the ones Fabric's ``cryptogen``
writes, so a peer, orderer or Fabric client pointed at one of these folders
(``CORE_PEER_MSPCONFIGPATH`` and friends) accepts it as is. An organisation's
MSP (what goes in a channel config) holds only public material; a local MSP
(one identity's) adds ``signcerts`` and ``keystore``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.certificates import certificate_to_pem, load_certificate_pem
from crypto.errors import CertificateError, CryptoError
from crypto.keyfiles import load_private_key, write_private_key

CACERTS = "cacerts"
SIGNCERTS = "signcerts"
KEYSTORE = "keystore"
CONFIG_YAML = "config.yaml"
CA_CERT_NAME = "ca-cert.pem"
SIGNCERT_NAME = "cert.pem"
KEY_NAME = "key.pem"

#: Fabric's NodeOU identifier keys in config.yaml, in cryptogen's order.
_NODE_OU_KEYS = (
    ("ClientOUIdentifier", "client"),
    ("PeerOUIdentifier", "peer"),
    ("AdminOUIdentifier", "admin"),
    ("OrdererOUIdentifier", "orderer"),
)


def node_ous_config(ca_cert_name: str = CA_CERT_NAME) -> dict[str, Any]:
    """The NodeOUs section of ``config.yaml``, identical in shape to cryptogen's."""
    certificate = f"{CACERTS}/{ca_cert_name}"
    node_ous: dict[str, Any] = {"Enable": True}
    for key, ou in _NODE_OU_KEYS:
        node_ous[key] = {"Certificate": certificate, "OrganizationalUnitIdentifier": ou}
    return {"NodeOUs": node_ous}


def _write_config(msp_dir: Path, ca_cert_name: str) -> None:
    text = yaml.safe_dump(node_ous_config(ca_cert_name), sort_keys=False)
    (msp_dir / CONFIG_YAML).write_text(text, encoding="utf-8")


def write_org_msp(msp_dir: Path, ca_cert: x509.Certificate) -> None:
    """Write an organisation MSP: ``cacerts/ca-cert.pem`` and ``config.yaml``."""
    (msp_dir / CACERTS).mkdir(parents=True, exist_ok=True)
    (msp_dir / CACERTS / CA_CERT_NAME).write_bytes(certificate_to_pem(ca_cert))
    _write_config(msp_dir, CA_CERT_NAME)


def write_local_msp(
    msp_dir: Path,
    *,
    ca_cert: x509.Certificate,
    certificate: x509.Certificate,
    private_key: ec.EllipticCurvePrivateKey | None,
    passphrase: bytes | None = None,
) -> None:
    """Write one identity's MSP; the key goes to ``keystore/key.pem`` with mode 0600."""
    write_org_msp(msp_dir, ca_cert)
    (msp_dir / SIGNCERTS).mkdir(exist_ok=True)
    (msp_dir / SIGNCERTS / SIGNCERT_NAME).write_bytes(certificate_to_pem(certificate))
    keystore = msp_dir / KEYSTORE
    keystore.mkdir(exist_ok=True)
    keystore.chmod(0o700)
    if private_key is not None:
        write_private_key(keystore / KEY_NAME, private_key, passphrase=passphrase)


def read_ca_certs(msp_dir: Path) -> list[x509.Certificate]:
    """Read every certificate in ``msp_dir/cacerts`` (sorted by file name)."""
    folder = msp_dir / CACERTS
    if not folder.is_dir():
        raise CryptoError(f"{msp_dir} is not an MSP folder (no {CACERTS}/)", code="msp_invalid")
    certs = [load_certificate_pem(p.read_bytes()) for p in sorted(folder.glob("*.pem"))]
    if not certs:
        raise CryptoError(f"{folder} holds no CA certificate", code="msp_invalid")
    return certs


def read_node_ous(msp_dir: Path) -> dict[str, str]:
    """Return ``{ou: cacert path}`` from ``config.yaml``; ``{}`` if NodeOUs are disabled."""
    path = msp_dir / CONFIG_YAML
    if not path.is_file():
        return {}
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    node_ous = document.get("NodeOUs") if isinstance(document, dict) else None
    if not isinstance(node_ous, dict) or not node_ous.get("Enable"):
        return {}
    result: dict[str, str] = {}
    for key, _ in _NODE_OU_KEYS:
        entry = node_ous.get(key)
        if isinstance(entry, dict):
            result[str(entry.get("OrganizationalUnitIdentifier"))] = str(entry.get("Certificate"))
    return result


@dataclass(frozen=True)
class LocalMSP:
    """The contents of one identity's MSP folder."""

    ca_certs: list[x509.Certificate]
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey | None


def read_local_msp(
    msp_dir: Path, *, with_key: bool = True, passphrase: bytes | None = None
) -> LocalMSP:
    """Read an identity MSP; with ``with_key`` the key must exist and match the certificate."""
    ca_certs = read_ca_certs(msp_dir)
    signcerts = sorted((msp_dir / SIGNCERTS).glob("*.pem"))
    if len(signcerts) != 1:
        raise CryptoError(
            f"{msp_dir / SIGNCERTS} must hold exactly one certificate", code="msp_invalid"
        )
    certificate = load_certificate_pem(signcerts[0].read_bytes())
    private_key = None
    if with_key:
        private_key = load_private_key(msp_dir / KEYSTORE / KEY_NAME, passphrase=passphrase)
        if private_key.public_key() != certificate.public_key():
            raise CertificateError(f"key in {msp_dir / KEYSTORE} does not match the signcert")
    return LocalMSP(ca_certs=ca_certs, certificate=certificate, private_key=private_key)
