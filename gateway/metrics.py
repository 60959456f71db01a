"""Prometheus metrics of one gateway: requests, transactions, decisions, key releases, problems.

Each app gets its own :class:`~prometheus_client.CollectorRegistry`, so
several apps in one process (tests, benchmarks) never share counters or
collide on registration. Labels carry route templates, function names,
codes and outcomes only: never identifiers of people or records (I1).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Content type of :meth:`Metrics.render`.
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The gateway's metrics on a private registry (names in ``docs/api.md``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "accessledger_http_requests",
            "HTTP requests handled, by route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "accessledger_http_request_seconds",
            "Time to handle an HTTP request, by route template.",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.submitted = Counter(
            "accessledger_transactions_submitted",
            "Transactions handed to the orderer, by chaincode function.",
            ("function",),
            registry=self.registry,
        )
        self.committed = Counter(
            "accessledger_transactions_committed",
            "Transactions whose block was committed, by function and validation code.",
            ("function", "validation_code"),
            registry=self.registry,
        )
        self.decisions = Counter(
            "accessledger_access_decisions",
            "Committed access decisions, by outcome.",
            ("decision",),
            registry=self.registry,
        )
        self.key_releases = Counter(
            "accessledger_key_releases",
            "Tier keys re-sealed to officers, by custodian department.",
            ("org",),
            registry=self.registry,
        )
        self.problems = Counter(
            "accessledger_problems",
            "Problem responses, by problem code.",
            ("code",),
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def problem(self, code: str) -> None:
        self.problems.labels(code).inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)
