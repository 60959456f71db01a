"""The governance bundle: canonical bytes, hash stability and sensitivity."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from policies.bundle import APPROVAL_FORMAT, BUNDLE_FORMAT, PolicyBundle
from policies.canonical import canonical_json
from policies.errors import BundleError


def _reverse(value: Any) -> Any:
    """The same JSON value with every object's members in reverse order."""
    if isinstance(value, dict):
        return {k: _reverse(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [_reverse(v) for v in value]
    return value


def test_default_bundle(bundle: PolicyBundle) -> None:
    assert bundle.version == 1
    assert len(bundle.bundle_hash) == 64
    assert int(bundle.bundle_hash, 16) >= 0
    assert "school_enrolment.cedar" in bundle.policies
    assert "entity Officer" in bundle.cedar_schema
    assert set(bundle.catalogue.record_types()) >= {"residence_permit", "tax_record"}
    assert bundle.to_dict()["format"] == BUNDLE_FORMAT
    assert PolicyBundle.load_default().bundle_hash == bundle.bundle_hash


def test_hash_is_stable_across_dict_order_and_json_round_trip(bundle: PolicyBundle) -> None:
    data = json.loads(json.dumps(bundle.to_dict()))
    again = PolicyBundle.from_dict(_reverse(data))
    assert again.bundle_hash == bundle.bundle_hash
    assert again.canonical_bytes() == bundle.canonical_bytes()
    assert again == bundle
    assert bundle.canonical_bytes() == canonical_json(bundle.to_dict())


def test_hash_changes_when_any_policy_text_changes(bundle: PolicyBundle) -> None:
    seen = {bundle.bundle_hash}
    for name in bundle.policies:
        data = bundle.to_dict()
        data["policies"][name] += "\n// reviewed\n"
        changed = PolicyBundle.from_dict(data)
        assert changed.bundle_hash not in seen, name
        seen.add(changed.bundle_hash)


def test_hash_changes_with_schema_catalogue_and_version(bundle: PolicyBundle) -> None:
    data = bundle.to_dict()
    data["cedar_schema"] += "\n"
    assert PolicyBundle.from_dict(data).bundle_hash != bundle.bundle_hash

    data = copy.deepcopy(bundle.to_dict())
    tax = data["catalogue"]["record_types"]["tax_record"]["1"]
    tax["properties"]["tax_paid"]["x-tier"] = "T3"
    assert PolicyBundle.from_dict(data).bundle_hash != bundle.bundle_hash

    v2 = bundle.with_version(2)
    assert v2.bundle_hash != bundle.bundle_hash
    assert v2.signed_bytes() != bundle.signed_bytes()


def test_adding_a_policy_file_changes_the_hash(bundle: PolicyBundle) -> None:
    data = bundle.to_dict()
    data["policies"]["zz_extra.cedar"] = (
        '@id("extra.deny_all") forbid (principal, action, resource);'
    )
    assert PolicyBundle.from_dict(data).bundle_hash != bundle.bundle_hash


def test_signed_bytes_bind_hash_and_version(bundle: PolicyBundle) -> None:
    signed = json.loads(bundle.signed_bytes())
    assert signed == {
        "format": APPROVAL_FORMAT,
        "bundle_hash": bundle.bundle_hash,
        "version": 1,
    }
    assert bundle.signed_bytes() == canonical_json(signed)


def test_bundle_policy_set_evaluates_like_the_default(bundle: PolicyBundle) -> None:
    assert bundle.policy_set.policy_ids == tuple(sorted(bundle.policy_set.policy_ids))
    assert "guard.clearance_cap" in bundle.policy_set.policy_ids


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update({"format": "other"}),
        lambda d: d.update({"extra": 1}),
        lambda d: d.pop("catalogue"),
        lambda d: d.update({"version": 0}),
        lambda d: d.update({"version": "1"}),
        lambda d: d["policies"].update({"bad.cedar": "permit (principal, action, resource);"}),
        lambda d: d["policies"].update({"bad.cedar": 42}),
        lambda d: d.update({"cedar_schema": "entity ;"}),
        lambda d: d["catalogue"].update({"format": "x"}),
        lambda d: d["catalogue"]["record_types"]["tax_record"]["1"].update(
            {"additionalProperties": True}
        ),
    ],
)
def test_malformed_bundles_rejected(bundle: PolicyBundle, mutate: Any) -> None:
    data = copy.deepcopy(bundle.to_dict())
    mutate(data)
    with pytest.raises(BundleError):
        PolicyBundle.from_dict(data)
