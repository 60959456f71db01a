"""Micro-benchmarks of the crypto recipes: how many operations per second this machine does.

Each operation runs in a loop for at least ``seconds`` of wall-clock time
(after a short warm-up) and reports completed operations per second. The
figures are for capacity planning and ``docs/benchmarks.md``; tests only check
that every figure is present and positive, never how fast it is.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cryptography
import nacl
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.envelope import (
    AssociatedData,
    decrypt_tier,
    encrypt_tier,
    generate_tier_key,
    generate_x25519_keypair,
    open_sealed_key,
    reseal_key,
    seal_key,
)
from crypto.errors import AccessLedgerError
from crypto.pseudonym import pseudonym
from crypto.signing import sign, verify

#: Size of the tier plaintext used by the encrypt/decrypt figures.
PAYLOAD_SIZE = 1024

#: (figure name, human label) in report order.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("sign_per_s", "ECDSA P-256 sign (low-S)"),
    ("verify_per_s", "ECDSA P-256 verify"),
    ("encrypt_1k_per_s", "encrypt tier, 1 KiB (XChaCha20-Poly1305)"),
    ("decrypt_1k_per_s", "decrypt tier, 1 KiB"),
    ("seal_per_s", "seal tier key (X25519 sealed box)"),
    ("open_per_s", "open sealed tier key"),
    ("reseal_per_s", "re-seal tier key (custodian -> officer)"),
    ("pseudonym_per_s", "subject pseudonym (validate + HMAC-SHA256)"),
)

_WARM_UP_CALLS = 3
_BATCH = 8  # calls between clock reads, so the clock does not dominate fast operations


@dataclass(frozen=True)
class OperationResult:
    """How many calls of one operation ran, and for how long."""

    name: str
    label: str
    calls: int
    elapsed_s: float

    @property
    def per_second(self) -> float:
        return self.calls / self.elapsed_s


@dataclass(frozen=True)
class CryptoBenchResult:
    """All figures of one ``bench crypto`` run, plus what machine it ran on."""

    seconds_per_operation: float
    operations: tuple[OperationResult, ...]
    machine: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, float]:
        """Operation name -> operations per second."""
        return {op.name: op.per_second for op in self.operations}

    def to_json(self) -> dict[str, Any]:
        """One flat JSON object of named figures, plus ``machine`` and the run parameters."""
        out: dict[str, Any] = {name: round(value, 1) for name, value in self.figures().items()}
        out["payload_bytes"] = PAYLOAD_SIZE
        out["seconds_per_operation"] = self.seconds_per_operation
        out["machine"] = self.machine
        return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(now: datetime) -> dict[str, Any]:
    """Describe the machine and library versions a benchmark ran on."""
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "openssl": openssl_backend.openssl_version_text(),
        "pynacl": nacl.__version__,  # PyNaCl bundles its own libsodium
        "measured_at": now.isoformat(timespec="seconds"),
    }


def _measure(
    name: str, label: str, operation: Callable[[], object], seconds: float
) -> OperationResult:
    for _ in range(_WARM_UP_CALLS):
        operation()
    calls = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for _ in range(_BATCH):
            operation()
        calls += _BATCH
        elapsed = time.perf_counter() - start
    return OperationResult(name=name, label=label, calls=calls, elapsed_s=elapsed)


def _operations() -> dict[str, Callable[[], object]]:
    """Build one closure per benchmarked operation over fixed, realistic inputs."""
    signing_key = ec.generate_private_key(ec.SECP256R1())
    public_key = signing_key.public_key()
    message = os.urandom(256)  # roughly a signed access request
    signature = sign(signing_key, message)

    tier_key = generate_tier_key()
    ad = AssociatedData(record_id="rec-0001", version=1, record_type="residence_permit", tier="T2")
    plaintext = os.urandom(PAYLOAD_SIZE)
    ciphertext = encrypt_tier(tier_key, plaintext, ad)

    custodian_private, custodian_public = generate_x25519_keypair()
    _, officer_public = generate_x25519_keypair()
    sealed = seal_key(tier_key, custodian_public)
    secret = os.urandom(32)

    return {
        "sign_per_s": lambda: sign(signing_key, message),
        "verify_per_s": lambda: verify(public_key, message, signature),
        "encrypt_1k_per_s": lambda: encrypt_tier(tier_key, plaintext, ad),
        "decrypt_1k_per_s": lambda: decrypt_tier(tier_key, ciphertext, ad),
        "seal_per_s": lambda: seal_key(tier_key, custodian_public),
        "open_per_s": lambda: open_sealed_key(sealed, custodian_private),
        "reseal_per_s": lambda: reseal_key(sealed, custodian_private, officer_public),
        "pseudonym_per_s": lambda: pseudonym("11010519491231002X", secret),
    }


def run_crypto_bench(
    *,
    seconds: float = 1.0,
    now: datetime | None = None,
    on_operation: Callable[[str], None] | None = None,
) -> CryptoBenchResult:
    """Measure every operation in :data:`OPERATIONS` for at least ``seconds`` each.

    ``on_operation`` is called with each label before it is measured (progress
    display). ``now`` stamps the result (default: the current UTC time).
    """
    if not seconds > 0:
        raise AccessLedgerError("benchmark duration must be positive", code="invalid_argument")
    operations = _operations()
    results = []
    for name, label in OPERATIONS:
        if on_operation is not None:
            on_operation(label)
        results.append(_measure(name, label, operations[name], seconds))
    stamp = now if now is not None else datetime.now(UTC)
    return CryptoBenchResult(
        seconds_per_operation=seconds, operations=tuple(results), machine=machine_info(stamp)
    )
