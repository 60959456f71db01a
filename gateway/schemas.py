"""Request and response bodies of the HTTP API (pydantic v2), with OpenAPI examples.

Request models forbid unknown members (``extra="forbid"``): a misspelt field
is a ``422 request_invalid``, never silently ignored. Binary values are
base64 strings. ``docs/api.md`` explains each flow; these models are its
machine-readable half.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from policies.canonical import CanonicalJSONError, canonical_json

_B64 = r"^[A-Za-z0-9+/]*={0,2}$"
_HEX64 = r"^[0-9a-f]{64}$"
_SNAKE = r"^[a-z][a-z0-9_]{0,63}$"
_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
_PSEUDONYM = r"^ps1:[a-z2-7]{52}$"
_IDENTITY_NUMBER = r"^[0-9]{17}[0-9Xx]$"

Base64 = Annotated[str, Field(pattern=_B64, max_length=2_000_000)]
Hex64 = Annotated[str, Field(pattern=_HEX64)]

_EXAMPLE_TX = "1b4e28ba2fa1c0d9d7e2f1a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7"
_EXAMPLE_HASH = "9c1e6bd1b3f0c2a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4"


class Strict(BaseModel):
    """Request bodies: unknown members are refused."""

    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    """Response bodies."""

    model_config = ConfigDict(extra="forbid")


# -- requests -------------------------------------------------------------------------------


class ProposalBody(Strict):
    """A caller-signed ``peer.SignedProposal`` (base64) for this endpoint's chaincode function."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"proposal": "CpQHCk8IAxoMCKLx..."}]}
    )
    proposal: Base64


class AccessRequestBody(ProposalBody):
    """A ``RequestAccess`` proposal and, for break-glass, optionally the justification text.

    SHA-256 of ``justification`` (UTF-8) must equal the signed request
    document's ``justification_hash``; the text is stored encrypted off-chain
    for the Audit department and never goes on the ledger.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"proposal": "CpQHCk8IAxoMCKLx..."},
                {
                    "proposal": "CpQHCk8IAxoMCKLx...",
                    "justification": "Unconscious patient in the emergency room.",
                },
            ]
        },
    )
    justification: Annotated[str, Field(min_length=1, max_length=4000)] | None = None


class ContestBody(ProposalBody):
    """A ``ContestAccess`` proposal and, optionally, the reason text (stored encrypted)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"proposal": "CpQHCk8IAxoMCKLx...", "reason": "I never applied."}]
        },
    )
    reason: Annotated[str, Field(min_length=1, max_length=4000)] | None = None


class ReviewBody(ProposalBody):
    """A ``ReviewAccess`` proposal and, optionally, the auditor's note (stored encrypted)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"proposal": "CpQHCk8IAxoMCKLx...", "note": "Emergency confirmed."}]
        },
    )
    note: Annotated[str, Field(min_length=1, max_length=4000)] | None = None


class CommitBody(Strict):
    """The creator's signature over a prepared transaction's payload bytes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"signature": "MEUCIQDx...", "include_ciphertexts": False}]
        },
    )
    signature: Annotated[str, Field(pattern=_B64, min_length=8, max_length=200)]
    include_ciphertexts: bool = False


_RECORD_EXAMPLE: dict[str, Any] = {
    "record_type": "residence_permit",
    "schema_version": 1,
    "subject_identity_number": "440304199001011233",
    "fields": {
        "permit_number": "4403002024000123",
        "issuing_city_code": "440300",
        "status": "valid",
        "valid_from": "2024-03-01",
        "valid_to": "2027-02-28",
        "holder_name": "李明",
        "holder_identity_number": "440304199001011233",
        "hukou_region_code": "510122",
        "residence_district_code": "440304",
        "residence_address": "深圳市福田区福华路 1 号",
        "residence_since": "2023-06-15",
    },
    "metadata": {"status": "valid"},
}

#: The largest magnitude of an integer with an interoperable JSON form (RFC 8785, I-JSON).
MAX_SAFE_INTEGER = 2**53 - 1
SafeInt = Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]


def _canonical(value: Any) -> Any:
    """Refuse a value that has no canonical JSON form: it cannot be encrypted or proposed.

    Integers beyond :data:`MAX_SAFE_INTEGER`, lone surrogates (in strings or
    member names) and non-finite numbers are not interoperable JSON. The
    message names the problem, never the value (it may be personal data).
    """
    try:
        canonical_json(value)
    except CanonicalJSONError as exc:
        raise ValueError(f"no canonical JSON form ({exc.message})") from None
    return value


_JSON_SAFE = (
    "Integers must lie within ±(2**53 - 1) and strings must be valid Unicode (no lone"
    " surrogates): the payload is encrypted as RFC 8785 canonical JSON."
)

Metadata = dict[str, Annotated[str, Field(max_length=64)] | SafeInt | bool]


class AmendmentInput(Strict):
    """A new version of a record: the complete payload, validated and encrypted by the gateway."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_RECORD_EXAMPLE]})
    record_type: Annotated[str, Field(pattern=_SNAKE)]
    schema_version: Annotated[int, Field(ge=1, le=9999)] | None = None
    subject: Annotated[str, Field(pattern=_PSEUDONYM)] | None = None
    subject_identity_number: Annotated[str, Field(pattern=_IDENTITY_NUMBER)] | None = None
    fields: Annotated[dict[str, Any], AfterValidator(_canonical), Field(description=_JSON_SAFE)]
    metadata: Annotated[Metadata, Field(max_length=16), AfterValidator(_canonical)] | None = None


class RecordInput(AmendmentInput):
    """A new record (version 1)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{**_RECORD_EXAMPLE, "record_id": "rp-4403-000123"}]},
    )
    record_id: Annotated[str, Field(pattern=_IDENTIFIER)] | None = None


# -- responses ------------------------------------------------------------------------------


class PolicyRef(Response):
    version: int
    bundle_hash: Hex64


class LedgerInfo(Response):
    """What a client needs to build proposals, and the gateway's limits."""

    channel: str = Field(examples=["accessledger"])
    chaincode: str = Field(examples=["accessledger"])
    height: int = Field(examples=[42])
    tip_hash: Hex64
    policy: PolicyRef | None
    grant_ttl_seconds: int = Field(examples=[900])
    max_clock_skew_seconds: int = Field(examples=[300])
    pending_ttl_seconds: int = Field(examples=[120])


class TierRef(Response):
    content_address: Hex64
    size: int


class RecordDraft(Response):
    """A stored, encrypted record version and the exact chaincode argument to propose."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "record_id": "rp-4403-000123",
                    "version": 1,
                    "record_type": "residence_permit",
                    "schema_version": 1,
                    "owner_org": "PublicSecurity",
                    "region": "440300",
                    "subject": "ps1:3q2xk7...",
                    "function": "RegisterRecord",
                    "tiers": {"T0": {"content_address": _EXAMPLE_HASH, "size": 241}},
                    "argument": {"record_id": "rp-4403-000123", "...": "..."},
                }
            ]
        },
    )
    record_id: str
    version: int
    record_type: str
    schema_version: int
    owner_org: str
    region: str
    subject: str
    function: Literal["RegisterRecord", "AmendRecord"]
    tiers: dict[str, TierRef]
    argument: dict[str, Any]


class PreparedTransaction(Response):
    """An endorsed transaction: sign the base64-decoded ``transaction`` bytes and commit."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tx_id": _EXAMPLE_TX,
                    "function": "RequestAccess",
                    "transaction": "CpYHCk8IAxoMCK...",
                    "transaction_sha256": _EXAMPLE_HASH,
                    "endorsed_by": ["peer0.education", "peer0.audit"],
                    "expires_at": "2026-11-29T12:02:00.000000Z",
                }
            ]
        },
    )
    tx_id: Hex64
    function: str
    transaction: Base64
    transaction_sha256: Hex64
    endorsed_by: list[str]
    expires_at: str


class GrantedTier(Response):
    tier: str
    content_address: Hex64
    size: int
    sealed_key: Base64
    blob_url: str
    ciphertext: Base64 | None = None


class Grant(Response):
    """A granted record version: its released tiers, and the catalogue schema to merge them by.

    ``schema_version`` is the one the ledger's copy of this record version
    names (the payload was split into tiers by that schema).
    """

    record_id: str
    record_type: str
    owner_org: str
    version: int
    schema_version: int
    policy_ids: list[str]
    obligations: list[str]
    tiers: list[GrantedTier]


class Denial(Response):
    record_id: str
    record_type: str | None = None
    owner_org: str | None = None
    reason: str
    policy_ids: list[str]


class Recipient(Response):
    msp_id: str
    cert_fingerprint: Hex64
    public_key: Base64
    public_key_sha256: Hex64


class AccessResult(Response):
    """The committed decision and, for granted records, the tier keys sealed to the officer."""

    tx_id: Hex64
    event_id: str
    block_number: int
    decided_at: str
    decision: Literal["granted", "partial", "denied"]
    policy: PolicyRef
    emergency: bool
    obligations: list[str]
    expires_at: str
    recipient: Recipient | None
    grants: list[Grant]
    denials: list[Denial]


class CommittedTransaction(Response):
    """A transaction committed as VALID, with the chaincode's result."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tx_id": _EXAMPLE_TX,
                    "function": "RegisterRecord",
                    "block_number": 43,
                    "validation_code": "VALID",
                    "result": {"record_id": "rp-4403-000123", "version": 1},
                    "access": None,
                }
            ]
        },
    )
    tx_id: Hex64
    function: str
    block_number: int
    validation_code: Literal["VALID"]
    result: dict[str, Any]
    access: AccessResult | None = None


class TransactionStatus(Response):
    tx_id: Hex64
    block_number: int
    validation_code: str


class OfficerView(Response):
    org: str
    msp_id: str
    name: str
    role: str | None = None
    cert_fingerprint: Hex64


class RecordAccessView(Response):
    record_id: str
    record_type: str | None = None
    owner_org: str | None = None
    granted: bool
    tiers: list[str] | None = None
    reason: str | None = None


class ReviewView(Response):
    status: str
    reasons: list[str]
    contests: int


class AccessView(Response):
    """One access to a citizen's data: who, when, why, which records, the outcome."""

    event_id: str
    decided_at: str
    officer: OfficerView
    purpose: str
    case_ref: str | None = None
    tier: str
    emergency: bool
    decision: str
    policy: PolicyRef
    records: list[RecordAccessView]
    review: ReviewView


class AccessesPage(Response):
    subject: str
    accesses: list[AccessView]
    next_cursor: str | None


class ConsentList(Response):
    subject: str
    consents: list[dict[str, Any]]


class EventList(Response):
    events: list[dict[str, Any]]
    truncated: bool


class Health(Response):
    status: Literal["ok"]
    height: int
    channel: str


class Problem(BaseModel):
    """RFC 9457 problem details with AccessLedger's stable ``code`` extension."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:accessledger:problem:nonce_reused",
                    "title": "Nonce reused",
                    "status": 401,
                    "detail": "this nonce was already used by key 9f2c... within the replay window",
                    "instance": "/v1/access-requests",
                    "code": "nonce_reused",
                }
            ]
        },
    )
    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    tx_id: str | None = None


# -- governance (operator jobs) ---------------------------------------------------------------


class ConfigUpdateBody(Strict):
    """A signed ``common.Envelope`` of type CONFIG_UPDATE (base64), created by the caller.

    Its ``ConfigUpdateEnvelope`` carries the ``ConfigSignature`` of every admin
    whose approval a modified element's ``mod_policy`` needs.
    """

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"envelope": "CrgMCm0IAhoMCN7..."}]}
    )
    envelope: Base64


class ConfigBlockView(Response):
    """The channel's current config block (serialized ``common.Block``, base64)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"block_number": 0, "sequence": 0, "block": "CiAQARogm3b..."}]
        },
    )
    block_number: int
    sequence: int
    block: str
    msp_ids: list[str]


class ConfigUpdateResult(Response):
    """A committed config update: its transaction, block and the new config sequence."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"tx_id": _EXAMPLE_TX, "block_number": 42, "sequence": 1}]},
    )
    tx_id: str
    block_number: int
    sequence: int


class PolicyView(Response):
    """The anchored policy: version, bundle hash and bundle (Cedar schema, policies, catalogue)."""

    version: int
    bundle_hash: str
    bundle: dict[str, Any]
