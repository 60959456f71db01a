"""Deterministic Cedar evaluation of access requests (invariant I4).

A :class:`PolicySet` is built from a Cedar schema and a set of named policy
texts. Building it parses the texts, validates them against the schema and
checks our conventions (every policy has a unique ``@id``; ``@obligation``
only on permits; no templates). Evaluation returns a :class:`Decision` holding
only deterministic facts: the effect, the sorted ``@id`` of the policies that
determined it, the obligations those policies carry, and any evaluation
errors. Timing metrics Cedar reports are dropped, so an auditor re-evaluating
the same request against the same policy version gets an equal ``Decision``.

Cedar is default-deny: a request no permit matches is denied with no
determining policy; a matching forbid overrides every permit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Final

import cedarpy

from policies.errors import PolicyRequestError, PolicySetError
from policies.requests import (
    AccessContext,
    AccessRequest,
    Action,
    Principal,
    Resource,
    check_action_resource,
)

#: File name of the Cedar schema inside the ``policies.cedar`` package.
SCHEMA_FILE: Final = "accessledger.cedarschema"
#: Annotation whose value (comma-separated) lists a permit's obligations.
OBLIGATION_ANNOTATION: Final = "obligation"
#: Obligation carried by break-glass permits: the event needs an auditor's review.
REVIEW_REQUIRED: Final = "review_required"

_POLICY_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
_POLICY_FILE = re.compile(r"^[a-z0-9_]+\.cedar$")
_INTERNAL_ID = re.compile(r"`(policy[0-9]+)`")


@dataclass(frozen=True)
class Decision:
    """The outcome of one authorisation request.

    ``determining_policy_ids`` are the ``@id`` values of the permits that
    allowed the request, or of the forbids that denied it; it is empty for a
    default deny. ``obligations`` come from the determining permits'
    ``@obligation`` annotations and are empty for any denial.
    """

    allowed: bool
    determining_policy_ids: tuple[str, ...]
    obligations: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """A short stable reason: ``permit:<ids>``, ``forbid:<ids>`` or ``default_deny``."""
        if self.allowed:
            return "permit:" + ",".join(self.determining_policy_ids)
        if self.determining_policy_ids:
            return "forbid:" + ",".join(self.determining_policy_ids)
        return "default_deny"

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "determining_policy_ids": list(self.determining_policy_ids),
            "obligations": list(self.obligations),
            "errors": list(self.errors),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        try:
            allowed = data["allowed"]
            ids = tuple(data["determining_policy_ids"])
            obligations = tuple(data.get("obligations", ()))
            errors = tuple(data.get("errors", ()))
        except (KeyError, TypeError) as exc:
            raise PolicyRequestError(
                "decision must have allowed and determining_policy_ids"
            ) from exc
        if not isinstance(allowed, bool) or not all(
            isinstance(x, str) for x in (*ids, *obligations, *errors)
        ):
            raise PolicyRequestError("decision fields have the wrong types")
        return cls(allowed, ids, obligations, errors)


def load_default_sources() -> tuple[str, dict[str, str]]:
    """Return the packaged Cedar schema text and ``{file name: policy text}``."""
    package = resources.files("policies.cedar")
    schema_text = package.joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    policies = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(package.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".cedar")
    }
    return schema_text, policies


class PolicySet:
    """A validated Cedar schema plus policy set, ready to evaluate requests."""

    def __init__(self, schema_text: str, policies: Mapping[str, str]) -> None:
        if not policies:
            raise PolicySetError("a policy set needs at least one policy file")
        for name, text in policies.items():
            if not isinstance(name, str) or not _POLICY_FILE.match(name):
                raise PolicySetError(f"policy file name {name!r} must match {_POLICY_FILE.pattern}")
            if not isinstance(text, str):
                raise PolicySetError(f"policy file {name} must be text")
        # Concatenate in file-name order: Cedar numbers policies by position,
        # so a fixed order keeps internal ids (and error messages) stable.
        combined = "\n".join(policies[name] for name in sorted(policies))
        try:
            self._schema = cedarpy.Schema.from_str(schema_text)
            self._policies = cedarpy.PolicySet.from_str(combined)
            est = json.loads(cedarpy.policies_to_json_str(combined))
        except ValueError as exc:
            raise PolicySetError(f"Cedar schema or policies do not parse: {exc}") from None
        if est.get("templates"):
            raise PolicySetError("policy templates are not supported in the policy set")
        validation = cedarpy.validate_policies(combined, self._schema)
        if not validation.validation_passed:
            names = validation.id_annotations_by_policy_id
            problems = "; ".join(
                f"{names.get(e.policy_id, e.policy_id)}: {e.error}" for e in validation.errors
            )
            raise PolicySetError(f"policies do not validate against the schema: {problems}")
        self._ids: dict[str, str] = {}
        self._obligations: dict[str, tuple[str, ...]] = {}
        self._annotations: dict[str, dict[str, str]] = {}
        for internal_id, policy in est.get("staticPolicies", {}).items():
            self._register(internal_id, policy)
        self._schema_text = schema_text
        self._sources = dict(sorted(policies.items()))

    def _register(self, internal_id: str, policy: Mapping[str, Any]) -> None:
        annotations: dict[str, str] = dict(policy.get("annotations") or {})
        policy_id = annotations.get("id")
        if not policy_id or not _POLICY_ID.match(policy_id):
            raise PolicySetError(
                f"every policy needs an @id matching {_POLICY_ID.pattern}; got {policy_id!r}"
            )
        if policy_id in self._annotations:
            raise PolicySetError(f"duplicate policy @id {policy_id!r}")
        raw = annotations.get(OBLIGATION_ANNOTATION)
        obligations: tuple[str, ...] = ()
        if raw is not None:
            if policy.get("effect") != "permit":
                raise PolicySetError(f"{policy_id}: @obligation is only meaningful on a permit")
            obligations = tuple(sorted({o.strip() for o in raw.split(",") if o.strip()}))
            if not obligations:
                raise PolicySetError(f"{policy_id}: empty @obligation")
        self._ids[internal_id] = policy_id
        self._obligations[policy_id] = obligations
        self._annotations[policy_id] = annotations

    @classmethod
    def load_default(cls) -> PolicySet:
        """The default policy set shipped with the package (cached; immutable)."""
        return _default_policy_set()

    @property
    def schema_text(self) -> str:
        return self._schema_text

    @property
    def sources(self) -> dict[str, str]:
        """``{file name: policy text}``, sorted by file name."""
        return dict(self._sources)

    @property
    def policy_ids(self) -> tuple[str, ...]:
        """Every policy ``@id``, sorted."""
        return tuple(sorted(self._annotations))

    def annotations(self, policy_id: str) -> dict[str, str]:
        """All annotations of one policy (``id``, ``obligation``, ...)."""
        try:
            return dict(self._annotations[policy_id])
        except KeyError:
            raise PolicySetError(f"no policy with @id {policy_id!r}") from None

    def evaluate(self, request: AccessRequest) -> Decision:
        """Evaluate one request."""
        cedar_request = _cedar_request(
            request.principal, request.action, request.resource, request.context
        )
        entities = [request.principal.entity(), request.resource.entity()]
        result = cedarpy.is_authorized(cedar_request, self._policies, entities, self._schema)
        return self._decision(result)

    def evaluate_batch(
        self,
        principal: Principal,
        action: Action | str,
        resources: Sequence[Resource],
        context: AccessContext | Sequence[AccessContext],
    ) -> list[Decision]:
        """Evaluate one officer's action on many resources in a single Cedar call.

        ``context`` is either shared by every resource or a sequence with one
        context per resource (consent, for instance, differs by record type).
        Decisions come back in the order of ``resources`` and equal what
        :meth:`evaluate` returns for each request alone.
        """
        action = _action(action)
        if isinstance(context, AccessContext):
            contexts: Sequence[AccessContext] = [context] * len(resources)
        else:
            contexts = list(context)
            if len(contexts) != len(resources):
                raise PolicyRequestError("need exactly one context per resource")
        if not resources:
            return []
        entities: dict[str, dict[str, Any]] = {}
        for entity in [principal.entity(), *(r.entity() for r in resources)]:
            key = json.dumps(entity["uid"], sort_keys=True)
            if key in entities and entities[key] != entity:
                raise PolicyRequestError(
                    f"two different resources share the id {entity['uid']['id']!r}"
                )
            entities[key] = entity
        requests = []
        for resource, ctx in zip(resources, contexts, strict=True):
            check_action_resource(action, resource)
            requests.append(_cedar_request(principal, action, resource, ctx))
        results = cedarpy.is_authorized_batch(
            requests, self._policies, list(entities.values()), self._schema
        )
        return [self._decision(result) for result in results]

    def _decision(self, result: cedarpy.AuthzResult) -> Decision:
        errors = tuple(self._rename(str(e)) for e in result.diagnostics.errors)
        if result.decision is cedarpy.Decision.NoDecision:
            return Decision(False, (), (), errors)
        ids = tuple(sorted(self._ids.get(r, r) for r in result.diagnostics.reasons))
        allowed = result.decision is cedarpy.Decision.Allow
        obligations: tuple[str, ...] = ()
        if allowed:
            obligations = tuple(sorted({o for i in ids for o in self._obligations.get(i, ())}))
        return Decision(allowed, ids, obligations, errors)

    def _rename(self, message: str) -> str:
        """Replace Cedar's positional ``policyN`` ids in a message by the ``@id``."""
        return _INTERNAL_ID.sub(lambda m: f"`{self._ids.get(m.group(1), m.group(1))}`", message)


def _action(action: Action | str) -> Action:
    try:
        return Action(action)
    except ValueError:
        raise PolicyRequestError(f"unknown action {action!r}") from None


def _cedar_request(
    principal: Principal, action: Action, resource: Resource, context: AccessContext
) -> dict[str, Any]:
    return {
        "principal": principal.uid(),
        "action": action.uid(),
        "resource": resource.uid(),
        "context": context.to_cedar(),
    }


@lru_cache(maxsize=1)
def _default_policy_set() -> PolicySet:
    schema_text, policies = load_default_sources()
    return PolicySet(schema_text, policies)
