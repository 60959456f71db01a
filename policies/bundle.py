"""The policy bundle: what governance installs on the ledger as one policy version.

A bundle is the Cedar schema, the Cedar policy files and the record-type
catalogue, with a version number. Its identity is :attr:`PolicyBundle.bundle_hash`,
the SHA-256 of its canonical bytes:

    canonical_json({
        "format": "accessledger-policy-bundle/1",
        "version": <int>,
        "cedar_schema": <schema text>,
        "policies": {<file name>: <policy text>, ...},
        "catalogue": <Catalogue.to_dict()>,
    })

``canonical_json`` is RFC 8785 (members sorted by UTF-16 code units, no
whitespace), so the hash does not depend on dict order or on who serialised
the bundle. Texts are hashed exactly as given (after the package loader's
universal-newline decoding), so any edit to any policy, the schema or the
catalogue changes the hash.

Department admins approve a bundle by signing :meth:`PolicyBundle.signed_bytes`,
a small domain-separated document naming the bundle hash and version; see
:mod:`policies.governance`. No I/O happens here beyond reading package data,
so the chaincode can use this module as is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cached_property
from typing import Any, Final

from policies.canonical import canonical_json
from policies.catalogue import Catalogue
from policies.engine import PolicySet, load_default_sources
from policies.errors import BundleError, CatalogueError, PolicySetError

#: Identifies the canonical serialisation of a bundle.
BUNDLE_FORMAT: Final = "accessledger-policy-bundle/1"
#: Identifies what an admin signs to approve a bundle (domain separation).
APPROVAL_FORMAT: Final = "accessledger-policy-approval/1"


class PolicyBundle:
    """An immutable, validated policy bundle.

    Construction validates everything: the catalogue's schemas, the Cedar
    policies against the Cedar schema and the policy conventions, so a
    ``PolicyBundle`` object is always installable.
    """

    def __init__(
        self,
        *,
        version: int,
        cedar_schema: str,
        policies: Mapping[str, str],
        catalogue: Catalogue,
    ) -> None:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleError("bundle version must be a positive integer")
        if not isinstance(cedar_schema, str) or not isinstance(policies, Mapping):
            raise BundleError("bundle needs a Cedar schema text and a mapping of policy texts")
        if not isinstance(catalogue, Catalogue):
            raise BundleError("bundle catalogue must be a Catalogue")
        try:
            self._policy_set = PolicySet(cedar_schema, policies)
        except PolicySetError as exc:
            raise BundleError(f"bundle policies are invalid: {exc.message}") from None
        self._version = version
        self._cedar_schema = cedar_schema
        self._policies = dict(sorted(policies.items()))
        self._catalogue = catalogue

    @classmethod
    def load_default(cls, version: int = 1) -> PolicyBundle:
        """The bundle made of the packaged schema, policies and catalogue."""
        schema_text, policies = load_default_sources()
        return cls(
            version=version,
            cedar_schema=schema_text,
            policies=policies,
            catalogue=Catalogue.load_default(),
        )

    @property
    def version(self) -> int:
        return self._version

    @property
    def cedar_schema(self) -> str:
        return self._cedar_schema

    @property
    def policies(self) -> dict[str, str]:
        """``{file name: policy text}`` (a copy)."""
        return dict(self._policies)

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    @property
    def policy_set(self) -> PolicySet:
        """The compiled policy set of this bundle."""
        return self._policy_set

    def with_version(self, version: int) -> PolicyBundle:
        """The same content under another version number (a new hash)."""
        return PolicyBundle(
            version=version,
            cedar_schema=self._cedar_schema,
            policies=self._policies,
            catalogue=self._catalogue,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "version": self._version,
            "cedar_schema": self._cedar_schema,
            "policies": dict(self._policies),
            "catalogue": self._catalogue.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyBundle:
        """Inverse of :meth:`to_dict`; raises :class:`BundleError` on any defect."""
        if not isinstance(data, Mapping) or data.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"policy bundle must be an object with format {BUNDLE_FORMAT!r}")
        expected = {"format", "version", "cedar_schema", "policies", "catalogue"}
        if set(data) != expected:
            raise BundleError(f"policy bundle must have exactly the fields {sorted(expected)}")
        policies = data["policies"]
        if not isinstance(policies, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in policies.items()
        ):
            raise BundleError("bundle policies must map file names to texts")
        try:
            catalogue = Catalogue.from_dict(data["catalogue"])
        except CatalogueError as exc:
            raise BundleError(f"bundle catalogue is invalid: {exc.message}") from None
        return cls(
            version=data["version"],
            cedar_schema=data["cedar_schema"],
            policies=policies,
            catalogue=catalogue,
        )

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of :meth:`to_dict`."""
        return canonical_json(self.to_dict())

    @cached_property
    def bundle_hash(self) -> str:
        """Lowercase hex SHA-256 of :meth:`canonical_bytes`."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def signed_bytes(self) -> bytes:
        """The bytes a department admin signs to approve installing this bundle."""
        return canonical_json(
            {"format": APPROVAL_FORMAT, "bundle_hash": self.bundle_hash, "version": self._version}
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PolicyBundle):
            return NotImplemented
        return self.bundle_hash == other.bundle_hash

    def __hash__(self) -> int:
        return hash(self.bundle_hash)

    def __repr__(self) -> str:
        return f"PolicyBundle(version={self._version}, bundle_hash={self.bundle_hash[:16]}...)"
