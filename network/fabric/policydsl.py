"""Fabric's signature-policy language (``policydsl``): parse and format.

``AND('A.peer', 'B.peer')``, ``OR(...)``, ``OutOf(2, ...)``, nested, with
principals ``'MSPID.member|admin|client|peer|orderer'``, read into a genuine
``common.SignaturePolicyEnvelope`` numbered exactly as Fabric's
``policydsl.FromString`` numbers it: a gate's nested gates first (left to
right), then its own quoted principals (left to right), every occurrence its
own ``identities`` entry, so envelopes compare byte for byte with
``configtxgen``'s and the peer CLI's. Evaluation is :mod:`network.fabric.policy`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fabric_protos.common import policies_pb2 as _policies_pb2
from fabric_protos.msp import msp_principal_pb2 as _msp_principal_pb2

from network.fabric.errors import PolicySyntaxError

# The generated protobuf modules ship without type stubs; use them untyped.
policies_pb2: Any = _policies_pb2
msp_principal_pb2: Any = _msp_principal_pb2

__all__ = ["format_signature_policy", "parse_signature_policy", "role_principal"]

_Role: Any = msp_principal_pb2.MSPRole
_ROLE_BY_NAME = {
    "member": int(_Role.MEMBER),
    "admin": int(_Role.ADMIN),
    "client": int(_Role.CLIENT),
    "peer": int(_Role.PEER),
    "orderer": int(_Role.ORDERER),
}
_NAME_BY_ROLE = {v: k for k, v in _ROLE_BY_NAME.items()}
_PRINCIPAL = re.compile(r"^([A-Za-z0-9.\-]+)\.(admin|member|client|peer|orderer)$")
_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z][A-Za-z0-9.\-]*)|(?P<num>\d+)|(?P<str>'[^']*'|\"[^\"]*\")|(?P<p>[(),]))"
)
_GATES = {"and": "AND", "or": "OR", "outof": "OUTOF"}
#: Deepest gate nesting accepted: protobuf refuses messages nested ~100 deep (2 per gate).
_MAX_DEPTH = 40


# --- the signature-policy language --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Gate:
    """A parsed ``OutOf`` (``AND``/``OR`` already turned into thresholds)."""

    threshold: int
    rules: tuple[_Gate | str, ...]


class _Parser:
    """Tokenise and parse an expression into a tree of gates and principal names."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            match = _TOKEN.match(stripped, pos)
            if match is None or match.end() == pos:
                raise PolicySyntaxError(f"unexpected character at position {pos} in {text!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.index = 0
        self.depth = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _next(self, expected: str) -> tuple[str, str, int]:
        token = self._peek()
        if token is None:
            raise PolicySyntaxError(f"{self.text!r} ends early; expected {expected}")
        self.index += 1
        return token

    def _punct(self, char: str) -> None:
        kind, value, pos = self._next(f"{char!r}")
        if kind != "p" or value != char:
            raise PolicySyntaxError(f"expected {char!r} at position {pos} in {self.text!r}")

    def parse(self) -> _Gate | str:
        rule = self._rule()
        token = self._peek()
        if token is not None:
            raise PolicySyntaxError(f"unexpected {token[1]!r} at position {token[2]}")
        return rule

    def _rule(self) -> _Gate | str:
        kind, value, pos = self._next("a gate or a principal")
        if kind == "str":
            return self._principal(value[1:-1], pos)
        if kind == "name" and _PRINCIPAL.match(value):
            raise PolicySyntaxError(f"principal {value} at position {pos} must be quoted")
        if kind != "name" or value.lower() not in _GATES:
            raise PolicySyntaxError(
                f"expected AND, OR, OutOf or a quoted principal at position {pos}, got {value!r}"
            )
        gate = _GATES[value.lower()]
        self._punct("(")
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise PolicySyntaxError(f"gates nested more than {_MAX_DEPTH} deep at position {pos}")
        threshold = None
        if gate == "OUTOF":
            kind, number, npos = self._next("a number")
            if kind != "num":
                raise PolicySyntaxError(f"OutOf needs a number first, got {number!r} at {npos}")
            threshold = int(number)
            self._punct(",")
        rules = [self._rule()]
        while (token := self._peek()) is not None and token[1] == ",":
            self.index += 1
            rules.append(self._rule())
        self._punct(")")
        self.depth -= 1
        if gate == "AND":
            threshold = len(rules)
        elif gate == "OR":
            threshold = 1
        assert threshold is not None
        if not 1 <= threshold <= len(rules):
            raise PolicySyntaxError(
                f"OutOf({threshold}, ...) at position {pos} needs between 1 and {len(rules)}"
            )
        return _Gate(threshold, tuple(rules))

    @staticmethod
    def _principal(principal: str, pos: int) -> str:
        if not _PRINCIPAL.match(principal):
            raise PolicySyntaxError(
                f"principal {principal!r} at position {pos} is not 'MSPID.role' with role one of "
                "member, admin, client, peer, orderer"
            )
        return principal


def _encode(rule: _Gate | str, principals: list[str]) -> Any:
    """Build the ``SignaturePolicy`` of ``rule``, appending principals in Fabric's order.

    Fabric's evaluator runs a gate's nested gates (its arguments) before the
    gate itself, and the gate then numbers its own principals; every
    occurrence gets a new number.
    """
    if isinstance(rule, str):
        # A bare principal: Fabric's parser wants a gate, we accept it as SignedBy.
        principals.append(rule)
        return policies_pb2.SignaturePolicy(signed_by=len(principals) - 1)
    built: list[Any] = [
        _encode(sub, principals) if isinstance(sub, _Gate) else None for sub in rule.rules
    ]
    for i, sub in enumerate(rule.rules):
        if isinstance(sub, str):
            principals.append(sub)
            built[i] = policies_pb2.SignaturePolicy(signed_by=len(principals) - 1)
    return policies_pb2.SignaturePolicy(
        n_out_of=policies_pb2.SignaturePolicy.NOutOf(n=rule.threshold, rules=built)
    )


def role_principal(msp_id: str, role: str) -> Any:
    """An ``MSPPrincipal`` of classification ROLE, e.g. ``role_principal("Org1MSP", "peer")``."""
    if role not in _ROLE_BY_NAME:
        raise PolicySyntaxError(f"unknown role {role!r}")
    value = msp_principal_pb2.MSPRole(msp_identifier=msp_id, role=_ROLE_BY_NAME[role])
    return msp_principal_pb2.MSPPrincipal(
        principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
        principal=value.SerializeToString(),
    )


def parse_signature_policy(text: str) -> Any:
    """Parse a Fabric signature-policy expression into a ``SignaturePolicyEnvelope``.

    Raises :class:`PolicySyntaxError` naming the position of the problem.
    """
    if not isinstance(text, str) or not text.strip():
        raise PolicySyntaxError("empty signature policy")
    principals: list[str] = []
    rule = _encode(_Parser(text).parse(), principals)
    identities = []
    for principal in principals:
        match = _PRINCIPAL.match(principal)
        assert match is not None
        identities.append(role_principal(match.group(1), match.group(2)))
    return policies_pb2.SignaturePolicyEnvelope(version=0, rule=rule, identities=identities)


def _format_principal(principal: Any) -> str:
    if int(principal.principal_classification) != int(msp_principal_pb2.MSPPrincipal.ROLE):
        return "<non-role principal>"
    role = msp_principal_pb2.MSPRole()
    role.ParseFromString(principal.principal)
    return f"'{role.msp_identifier}.{_NAME_BY_ROLE.get(int(role.role), str(role.role))}'"


def format_signature_policy(envelope: Any) -> str:
    """Render a ``SignaturePolicyEnvelope`` back into the expression language."""

    def render(rule: Any) -> str:
        if rule.WhichOneof("Type") == "signed_by":
            return _format_principal(envelope.identities[rule.signed_by])
        rules = ", ".join(render(r) for r in rule.n_out_of.rules)
        return f"OutOf({rule.n_out_of.n}, {rules})"

    return render(envelope.rule)
