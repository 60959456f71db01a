"""Read a Fabric MSP folder into the ``MSPConfig`` a channel configuration carries.

The layout is Fabric's (``cacerts``, ``intermediatecerts``, ``admincerts``,
``tlscacerts``, ``tlsintermediatecerts``, ``crls``, ``config.yaml`` with
NodeOUs); :func:`load_msp_config` follows Fabric's verifying-MSP loader, so a
folder written by ``cryptogen``, Fabric CA or :mod:`crypto.msp` gives the same
``MSPConfig`` the ``configtxgen`` tool would put into a config block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fabric_protos.msp import msp_config_pb2 as _msp_config

from network.fabric.errors import ConfigError

# The generated protobuf modules ship without type stubs; use them untyped.
msp_config_pb2: Any = _msp_config
MSPConfig = Any

__all__ = ["load_msp_config"]


def _encode(message: Any) -> bytes:
    return bytes(message.SerializeToString(deterministic=True))


_NODE_OU_FIELDS = (
    ("ClientOUIdentifier", "client_ou_identifier"),
    ("PeerOUIdentifier", "peer_ou_identifier"),
    ("AdminOUIdentifier", "admin_ou_identifier"),
    ("OrdererOUIdentifier", "orderer_ou_identifier"),
)


def _pem_files(folder: Path) -> list[bytes]:
    """Every PEM file in ``folder`` by name, whole-file bytes, as Fabric's getPemMaterialFromDir."""
    if not folder.is_dir():
        return []
    contents = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        data = path.read_bytes()
        if b"-----BEGIN" in data:  # Fabric skips (with a warning) files holding no PEM block
            contents.append(data)
    return contents


def _read_msp_file(msp_dir: Path, relative: Any, where: str) -> bytes:
    if not isinstance(relative, str) or not relative:
        return b""
    try:
        return (msp_dir / relative).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{msp_dir}/config.yaml {where}: cannot read {relative}: {exc.strerror}"
        ) from None


def load_msp_config(msp_dir: Path, msp_id: str) -> MSPConfig:
    """Read a Fabric MSP folder into the ``MSPConfig`` a channel config carries.

    Follows Fabric's verifying-MSP loader: ``cacerts`` (at least one),
    ``intermediatecerts``, ``admincerts``, ``tlscacerts``,
    ``tlsintermediatecerts``, ``crls`` and ``config.yaml`` (NodeOUs and
    OrganizationalUnitIdentifiers, certificate paths relative to the folder).
    NodeOUs must be enabled: AccessLedger's policies name peer, admin and
    client roles, which only NodeOUs can tell apart.
    """
    msp_dir = Path(msp_dir)
    root_certs = _pem_files(msp_dir / "cacerts")
    if not root_certs:
        raise ConfigError(f"MSP folder {msp_dir} for {msp_id} has no CA certificate in cacerts/")
    config = msp_config_pb2.FabricMSPConfig(
        name=msp_id,
        root_certs=root_certs,
        intermediate_certs=_pem_files(msp_dir / "intermediatecerts"),
        admins=_pem_files(msp_dir / "admincerts"),
        revocation_list=_pem_files(msp_dir / "crls"),
        tls_root_certs=_pem_files(msp_dir / "tlscacerts"),
        tls_intermediate_certs=_pem_files(msp_dir / "tlsintermediatecerts"),
        crypto_config=msp_config_pb2.FabricCryptoConfig(
            signature_hash_family="SHA2", identity_identifier_hash_function="SHA256"
        ),
    )
    config_path = msp_dir / "config.yaml"
    try:
        document = (
            yaml.safe_load(config_path.read_text(encoding="utf-8"))
            if config_path.is_file()
            else None
        )
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path} is not valid YAML: {exc}") from None
    document = document if isinstance(document, dict) else {}
    for i, entry in enumerate(document.get("OrganizationalUnitIdentifiers") or []):
        if isinstance(entry, dict):
            config.organizational_unit_identifiers.add(
                certificate=_read_msp_file(
                    msp_dir, entry.get("Certificate"), f"OrganizationalUnitIdentifiers[{i}]"
                ),
                organizational_unit_identifier=str(entry.get("OrganizationalUnitIdentifier", "")),
            )
    node_ous = document.get("NodeOUs")
    if not isinstance(node_ous, dict) or node_ous.get("Enable") is not True:
        raise ConfigError(
            f"MSP folder {msp_dir} for {msp_id} does not enable NodeOUs in config.yaml"
        )
    config.fabric_node_ous.enable = True
    for yaml_key, field_name in _NODE_OU_FIELDS:
        entry = node_ous.get(yaml_key)
        if isinstance(entry, dict):
            identifier = getattr(config.fabric_node_ous, field_name)
            identifier.organizational_unit_identifier = str(
                entry.get("OrganizationalUnitIdentifier", "")
            )
            identifier.certificate = _read_msp_file(
                msp_dir, entry.get("Certificate"), f"NodeOUs.{yaml_key}"
            )
    return msp_config_pb2.MSPConfig(type=0, config=_encode(config))  # type 0: FABRIC
