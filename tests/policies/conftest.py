"""Fixtures for the policies tests: the default catalogue, policy set and bundle."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies.bundle import PolicyBundle
from policies.catalogue import Catalogue
from policies.engine import PolicySet


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return Catalogue.load_default()


@pytest.fixture(scope="session")
def policy_set() -> PolicySet:
    return PolicySet.load_default()


@pytest.fixture(scope="session")
def bundle() -> PolicyBundle:
    return PolicyBundle.load_default()


def example(catalogue: Catalogue, record_type: str) -> dict[str, Any]:
    """A fresh copy of the schema's own example payload."""
    return copy.deepcopy(catalogue.schema(record_type, 1)["examples"][0])
