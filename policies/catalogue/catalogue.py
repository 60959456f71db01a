"""The record-type catalogue: versioned JSON Schemas with a tier for every field.

The catalogue is the inter-provincial exchange format (``docs/exchange-format.md``).
Each record type and version is one JSON Schema (draft 2020-12) whose top-level
properties carry an ``x-tier`` annotation (``T0`` metadata to ``T3``
restricted). A payload is validated against its schema, then split into one
group per tier; each group is encrypted separately, so a grant at tier ``Tn``
releases exactly the groups ``T0..Tn``.

The catalogue checks its own schemas when it is built (meta-schema, tier
annotations, no identifying field in T0, unknown fields rejected), so a bundle
carrying a careless schema fails at install time rather than leaking later.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any, Final

from jsonschema import (  # type: ignore[import-untyped]
    Draft202012Validator,
    FormatChecker,
    validators,
)
from jsonschema.exceptions import (  # type: ignore[import-untyped]
    SchemaError,
    ValidationError,
)

from crypto.pseudonym import check_character
from policies.canonical import canonical_json, canonical_sha256
from policies.errors import CatalogueError, CatalogueValidationError, UnknownRecordTypeError
from policies.vocabulary import TIERS

#: Identifies the canonical serialisation of a catalogue (part of what is hashed).
CATALOGUE_FORMAT: Final = "accessledger-catalogue/1"

_DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"
_FILE_NAME = re.compile(r"^(?P<type>[a-z][a-z0-9_]{1,63})\.v(?P<version>[1-9][0-9]{0,3})\.json$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _date_order(
    validator: Any, pairs: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    """``x-date-order: [[earlier, later], ...]``: ``later`` may not precede ``earlier``.

    JSON Schema cannot compare two fields, yet "valid_to before valid_from" is
    the most common data-entry error in permits and leases, so the catalogue
    adds this one keyword. Malformed dates are left to the ``format`` check.
    """
    if not validator.is_type(instance, "object"):
        return
    for earlier, later in pairs:
        first, second = instance.get(earlier), instance.get(later)
        if not (isinstance(first, str) and isinstance(second, str)):
            continue
        if not (_ISO_DATE.match(first) and _ISO_DATE.match(second)):
            continue
        try:
            if date.fromisoformat(second) < date.fromisoformat(first):
                yield ValidationError(f"must not be before {earlier}", path=[later])
        except ValueError:
            continue


_CatalogueValidator = validators.extend(Draft202012Validator, {"x-date-order": _date_order})


def _is_gb11643(instance: object) -> bool:
    """``format: gb11643``: a resident identity number with a valid birth date and check character.

    Deterministic on purpose (no "birth date not in the future" test), so the
    same payload validates the same way on every node and in every replay.
    """
    if not isinstance(instance, str):
        return True
    if len(instance) != 18 or not (instance[:17].isascii() and instance[:17].isdigit()):
        return False
    try:
        date(int(instance[6:10]), int(instance[10:12]), int(instance[12:14]))
    except ValueError:
        return False
    return check_character(instance[:17]) == instance[17]


_FORMAT_CHECKER = FormatChecker()
_FORMAT_CHECKER.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
_FORMAT_CHECKER.checks("gb11643")(_is_gb11643)


@dataclass(frozen=True)
class RecordSchema:
    """One record type at one version, with its tier map and compiled validator."""

    record_type: str
    version: int
    owner_org: str
    region_field: str
    field_tiers: Mapping[str, str]
    document: Mapping[str, Any] = field(repr=False)
    _validator: Any = field(repr=False, compare=False)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> RecordSchema:
        """Check a schema document against the catalogue's conventions and compile it."""
        doc: dict[str, Any] = copy.deepcopy(dict(document))
        record_type = doc.get("x-record-type")
        version = doc.get("x-version")
        where = f"{record_type} v{version}"
        if not isinstance(record_type, str) or not re.fullmatch(
            r"[a-z][a-z0-9_]{1,63}", record_type
        ):
            raise CatalogueError("schema lacks a valid x-record-type")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise CatalogueError(f"{record_type}: x-version must be a positive integer")
        if doc.get("$schema") != _DRAFT_2020_12:
            raise CatalogueError(f"{where}: $schema must be {_DRAFT_2020_12}")
        try:
            _CatalogueValidator.check_schema(doc)
        except SchemaError as exc:
            raise CatalogueError(f"{where}: not a valid JSON Schema: {exc.message}") from None
        if doc.get("type") != "object" or doc.get("additionalProperties") is not False:
            raise CatalogueError(
                f"{where}: must be an object schema with additionalProperties false"
            )
        owner = doc.get("x-owner-org")
        if not isinstance(owner, str) or not owner:
            raise CatalogueError(f"{where}: x-owner-org is required")
        properties = doc.get("properties")
        if not isinstance(properties, dict) or not properties:
            raise CatalogueError(f"{where}: properties are required")
        tiers: dict[str, str] = {}
        for name, prop in properties.items():
            tier = prop.get("x-tier") if isinstance(prop, dict) else None
            if tier not in TIERS:
                raise CatalogueError(f"{where}: /properties/{name} needs x-tier in {TIERS}")
            if tier == "T0" and prop.get("x-identifying") is True:
                raise CatalogueError(f"{where}: /properties/{name} identifies a person; not in T0")
            if _nested_tier(prop):
                raise CatalogueError(
                    f"{where}: /properties/{name}: x-tier only on top-level fields"
                )
            tiers[name] = tier
        missing = [name for name in doc.get("required", []) if name not in properties]
        if missing:
            raise CatalogueError(f"{where}: required names undefined fields {missing}")
        region_field = doc.get("x-region-field")
        if region_field not in tiers or tiers[region_field] != "T0":
            raise CatalogueError(f"{where}: x-region-field must name a T0 field")
        if region_field not in doc.get("required", []):
            raise CatalogueError(f"{where}: x-region-field must be required")
        compiled = cls(
            record_type=record_type,
            version=version,
            owner_org=owner,
            region_field=region_field,
            field_tiers=tiers,
            document=doc,
            _validator=_CatalogueValidator(doc, format_checker=_FORMAT_CHECKER),
        )
        # Examples are part of the exchange format's documentation; a schema
        # whose own examples fail it is inconsistent.
        for index, example in enumerate(doc.get("examples", [])):
            try:
                compiled.validate(example)
            except CatalogueValidationError as exc:
                raise CatalogueError(f"{where}: example {index}: {exc.message}") from None
        return compiled

    def validate(self, payload: Any) -> None:
        """Raise :class:`CatalogueValidationError` naming the first bad field and rule."""
        if not isinstance(payload, Mapping):
            raise CatalogueValidationError(
                f"{self.record_type} v{self.version}: payload must be a JSON object (rule: type)",
                pointer="",
                rule="type",
            )
        found = [_describe(error) for error in self._validator.iter_errors(dict(payload))]
        if not found:
            return
        found.sort()
        pointer, rule, text = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise CatalogueValidationError(
            f"{self.record_type} v{self.version}: {pointer or '/'} {text} (rule: {rule}){more}",
            pointer=pointer,
            rule=rule,
        )


def _nested_tier(node: Any, top: bool = True) -> bool:
    """Whether ``x-tier`` appears anywhere below a top-level property."""
    if isinstance(node, dict):
        if not top and "x-tier" in node:
            return True
        return any(_nested_tier(value, top=False) for value in node.values())
    if isinstance(node, list):
        return any(_nested_tier(item, top=False) for item in node)
    return False


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _describe(error: ValidationError) -> tuple[str, str, str]:
    """Return (JSON pointer, rule, text) for one error, never echoing payload values."""
    rule = str(error.validator)
    path = list(error.absolute_path)
    value = error.validator_value
    if rule == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        absent = sorted(name for name in value if name not in present)
        return _pointer([*path, absent[0]]), rule, "is required"
    if rule == "additionalProperties":
        declared = set(error.schema.get("properties", {}))
        extra = sorted(str(name)[:64] for name in error.instance if name not in declared)
        return _pointer([*path, extra[0]]), rule, "is not a field of this schema"
    if rule == "x-date-order":
        return _pointer(path), rule, error.message
    texts: dict[str, Callable[[Any], str]] = {
        "type": lambda v: f"must be of type {v if isinstance(v, str) else ' or '.join(v)}",
        "enum": lambda v: (
            "must be one of: " + ", ".join(json.dumps(x, ensure_ascii=False) for x in v)
        ),
        "const": lambda v: "must equal the fixed value",
        "pattern": lambda v: f"does not match the pattern {v}",
        "format": lambda v: f"is not a valid {v}",
        "minLength": lambda v: f"must be at least {v} characters",
        "maxLength": lambda v: f"must be at most {v} characters",
        "minimum": lambda v: f"must be >= {v}",
        "maximum": lambda v: f"must be <= {v}",
        "exclusiveMinimum": lambda v: f"must be > {v}",
        "exclusiveMaximum": lambda v: f"must be < {v}",
        "minItems": lambda v: f"must have at least {v} items",
        "maxItems": lambda v: f"must have at most {v} items",
        "uniqueItems": lambda v: "must not contain duplicates",
        "minProperties": lambda v: f"must have at least {v} members",
        "maxProperties": lambda v: f"must have at most {v} members",
    }
    describe = texts.get(rule)
    return _pointer(path), rule, describe(value) if describe else f"violates {rule}"


class Catalogue:
    """An immutable set of record schemas, keyed by (record type, version)."""

    def __init__(self, schemas: Mapping[tuple[str, int], RecordSchema]) -> None:
        if not schemas:
            raise CatalogueError("a catalogue needs at least one record schema")
        for (record_type, version), schema in schemas.items():
            if (schema.record_type, schema.version) != (record_type, version):
                raise CatalogueError(f"schema keyed {record_type} v{version} declares otherwise")
        self._schemas = dict(sorted(schemas.items()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Catalogue):
            return NotImplemented
        return self.catalogue_hash == other.catalogue_hash

    def __hash__(self) -> int:
        return hash(self.catalogue_hash)

    @classmethod
    def load_default(cls) -> Catalogue:
        """Return the catalogue shipped with the package (cached; it is immutable)."""
        return _default_catalogue()

    @classmethod
    def from_documents(cls, documents: list[Mapping[str, Any]]) -> Catalogue:
        """Build a catalogue from schema documents; each names its type and version."""
        schemas: dict[tuple[str, int], RecordSchema] = {}
        for document in documents:
            schema = RecordSchema.from_document(document)
            key = (schema.record_type, schema.version)
            if key in schemas:
                raise CatalogueError(f"duplicate schema {key[0]} v{key[1]}")
            schemas[key] = schema
        return cls(schemas)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Catalogue:
        """Inverse of :meth:`to_dict`; checks every schema."""
        if not isinstance(data, Mapping) or data.get("format") != CATALOGUE_FORMAT:
            raise CatalogueError(f"catalogue must be an object with format {CATALOGUE_FORMAT!r}")
        record_types = data.get("record_types")
        if not isinstance(record_types, Mapping):
            raise CatalogueError("catalogue record_types must be an object")
        documents: list[Mapping[str, Any]] = []
        for record_type, versions in record_types.items():
            if not isinstance(versions, Mapping):
                raise CatalogueError(
                    f"catalogue entry {record_type!r} must map versions to schemas"
                )
            for version, document in versions.items():
                if not isinstance(document, Mapping):
                    raise CatalogueError(f"{record_type} v{version}: schema must be an object")
                if (document.get("x-record-type"), str(document.get("x-version"))) != (
                    record_type,
                    str(version),
                ):
                    raise CatalogueError(f"{record_type} v{version}: filed under the wrong key")
                documents.append(document)
        return cls.from_documents(documents)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"format", "record_types": {type: {"<version>": schema}}}`` (deep copy)."""
        record_types: dict[str, dict[str, Any]] = {}
        for (record_type, version), schema in self._schemas.items():
            record_types.setdefault(record_type, {})[str(version)] = copy.deepcopy(
                dict(schema.document)
            )
        return {"format": CATALOGUE_FORMAT, "record_types": record_types}

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of :meth:`to_dict`: what the catalogue hash covers."""
        return canonical_json(self.to_dict())

    @cached_property
    def catalogue_hash(self) -> str:
        """Lowercase hex SHA-256 of :meth:`canonical_bytes`."""
        return canonical_sha256(self.to_dict())

    def record_types(self) -> tuple[str, ...]:
        """All record types, sorted."""
        return tuple(sorted({record_type for record_type, _ in self._schemas}))

    def versions(self, record_type: str) -> tuple[int, ...]:
        """The versions defined for ``record_type``, ascending."""
        found = tuple(v for t, v in self._schemas if t == record_type)
        if not found:
            raise UnknownRecordTypeError(f"unknown record type {record_type!r}")
        return found

    def latest_version(self, record_type: str) -> int:
        """The highest version of ``record_type``."""
        return self.versions(record_type)[-1]

    def record_schema(self, record_type: str, version: int) -> RecordSchema:
        """The :class:`RecordSchema` of one type and version."""
        try:
            return self._schemas[(record_type, version)]
        except KeyError:
            raise UnknownRecordTypeError(
                f"unknown record type or version: {record_type!r} v{version}"
            ) from None

    def schema(self, record_type: str, version: int) -> dict[str, Any]:
        """A deep copy of the JSON Schema document of one type and version."""
        return copy.deepcopy(dict(self.record_schema(record_type, version).document))

    def owner_org(self, record_type: str, version: int) -> str:
        """The department that registers records of this type."""
        return self.record_schema(record_type, version).owner_org

    def field_tiers(self, record_type: str, version: int) -> dict[str, str]:
        """Map of top-level field name to tier."""
        return dict(self.record_schema(record_type, version).field_tiers)

    def region_of(self, record_type: str, version: int, payload: Mapping[str, Any]) -> str:
        """The record's region: the value of the schema's ``x-region-field`` (validated)."""
        self.validate(record_type, version, payload)
        return str(payload[self.record_schema(record_type, version).region_field])

    def validate(self, record_type: str, version: int, payload: Any) -> None:
        """Raise :class:`CatalogueValidationError` unless ``payload`` conforms."""
        self.record_schema(record_type, version).validate(payload)

    def split_by_tier(
        self, record_type: str, version: int, payload: Mapping[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """Validate ``payload`` and group its fields by tier.

        Always returns all four tiers as keys, in order; a tier with no field
        present maps to ``{}`` so every record has the same shape.
        """
        schema = self.record_schema(record_type, version)
        schema.validate(payload)
        groups: dict[str, dict[str, Any]] = {tier: {} for tier in TIERS}
        for name in sorted(payload):
            groups[schema.field_tiers[name]][name] = copy.deepcopy(payload[name])
        return groups

    def merge_tiers(
        self, record_type: str, version: int, groups: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Inverse of :meth:`split_by_tier` for the tiers a reader holds.

        Checks that every field sits in the group of its own tier (a custodian
        or a tampered store cannot move a T3 field into T1) but not
        ``required``: a reader granted up to T1 legitimately lacks T2 fields.
        """
        schema = self.record_schema(record_type, version)
        merged: dict[str, Any] = {}
        for tier, fields in groups.items():
            if tier not in TIERS:
                raise CatalogueError(f"unknown tier {tier!r}")
            for name, value in fields.items():
                if schema.field_tiers.get(name) != tier:
                    raise CatalogueValidationError(
                        f"{record_type} v{version}: /{name} does not belong to tier {tier} "
                        "(rule: x-tier)",
                        pointer=_pointer([name]),
                        rule="x-tier",
                    )
                merged[name] = copy.deepcopy(value)
        return merged


@lru_cache(maxsize=1)
def _default_catalogue() -> Catalogue:
    documents: list[Mapping[str, Any]] = []
    package = resources.files("policies.catalogue")
    for entry in sorted(package.iterdir(), key=lambda e: e.name):
        match = _FILE_NAME.match(entry.name)
        if not match:
            continue
        document = json.loads(entry.read_text(encoding="utf-8"))
        if (document.get("x-record-type"), document.get("x-version")) != (
            match["type"],
            int(match["version"]),
        ):
            raise CatalogueError(f"{entry.name}: file name disagrees with x-record-type/x-version")
        documents.append(document)
    return Catalogue.from_documents(documents)


def validate(record_type: str, version: int, payload: Any) -> None:
    """Validate ``payload`` against the default catalogue (see :meth:`Catalogue.validate`)."""
    _default_catalogue().validate(record_type, version, payload)


def split_by_tier(
    record_type: str, version: int, payload: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Split ``payload`` by tier using the default catalogue."""
    return _default_catalogue().split_by_tier(record_type, version, payload)
