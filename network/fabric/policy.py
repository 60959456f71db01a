"""Fabric policies: the signature-policy language, its evaluation, implicit-meta policies.

:func:`parse_signature_policy` (in :mod:`network.fabric.policydsl`, re-exported
here) reads the expressions Fabric's ``policydsl``
accepts (``AND('A.peer', 'B.peer')``, ``OR(...)``, ``OutOf(2, ...)``, nested;
principals ``'MSPID.member|admin|client|peer|orderer'``) into a genuine
``common.SignaturePolicyEnvelope`` with the same principal numbering Fabric
produces, so envelopes compare byte for byte with ``configtxgen``'s and the
peer CLI's. Fabric's ``policydsl.FromString`` numbers principals as its
expression evaluator calls the gates: a gate's nested gates first (left to
right), then the gate's own quoted principals (left to right). It gives
every occurrence its own ``identities`` entry, even a repeated principal
(its source says ``TODO: deduplicate principals``), and so do we.

Evaluation follows Fabric's ``cauthdsl``: signatures are first reduced to
valid, de-duplicated identities; then ``NOutOf`` counts sub-rules greedily,
each identity satisfying at most one ``SignedBy``. An ``ImplicitMetaPolicy``
(``ANY``/``ALL``/``MAJORITY`` of a sub-policy) counts the child groups whose
sub-policy is satisfied. :class:`PolicyManager` resolves ``/Channel/...``
paths in a channel config, e.g. ``/Channel/Application/Endorsement``.

Evaluation raises :class:`~network.fabric.errors.PolicyNotSatisfiedError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from fabric_protos.common import policies_pb2 as _policies_pb2
from fabric_protos.msp import msp_principal_pb2 as _msp_principal_pb2
from fabric_protos.peer import collection_pb2 as _collection_pb2
from fabric_protos.peer import policy_pb2 as _policy_pb2
from fabric_protos.peer.lifecycle import chaincode_definition_pb2 as _definition_pb2
from fabric_protos.peer.lifecycle import db_pb2 as _lifecycle_db_pb2
from google.protobuf.message import DecodeError

from network.fabric.errors import (
    ConfigError,
    PolicyNotSatisfiedError,
)
from network.fabric.msp import MSPRegistry, ValidatedIdentity, msp_config_pb2
from network.fabric.policydsl import format_signature_policy as format_signature_policy
from network.fabric.policydsl import parse_signature_policy as parse_signature_policy
from network.fabric.policydsl import role_principal as role_principal
from network.fabric.transactions import SignedData

# The generated protobuf modules ship without type stubs; use them untyped.
policies_pb2: Any = _policies_pb2
msp_principal_pb2: Any = _msp_principal_pb2
policy_pb2: Any = _policy_pb2
collection_pb2: Any = _collection_pb2
definition_pb2: Any = _definition_pb2
lifecycle_db_pb2: Any = _lifecycle_db_pb2

_Meta: Any = policies_pb2.ImplicitMetaPolicy
SIGNATURE_POLICY: int = int(policies_pb2.Policy.SIGNATURE)
IMPLICIT_META_POLICY: int = int(policies_pb2.Policy.IMPLICIT_META)


# --- evaluation ---------------------------------------------------------------


class Policy(ABC):
    """A policy that a set of signatures does or does not satisfy."""

    @abstractmethod
    def evaluate_identities(self, identities: Sequence[ValidatedIdentity]) -> None:
        """Raise :class:`PolicyNotSatisfiedError` unless these (verified) signers satisfy it."""

    def is_satisfied_by(self, identities: Sequence[ValidatedIdentity]) -> bool:
        """Whether these (verified) signers satisfy the policy; never raises for "no".

        For callers that try candidates (implicit-meta sub-policies, endorser
        selection), where "not satisfied" is an expected answer, not an error.
        """
        try:
            self.evaluate_identities(identities)
        except PolicyNotSatisfiedError:
            return False
        return True

    @abstractmethod
    def evaluate_signed_data(
        self, signed: Sequence[SignedData], *, now: datetime | None = None
    ) -> None:
        """Verify the signatures and raise unless the valid signers satisfy the policy."""


class SignaturePolicy(Policy):
    """A ``SignaturePolicyEnvelope`` bound to the MSPs that judge its principals."""

    def __init__(self, envelope: Any, msps: MSPRegistry) -> None:
        self.envelope = envelope
        self.msps = msps
        self._rule = self._compile(envelope.rule)

    @classmethod
    def from_string(cls, text: str, msps: MSPRegistry) -> SignaturePolicy:
        """Parse ``text`` (see :func:`parse_signature_policy`) and bind it to ``msps``."""
        return cls(parse_signature_policy(text), msps)

    def _compile(self, rule: Any) -> Callable[[Sequence[ValidatedIdentity], list[bool]], bool]:
        which = rule.WhichOneof("Type")
        if which == "signed_by":
            index = int(rule.signed_by)
            if not 0 <= index < len(self.envelope.identities):
                raise ConfigError(f"signature policy refers to missing identity {index}")
            matches = self.msps.principal_matcher(self.envelope.identities[index])

            def signed_by(identities: Sequence[ValidatedIdentity], used: list[bool]) -> bool:
                for i, identity in enumerate(identities):
                    if not used[i] and matches(identity):
                        used[i] = True
                        return True
                return False

            return signed_by
        if which == "n_out_of":
            threshold = int(rule.n_out_of.n)
            subs = [
                (self._compile(r), r.WhichOneof("Type") == "signed_by") for r in rule.n_out_of.rules
            ]

            def n_out_of(identities: Sequence[ValidatedIdentity], used: list[bool]) -> bool:
                verified = 0
                for sub, leaf in subs:
                    if leaf:
                        # A SignedBy marks nothing when it fails, so it needs no trial copy.
                        verified += sub(identities, used)
                        continue
                    trial = list(used)
                    if sub(identities, trial):
                        verified += 1
                        used[:] = trial
                return verified >= threshold

            return n_out_of
        raise ConfigError("signature policy rule is neither signed_by nor n_out_of")

    def is_satisfied_by(self, identities: Sequence[ValidatedIdentity]) -> bool:
        return self._rule(identities, [False] * len(identities))

    def evaluate_identities(self, identities: Sequence[ValidatedIdentity]) -> None:
        if not self.is_satisfied_by(identities):
            signers = ", ".join(f"{i.msp_id}:{i.common_name}" for i in identities) or "none"
            raise PolicyNotSatisfiedError(
                f"signature policy {format_signature_policy(self.envelope)} is not satisfied "
                f"by the valid signers ({signers})"
            )

    def evaluate_signed_data(
        self, signed: Sequence[SignedData], *, now: datetime | None = None
    ) -> None:
        self.evaluate_identities(self.msps.valid_identities(signed, now=now))


def evaluate(
    envelope: Any, signed: Sequence[SignedData], msps: MSPRegistry, *, now: datetime | None = None
) -> None:
    """Evaluate a ``SignaturePolicyEnvelope`` over signatures; raise unless satisfied."""
    SignaturePolicy(envelope, msps).evaluate_signed_data(signed, now=now)


class RejectPolicy(Policy):
    """What Fabric substitutes for a policy that does not exist: never satisfied."""

    def __init__(self, path: str) -> None:
        self.path = path

    def evaluate_identities(self, identities: Sequence[ValidatedIdentity]) -> None:
        raise PolicyNotSatisfiedError(f"policy {self.path} does not exist")

    def is_satisfied_by(self, identities: Sequence[ValidatedIdentity]) -> bool:
        return False

    def evaluate_signed_data(
        self, signed: Sequence[SignedData], *, now: datetime | None = None
    ) -> None:
        raise PolicyNotSatisfiedError(f"policy {self.path} does not exist")


class ImplicitMetaPolicy(Policy):
    """``ANY``, ``ALL`` or ``MAJORITY`` of the same-named policy in each child group."""

    def __init__(self, path: str, rule: int, sub_policies: Sequence[Policy], msps: MSPRegistry):
        self.path = path
        self.rule = rule
        self.sub_policies = list(sub_policies)
        self.msps = msps
        count = len(self.sub_policies)
        if rule == int(_Meta.ANY):
            self.threshold = 1
        elif rule == int(_Meta.ALL):
            self.threshold = count
        elif rule == int(_Meta.MAJORITY):
            self.threshold = count // 2 + 1
        else:
            raise ConfigError(f"{path}: unknown implicit-meta rule {rule}")
        if count == 0:
            self.threshold = 0

    def _count(self, identities: Sequence[ValidatedIdentity]) -> int:
        """Sub-policies satisfied, counting no further than the threshold."""
        satisfied = 0
        for sub in self.sub_policies:
            if satisfied >= self.threshold:
                break
            if sub.is_satisfied_by(identities):
                satisfied += 1
        return satisfied

    def is_satisfied_by(self, identities: Sequence[ValidatedIdentity]) -> bool:
        return self._count(identities) >= self.threshold

    def evaluate_identities(self, identities: Sequence[ValidatedIdentity]) -> None:
        satisfied = self._count(identities)
        if satisfied >= self.threshold:
            return
        rule = _Meta.Rule.Name(self.rule)
        raise PolicyNotSatisfiedError(
            f"implicit-meta policy {self.path} ({rule}) needs {self.threshold} of "
            f"{len(self.sub_policies)} sub-policies, {satisfied} satisfied"
        )

    def evaluate_signed_data(
        self, signed: Sequence[SignedData], *, now: datetime | None = None
    ) -> None:
        self.evaluate_identities(self.msps.valid_identities(signed, now=now))


def _msp_id(msp_value: bytes) -> str:
    config = msp_config_pb2.MSPConfig()
    fabric = msp_config_pb2.FabricMSPConfig()
    try:
        config.ParseFromString(msp_value)
        fabric.ParseFromString(config.config)
    except DecodeError as exc:
        raise ConfigError("unreadable MSP value in channel config") from exc
    return str(fabric.name)


class PolicyManager:
    """Every policy of a channel config, by path (``/Channel/Orderer/BlockValidation``)."""

    def __init__(self, config: Any, msps: MSPRegistry) -> None:
        self.msps = msps
        self.policies: dict[str, Policy] = {}
        self._build("/Channel", config.channel_group)
        self._orgs: dict[str, str] = {}
        application = config.channel_group.groups.get("Application")
        for name, group in application.groups.items() if application is not None else ():
            if "MSP" in group.values:
                self._orgs[_msp_id(group.values["MSP"].value)] = name

    def application_org(self, msp_id: str) -> str | None:
        """The Application org group whose MSP has ID ``msp_id``."""
        return self._orgs.get(msp_id)

    def _build(self, path: str, group: Any) -> dict[str, Policy]:
        children = {name: self._build(f"{path}/{name}", g) for name, g in group.groups.items()}
        own: dict[str, Policy] = {}
        for name, config_policy in group.policies.items():
            policy_path = f"{path}/{name}"
            own[name] = self._policy(policy_path, config_policy.policy, children)
            self.policies[policy_path] = own[name]
        return own

    def _policy(self, path: str, policy: Any, children: dict[str, dict[str, Policy]]) -> Policy:
        kind = int(policy.type)
        if kind == SIGNATURE_POLICY:
            envelope = policies_pb2.SignaturePolicyEnvelope()
            try:
                envelope.ParseFromString(policy.value)
            except DecodeError as exc:
                raise ConfigError(f"{path}: unreadable signature policy") from exc
            return SignaturePolicy(envelope, self.msps)
        if kind == IMPLICIT_META_POLICY:
            meta = policies_pb2.ImplicitMetaPolicy()
            try:
                meta.ParseFromString(policy.value)
            except DecodeError as exc:
                raise ConfigError(f"{path}: unreadable implicit-meta policy") from exc
            subs = [
                child.get(meta.sub_policy) or RejectPolicy(f"{path}/{name}/{meta.sub_policy}")
                for name, child in sorted(children.items())
            ]
            return ImplicitMetaPolicy(path, int(meta.rule), subs, self.msps)
        raise ConfigError(f"{path}: unsupported policy type {kind}")

    def get(self, path: str) -> Policy:
        """The policy at an absolute path; raises :class:`ConfigError` if there is none."""
        policy = self.policies.get(path)
        if policy is None:
            raise ConfigError(f"channel config has no policy {path}")
        return policy

    def from_application_policy(self, data: bytes) -> Policy:
        """Resolve a serialized ``peer.ApplicationPolicy`` (a chaincode's endorsement policy)."""
        application: Any = policy_pb2.ApplicationPolicy()
        try:
            application.ParseFromString(data)
        except DecodeError as exc:
            raise ConfigError("unreadable ApplicationPolicy") from exc
        which = application.WhichOneof("Type")
        if which == "signature_policy":
            return SignaturePolicy(application.signature_policy, self.msps)
        if which == "channel_config_policy_reference":
            return self.get(str(application.channel_config_policy_reference))
        raise ConfigError("ApplicationPolicy names no policy")


# --- endorsement policies of chaincodes ----------------------------------------


class EndorsementPolicies:
    """Which policy endorsements must satisfy, per namespace and collection.

    Subclass or replace the callables. ``namespace`` returns ``None`` for a
    chaincode that is not defined (the transaction gets ``INVALID_CHAINCODE``);
    ``collection`` returns ``None`` when the collection has no policy of its
    own (the chaincode's applies).
    """

    def __init__(
        self,
        namespace: Callable[[str], Policy | None],
        collection: Callable[[str, str], Policy | None] | None = None,
    ) -> None:
        self._namespace = namespace
        self._collection = collection

    def namespace(self, name: str) -> Policy | None:
        """The chaincode endorsement policy of namespace ``name``."""
        return self._namespace(name)

    def collection(self, namespace: str, collection: str) -> Policy | None:
        """The collection-level endorsement policy, if the collection has one."""
        return self._collection(namespace, collection) if self._collection else None


#: The lifecycle system chaincode's namespace and its implicit-collection prefix.
LIFECYCLE_NAMESPACE = "_lifecycle"
IMPLICIT_COLLECTION_PREFIX = "_implicit_org_"


class LifecyclePolicies(EndorsementPolicies):
    """Endorsement policies as Fabric 2.x's ``_lifecycle`` defines them.

    ``_lifecycle`` itself is governed by ``/Channel/Application/LifecycleEndorsement``;
    an org's implicit collection ``_implicit_org_<MSPID>`` by that org's
    ``Endorsement`` policy; any other chaincode by the ``ValidationInfo`` of its
    committed definition, read from ``_lifecycle`` state through
    ``state_value(namespace, key)``; a collection with an endorsement policy in
    the definition's collection config by that policy.
    """

    def __init__(
        self, policies: PolicyManager, state_value: Callable[[str, str], bytes | None]
    ) -> None:
        super().__init__(self._namespace_policy, self._collection_policy)
        self.policies = policies
        self.state_value = state_value

    def _field(self, chaincode: str, field: str) -> bytes | None:
        raw = self.state_value(LIFECYCLE_NAMESPACE, f"namespaces/fields/{chaincode}/{field}")
        if raw is None:
            return None
        data = lifecycle_db_pb2.StateData()
        try:
            data.ParseFromString(raw)
        except DecodeError as exc:
            raise ConfigError(f"unreadable _lifecycle field {field} of {chaincode}") from exc
        return bytes(data.Bytes)

    def _namespace_policy(self, namespace: str) -> Policy | None:
        if namespace == LIFECYCLE_NAMESPACE:
            return self.policies.get("/Channel/Application/LifecycleEndorsement")
        raw = self._field(namespace, "ValidationInfo")
        if raw is None:
            return None
        info = definition_pb2.ChaincodeValidationInfo()
        try:
            info.ParseFromString(raw)
        except DecodeError as exc:
            raise ConfigError(f"unreadable ValidationInfo of {namespace}") from exc
        if info.validation_plugin != "vscc":
            raise ConfigError(
                f"chaincode {namespace} uses validation plugin {info.validation_plugin!r}; "
                "only the default 'vscc' is supported"
            )
        return self.policies.from_application_policy(bytes(info.validation_parameter))

    def _collection_policy(self, namespace: str, collection: str) -> Policy | None:
        if collection.startswith(IMPLICIT_COLLECTION_PREFIX):
            msp_id = collection[len(IMPLICIT_COLLECTION_PREFIX) :]
            org = self.policies.application_org(msp_id)
            if org is None:
                return RejectPolicy(f"implicit collection of unknown MSP {msp_id}")
            return self.policies.get(f"/Channel/Application/{org}/Endorsement")
        raw = self._field(namespace, "Collections")
        if not raw:
            return None
        package = collection_pb2.CollectionConfigPackage()
        try:
            package.ParseFromString(raw)
        except DecodeError as exc:
            raise ConfigError(f"unreadable collection config of {namespace}") from exc
        for config in package.config:
            static = config.static_collection_config
            if static.name == collection and static.HasField("endorsement_policy"):
                data = static.endorsement_policy.SerializeToString()
                return self.policies.from_application_policy(data)
        return None
