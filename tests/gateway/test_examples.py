"""Every example in the OpenAPI document is a valid instance of its model."""

from __future__ import annotations

import tempfile

import pytest
from pydantic import BaseModel

from gateway.app import create_app
from gateway.examples import RESPONSE_EXAMPLES
from gateway.settings import GatewaySettings


@pytest.mark.parametrize("model", list(RESPONSE_EXAMPLES), ids=lambda m: m.__name__)
def test_response_example_validates_against_its_model(model: type[BaseModel]) -> None:
    model.model_validate(RESPONSE_EXAMPLES[model])


def test_every_json_answer_of_the_api_is_documented_with_an_example() -> None:
    document = create_app(GatewaySettings(home=tempfile.mkdtemp())).openapi()
    schemas = document["components"]["schemas"]
    undocumented = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in ("200", "201"):
                content = operation.get("responses", {}).get(status, {}).get("content", {})
                schema = content.get("application/json", {}).get("schema", {})
                name = schema.get("$ref", "").rsplit("/", 1)[-1]
                if name and "examples" not in schemas[name]:
                    undocumented.append(f"{method.upper()} {path} {status} {name}")
    assert undocumented == []
