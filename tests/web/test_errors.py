"""Never a 500: the inputs that used to raise answer 4xx, a broken snapshot answers 503 with the
fix, and every error is an RFC 9457 problem detail naming the request."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from tests.web.conftest import Published
from web.app import create_app
from web.settings import WebSettings

Client = TestClient  # type: ignore[type-arg]
TOKEN = "s3cret-decisions-token"  # noqa: S105 (a test token)
AUTH = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
DECISIONS = "/api/v1/resolution/decisions"
MEMBERS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem detail for this request, with the given status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert set(body) >= MEMBERS
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.fixture
def token_client(published: Published) -> Iterator[Client]:
    app = create_app(
        WebSettings(decisions_token=TOKEN), snapshot_path=published.data_dir / "serving.duckdb"
    )
    with TestClient(app=app) as test_client:
        yield test_client


def test_a_run_compared_with_itself_changes_nothing(client: Client, published: Published) -> None:
    """After one `make demo` only one run exists: comparing it with itself is a natural first try
    (it raised polars' ColumnNotFoundError)."""
    run = published.base_run
    response = client.get(f"/api/v1/runs/compare?base={run}&head={run}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["base"] == body["head"] == run
    assert {s["source"] for s in body["sources"]} == {"coingecko", "coinpaprika", "coincap", "csv"}
    for source in body["sources"]:
        assert source["base"] == source["head"]
        assert set(source["delta"].values()) == {0}
    assert body["coins_added"] == body["coins_removed"] == body["anomalies"] == []
    assert body["price_change_distribution"]["compared"] > 250
    assert body["price_change_distribution"]["max"] == 0.0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 5_000 + b"]" * 5_000, id="nested-5k"),
        pytest.param(b'{"action": "merge", "coin_id": ' * 2_000, id="nested-objects"),
        pytest.param(b"\xff\xfe", id="utf16-bom"),
        pytest.param(b'{"action": "\xff\xfe"}', id="not-utf8-in-a-string"),
    ],
)
def test_a_body_json_cannot_decode_is_a_400(token_client: Client, body: bytes) -> None:
    """Deep nesting raised RecursionError and non-UTF-8 bytes UnicodeDecodeError: both 500s."""
    problem = assert_problem(token_client.post(DECISIONS, content=body, headers=AUTH), 400)
    assert problem["detail"].startswith("JSON is malformed")


def test_a_body_of_100k_nested_arrays_is_refused_by_its_size(token_client: Client) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    problem = assert_problem(token_client.post(DECISIONS, content=body, headers=AUTH), 413)
    assert "65536 bytes" in problem["detail"]
    assert "KASPARRO_API_MAX_BODY_BYTES" in problem["detail"]


READ_ROUTES = ["/api/v1/data", "/api/v1/coins", "/api/v1/runs", "/api/v1/stats"]


@pytest.mark.parametrize("damage", ["truncated", "not-duckdb"])
def test_a_broken_snapshot_is_a_503_naming_the_fix_until_it_is_republished(
    published: Published, tmp_path: Path, damage: str
) -> None:
    """A truncated serving.duckdb made every endpoint answer 500."""
    good = published.data_dir / "serving.duckdb"
    served = tmp_path / "serving.duckdb"
    data = good.read_bytes()
    served.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not duckdb" * 500)
    with TestClient(app=create_app(WebSettings(), snapshot_path=served)) as broken:
        for url in READ_ROUTES:
            problem = assert_problem(broken.get(url), 503)
            assert "truncated or damaged" in problem["detail"]
            assert "kasparro rebuild" in problem["detail"]
            assert str(tmp_path) not in broken.get(url).text
        health = broken.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert "kasparro rebuild" in health.json()["snapshot"]["problem"]
        assert str(tmp_path) not in health.text
        assert broken.get("/ping").status_code == 200

        # Published again (a rename over it, as store.snapshot does): served without a restart.
        shutil.copyfile(good, tmp_path / "next.duckdb")
        (tmp_path / "next.duckdb").replace(served)
        for url in READ_ROUTES:
            assert broken.get(url).status_code == 200


def test_every_error_is_a_problem_detail(client: Client, published: Published) -> None:
    assert_problem(client.get("/no/such/route"), 404)
    assert_problem(client.get("/schema/no-such-page"), 404)
    assert "no-such-coin" in assert_problem(client.get("/api/v1/coins/no-such-coin"), 404)["detail"]
    wrong_method = client.delete("/api/v1/coins")
    assert_problem(wrong_method, 405)
    assert set(wrong_method.headers["allow"].replace(" ", "").split(",")) >= {"GET"}
    invalid = assert_problem(client.get("/api/v1/runs?limit=0"), 400)
    assert invalid["errors"][0]["key"] == "limit"
    unknown = assert_problem(
        client.get(f"/api/v1/runs/compare?base=nope&head={published.head_run}"), 404
    )
    assert "base run 'nope'" in unknown["detail"]


def test_a_refused_decision_carries_its_facts_as_extension_members(token_client: Client) -> None:
    decision = {
        "action": "merge",
        "coin_id": "no-such-coin",
        "other_coin_id": "btc-bitcoin",
        "decided_by": "ops@example.com",
    }
    problem = assert_problem(token_client.post(DECISIONS, json=decision, headers=AUTH), 404)
    assert problem["coin_id"] == "no-such-coin"
    assert problem["field"] == "coin_id"


def test_the_openapi_document_describes_errors_as_problem_details(client: Client) -> None:
    spec = client.get("/schema/openapi.json").json()
    assert set(spec["components"]["schemas"]["Problem"]["required"]) >= {"status", "detail"}
    for path, item in spec["paths"].items():
        for operation in item.values():
            for code, response in operation["responses"].items():
                if int(code) >= 400 and not (path == "/health" and code == "503"):
                    assert list(response["content"]) == ["application/problem+json"], (path, code)
            if path != "/ping":
                assert "503" in operation["responses"], path
