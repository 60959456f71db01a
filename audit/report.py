"""The result of an audit: JSON report, one-line summary and a human summary.

:class:`AuditReport` is plain data. The audit passes (``ok``) only when there
is no finding; anomaly flags and invalid-but-reproduced transactions are
listed for the reader and never make it fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from audit.anomalies import AnomalyFlag
from audit.findings import Finding, InvalidTransaction
from audit.verifier import ReplayStats

REPORT_FORMAT: Final = "accessledger-audit-report/1"
#: Findings and flags printed in the human summary (the JSON report has all of them).
SHOWN: Final = 20


@dataclass
class AuditReport:
    """Everything one replay established; see the module docstring."""

    source: str
    chaincode: str
    started_at: datetime
    seconds: float
    stats: ReplayStats
    height: int
    tip_hash: str
    findings: list[Finding]
    invalid: list[InvalidTransaction]
    flags: list[AnomalyFlag]
    checks: dict[str, str]
    access: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def rate(self) -> float:
        """Transactions verified per second."""
        return self.stats.transactions / self.seconds if self.seconds > 0 else 0.0

    def summary_line(self) -> str:
        """One line: the verdict, with the first finding when it failed."""
        if self.ok:
            return (
                f"verified {self.stats.blocks} blocks, {self.stats.transactions} transactions "
                f"({self.stats.invalid} invalid, all reproduced); no findings"
            )
        first = self.findings[0]
        more = f" (and {len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        return f"replay found {len(self.findings)} problem(s); first: {first}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "ok": self.ok,
            "source": self.source,
            "chaincode": self.chaincode,
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "transactions_per_second": round(self.rate, 1),
            "height": self.height,
            "tip_hash": self.tip_hash,
            "stats": self.stats.to_dict(),
            "checks": dict(self.checks),
            "access": dict(self.access),
            "findings": [f.to_dict() for f in self.findings],
            "invalid_transactions": [t.to_dict() for t in self.invalid],
            "anomalies": [a.to_dict() for a in self.flags],
            **self.extra,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def render(self, console: Console) -> None:
        """The human summary: checks, counts, findings, invalid transactions, flags."""
        verdict = "[bold green]VERIFIED[/]" if self.ok else "[bold red]FAILED[/]"
        console.print(f"{verdict}  {self.source}", highlight=False)
        console.print(
            f"{self.stats.blocks} blocks ({self.stats.config_blocks} config), "
            f"{self.stats.transactions} transactions ({self.stats.valid} valid, "
            f"{self.stats.invalid} invalid), {self.stats.signatures} signatures in "
            f"{self.seconds:.2f} s ({self.rate:,.0f} tx/s); tip {self.tip_hash[:16]}…",
            highlight=False,
            markup=False,
        )
        checks = Table(title="checks", show_header=False, box=None)
        for name, outcome in self.checks.items():
            checks.add_row(name, outcome)
        console.print(checks)
        if self.findings:
            table = Table(title=f"findings ({len(self.findings)})")
            for column in ("where", "kind", "what"):
                table.add_column(column, overflow="fold")
            for finding in self.findings[:SHOWN]:
                table.add_row(finding.location(), finding.kind.value, finding.message)
            console.print(table)
        if self.invalid:
            table = Table(title=f"invalid transactions ({len(self.invalid)})")
            for column in ("block", "tx", "code", "reproduced", "reason"):
                table.add_column(column, overflow="fold")
            for tx in self.invalid[:SHOWN]:
                table.add_row(
                    str(tx.block),
                    f"{tx.tx_index} {tx.tx_id[:12]}",
                    tx.code,
                    "yes" if tx.reproduced else "NO",
                    tx.reason,
                )
            console.print(table)
        if self.flags:
            table = Table(title=f"anomaly flags ({len(self.flags)}, not failures)")
            table.add_column("kind")
            table.add_column("why", overflow="fold")
            for flag in self.flags[:SHOWN]:
                table.add_row(flag.kind, flag.message)
            console.print(table)
