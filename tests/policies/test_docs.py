"""The reviewer's guide and the exchange-format document stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from policies.catalogue import Catalogue
from policies.engine import PolicySet
from policies.vocabulary import PURPOSES, ROLES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_policy_guide_names_every_policy_role_and_purpose(policy_set: PolicySet) -> None:
    guide = (DOCS / "policies.md").read_text(encoding="utf-8")
    for policy_id in policy_set.policy_ids:
        assert f"`{policy_id}`" in guide, policy_id
    for name in policy_set.sources:
        assert f"`{name}`" in guide, name
    for word in (*ROLES, *PURPOSES):
        assert f"`{word}`" in guide, word


def test_exchange_format_documents_every_field(catalogue: Catalogue) -> None:
    text = (DOCS / "exchange-format.md").read_text(encoding="utf-8")
    for record_type in catalogue.record_types():
        for version in catalogue.versions(record_type):
            assert f"### `{record_type}` v{version}" in text
            for name, tier in catalogue.field_tiers(record_type, version).items():
                assert f"| `{name}` | {tier} |" in text, (record_type, name)
