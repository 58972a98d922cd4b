"""schemathesis against the OpenAPI document, in process (ASGI): no server error, every response
conforms to its documented status, media type, headers and schema, and every 405 carries Allow.

Bounded: a few dozen examples per operation, schema-valid and schema-invalid, on a copy of the
published snapshot, so decisions the fuzzer posts land in a scratch inbox.
"""

from __future__ import annotations

import re
import shutil

import pytest
import schemathesis
from hypothesis import given, settings
from litestar.testing import TestClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import Published
from tests.web.test_errors import assert_problem
from web.app import create_app
from web.settings import WebSettings

TOKEN = "fuzz-decisions-token-0123"  # noqa: S105 (a test token)
EXAMPLES = 25
"""Per operation and generation mode: a CI-time budget, not a coverage claim."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
"""Not positive_data_acceptance: schema-valid parameters may still conflict (a cursor with an
offset, start after end), and the documented answer to that is a 400 naming the conflict."""


@pytest.fixture(scope="module")
def api_schema(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> schemathesis.BaseSchema:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    data_dir.mkdir()
    shutil.copyfile(published.data_dir / "serving.duckdb", data_dir / "serving.duckdb")
    # Unlimited: one client makes every request; the limit has its own test.
    app = create_app(
        WebSettings(decisions_token=TOKEN, rate_limit_per_minute=0),
        snapshot_path=data_dir / "serving.duckdb",
    )
    return schemathesis.openapi.from_asgi("/schema/openapi.json", app)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_honours_its_openapi_document(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 13
    for operation in operations:
        # A free-form path segment or no input at all: no request is schema-invalid.
        if mode is GenerationMode.NEGATIVE and not (operation.query or operation.body):
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES)
        def honours(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

        honours()


def test_every_405_carries_allow_naming_the_documented_methods(client: TestClient) -> None:  # type: ignore[type-arg]
    spec = client.get("/schema/openapi.json").json()
    methods = {"get", "post", "put", "patch", "delete"}
    checked = 0
    for template, item in spec["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        documented = {m for m in item if m in methods}
        for method in sorted(methods - documented):
            response = client.request(method.upper(), path)
            assert_problem(response, 405)
            allowed = {m.strip().lower() for m in response.headers["allow"].split(",")}
            assert documented <= allowed, (method, template, allowed)
            assert method not in allowed
            checked += 1
    assert checked >= 40
