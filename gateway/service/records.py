"""Record registration: validate, tier, encrypt, seal, store -- then the client proposes.

:meth:`RecordService.draft` is the gateway's half of ``POST /v1/records``
(and ``/versions``):

1. the subject: a ``ps1:`` pseudonym, or a GB 11643 number pseudonymised
   here with the consortium secret (the number is not kept);
2. the **anchored** catalogue validates the fields and names the record's
   region and owner department;
3. the contract is asked, by a dry-run of ``RegisterRecord``/``AmendRecord``
   with the caller as creator, whether this caller may register this record
   at all -- so nothing is stored for a caller the contract would refuse;
4. each tier group is encrypted under a fresh key (XChaCha20-Poly1305, the
   record id, version, type and tier as associated data), the key is sealed
   to the owning department's custodian, and both go to the owner's store.

The answer carries the exact chaincode argument. :meth:`check_stored` runs
when the client proposes it: every content address must be in the owner's
store with its sealed key, so the ledger never names a ciphertext that
does not exist.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chaincode.ledger import RECORD
from crypto.envelope import (
    AssociatedData,
    content_address,
    encrypt_tier,
    generate_tier_key,
    seal_key,
)
from crypto.errors import IdentityNumberError
from crypto.identity import Identity
from crypto.pseudonym import pseudonym
from gateway.custodian_keys import Sealing
from gateway.errors import GatewayError, NotFound, RequestInvalid
from gateway.schemas import AmendmentInput, RecordInput
from gateway.service.ledger import LedgerClient
from gateway.service.policy import PolicyCache
from gateway.store import (
    RecordErasedError,
    StoreBusyError,
    StoreError,
    StoreRegistry,
    TierKeyEntry,
)
from policies.canonical import CanonicalJSONError, canonical_json
from policies.errors import CatalogueValidationError, UnknownRecordTypeError
from policies.vocabulary import TIERS

REGISTER: str = "RegisterRecord"
AMEND: str = "AmendRecord"


@dataclass(frozen=True)
class Draft:
    """A stored record version and its chaincode argument."""

    record_id: str
    version: int
    record_type: str
    schema_version: int
    owner_org: str
    region: str
    subject: str
    function: str
    tiers: dict[str, dict[str, Any]]
    argument: dict[str, Any]


def _require_canonical(body: AmendmentInput) -> None:
    """Refuse caller content that has no canonical JSON form (``422 request_invalid``).

    The tier payloads are encrypted as canonical JSON and the metadata goes
    to the contract as canonical JSON, which has no form for an integer
    beyond the IEEE-754 safe range or a lone surrogate. The request schema
    refuses those already; this keeps a body that bypassed it from failing
    half-way, after the contract was asked or a tier stored.
    """
    try:
        canonical_json({"fields": body.fields, "metadata": body.metadata or {}})
    except CanonicalJSONError as exc:
        raise RequestInvalid(
            f"the record holds a value with no canonical JSON form: {exc.message}"
        ) from exc


class RecordService:
    """The gateway's side of record registration (see the module docstring)."""

    def __init__(
        self,
        *,
        ledger: LedgerClient,
        policy: PolicyCache,
        stores: StoreRegistry,
        sealing: Sealing,
        consortium_secret: bytes,
    ) -> None:
        self.ledger = ledger
        self.policy = policy
        self.stores = stores
        self._sealing = sealing
        self._secret = consortium_secret

    def _subject(self, body: AmendmentInput) -> str:
        given = [v for v in (body.subject, body.subject_identity_number) if v is not None]
        if len(given) != 1:
            raise GatewayError(
                "give exactly one of subject (a ps1: pseudonym) and subject_identity_number",
                code="request_invalid",
                status=422,
            )
        if body.subject is not None:
            return body.subject
        try:
            return pseudonym(given[0], self._secret)
        except IdentityNumberError as exc:
            # The message names the failed check, never the number.
            raise GatewayError(
                f"subject_identity_number: {exc.message}",
                code="identity_number_invalid",
                status=422,
            ) from exc

    async def draft(
        self,
        caller: Identity,
        body: AmendmentInput,
        *,
        now: datetime,
        amend: str | None = None,
    ) -> Draft:
        """Validate, dry-run, encrypt and store one record version (module docstring)."""
        _require_canonical(body)
        subject = self._subject(body)
        catalogue = self.policy.current().bundle.catalogue
        try:
            schema_version = body.schema_version or catalogue.latest_version(body.record_type)
            owner = catalogue.owner_org(body.record_type, schema_version)
            region = catalogue.region_of(body.record_type, schema_version, body.fields)
            groups = catalogue.split_by_tier(body.record_type, schema_version, body.fields)
        except UnknownRecordTypeError as exc:
            raise GatewayError(exc.message, code="unknown_record_type", status=422) from exc
        except CatalogueValidationError as exc:
            raise GatewayError(
                exc.message,
                code="record_invalid",
                status=422,
                pointer=getattr(exc, "pointer", None),
                rule=getattr(exc, "rule", None),
            ) from exc
        if amend is None:
            record_id = (
                body.record_id
                if isinstance(body, RecordInput) and body.record_id
                else f"rec-{uuid.uuid4().hex}"
            )
            version, function = 1, REGISTER
        else:
            current = self.ledger.state_json(RECORD, amend)
            if current is None:
                raise NotFound(f"record {amend} does not exist", code="record_not_found")
            record_id, version, function = amend, int(current["version"]) + 1, AMEND

        argument: dict[str, Any] = {
            "record_id": record_id,
            "record_type": body.record_type,
            "schema_version": schema_version,
            "subject": subject,
            "region": region,
            # Placeholder addresses for the dry run; the real ones replace them below.
            "tiers": {tier: {"content_address": "0" * 64, "size": 0} for tier in TIERS},
            "metadata": dict(body.metadata or {}),
        }
        # The contract decides whether this caller may register this record (nothing
        # is stored otherwise); its refusal comes back with the contract's own code.
        await self.ledger.query(caller, function, argument, now=now)

        tiers = await asyncio.to_thread(
            self._encrypt_and_store, owner, record_id, version, body.record_type, groups
        )
        argument["tiers"] = tiers
        return Draft(
            record_id=record_id,
            version=version,
            record_type=body.record_type,
            schema_version=schema_version,
            owner_org=owner,
            region=region,
            subject=subject,
            function=function,
            tiers=tiers,
            argument=argument,
        )

    def _encrypt_and_store(
        self,
        owner: str,
        record_id: str,
        version: int,
        record_type: str,
        groups: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, dict[str, Any]]:
        """Encrypt each tier group under a fresh key, seal it, store both; the tiers' refs."""
        store = self.stores.store(owner)
        tiers: dict[str, dict[str, Any]] = {}
        try:
            with self._sealing(owner) as (custodian, key_id):
                rows = []
                for tier in TIERS:
                    key = generate_tier_key()
                    ad = AssociatedData(record_id, version, record_type, tier)
                    ciphertext = encrypt_tier(key, canonical_json(dict(groups[tier])), ad)
                    address = content_address(ciphertext)
                    entry = TierKeyEntry(
                        record_id=record_id,
                        version=version,
                        tier=tier,
                        sealed_key=seal_key(key, custodian),
                        address=address,
                        size=len(ciphertext),
                        key_id=key_id,
                    )
                    rows.append((ciphertext, entry))
                    tiers[tier] = {"content_address": address, "size": len(ciphertext)}
                # All tiers in one store transaction: a record is stored whole or not at all.
                store.put_record_tiers(rows)
        except RecordErasedError as exc:
            raise GatewayError(exc.message, code="record_erased", status=410) from exc
        except StoreBusyError as exc:
            raise GatewayError(
                f"the {owner} store is busy with another write; try again",
                code="store_busy",
                status=503,
            ) from exc
        except StoreError as exc:
            raise GatewayError(
                f"record {record_id} v{version} is already stored differently; amend instead",
                code="record_exists",
                status=409,
            ) from exc
        return tiers

    def check_stored(self, function: str, argument: Mapping[str, Any], *, tx_id: str) -> None:
        """Refuse a record argument naming ciphertext that is not in the owner's store."""
        try:
            record_id = str(argument["record_id"])
            record_type = str(argument["record_type"])
            schema_version = int(argument["schema_version"])
            tiers = dict(argument["tiers"])
            owner = self.policy.current().bundle.catalogue.owner_org(record_type, schema_version)
        except (KeyError, TypeError, ValueError, UnknownRecordTypeError):
            # Malformed arguments are the contract's to refuse, with its own message.
            return
        version = 1
        if function == AMEND:
            current = self.ledger.state_json(RECORD, record_id)
            if current is None:
                return  # the contract answers not_found
            version = int(current["version"]) + 1
        store = self.stores.store(owner)
        for tier, entry in tiers.items():
            try:
                stored = store.get_tier_key(record_id=record_id, version=version, tier=str(tier))
            except StoreError:
                stored = None
            address = entry.get("content_address") if isinstance(entry, dict) else None
            if stored is None or stored.address != address:
                raise GatewayError(
                    f"the {owner} store holds no ciphertext {tier} for record {record_id}"
                    f" v{version}; register it through POST /v1/records first",
                    code="record_not_stored",
                    status=409,
                    tx_id=tx_id,
                )
