"""Gateway settings: environment variables with the ``ACCESSLEDGER_`` prefix (pydantic-settings).

Everything an operator tunes without touching code: the home, where each
department's store lives, and the limits the gateway enforces before any work
is done. ``docs/api.md`` lists them with their defaults.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from crypto.errors import AccessLedgerError

#: Default home, as for every CLI command.
DEFAULT_HOME = Path(".accessledger")


def _lowercase(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


#: A certificate fingerprint as the gateway compares them: 64 lowercase hex digits
#: (given in either case; anything else is refused at start-up, not silently never matched).
Fingerprint = Annotated[str, BeforeValidator(_lowercase), Field(pattern=r"^[0-9a-f]{64}$")]


class GatewaySettings(BaseSettings):
    """What the gateway reads from ``ACCESSLEDGER_*`` variables (or keyword arguments)."""

    model_config = SettingsConfigDict(env_prefix="ACCESSLEDGER_", extra="forbid", frozen=True)

    home: Path = Field(default=DEFAULT_HOME, description="The consortium home directory.")
    store_urls: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Department -> database URL of its off-chain store (JSON object);"
            " unlisted departments use HOME/stores/<Org>.sqlite."
        ),
    )
    max_request_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    rate_limit_per_minute: Annotated[int, Field(ge=0)] = 6000
    grant_ttl_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 15 * 60
    max_clock_skew_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    pending_ttl_seconds: Annotated[int, Field(ge=1, le=3600)] = 120
    max_pending_transactions: Annotated[int, Field(ge=1)] = 10_000
    commit_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    simulation_workers: Annotated[int, Field(ge=0, le=64)] = Field(
        default=0,
        description=(
            "Worker processes that simulate chaincode proposals (endorsements and queries)"
            " beside the gateway's own process; 0 simulates in process."
        ),
    )
    worker_threads: Annotated[int, Field(ge=1, le=64)] = Field(
        default=2,
        description=(
            "Threads that `accessledger serve` gives the gateway's blocking work off the event"
            " loop (key releases, store writes, note sealing). Few on purpose: each of their"
            " SQLite, crypto and fsync calls releases Python's GIL, and more threads contending"
            " for it cost more in context switches than they gain. A release waits for its log"
            " line's fsync, so on a disk with slow fsyncs more threads may pay."
        ),
    )
    opentelemetry: bool = Field(
        default=False,
        description=(
            "FastAPI's native OpenTelemetry (request spans, metrics, and exception logs with"
            " messages and stack traces) sent to the process's configured OpenTelemetry"
            " providers. Off by default, so no exception text leaves the gateway unless an"
            " operator asks for it. Exporting needs an OpenTelemetry SDK and exporter, which"
            " are not in the lock (only the API is); the gateway's own metrics are"
            " Prometheus (/metrics)."
        ),
    )
    revoked_fingerprints: list[Fingerprint] = Field(
        default_factory=list,
        description=(
            "Revoked certificates (hex SHA-256 of DER, either case), refused although"
            " CA-issued; a copy re-encoded with the other ECDSA signature is refused too."
        ),
    )
    bootstrap: bool = Field(
        default=True,
        description=(
            "On start, initialise an empty ledger (InitLedger, the default policy approved by"
            " every department admin, encryption keys of the home's identities)."
        ),
    )

    @property
    def grant_ttl(self) -> timedelta:
        return timedelta(seconds=self.grant_ttl_seconds)

    @property
    def max_clock_skew(self) -> timedelta:
        return timedelta(seconds=self.max_clock_skew_seconds)

    @property
    def pending_ttl(self) -> timedelta:
        return timedelta(seconds=self.pending_ttl_seconds)


def load_settings(**overrides: Any) -> GatewaySettings:
    """Settings from the environment and ``overrides``; a bad value is one readable error."""
    try:
        return GatewaySettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise AccessLedgerError(
            f"invalid gateway settings: {problems}", code="settings_invalid"
        ) from None
    except SettingsError as exc:
        raise AccessLedgerError(
            f"invalid gateway settings: {exc} (check the ACCESSLEDGER_* variables)",
            code="settings_invalid",
        ) from None
