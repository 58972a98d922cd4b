"""Safety: security headers, CORS only where configured, a per-client rate limit answering 429
with Retry-After, and no absolute path of the host in a response or a log line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from litestar.testing import TestClient

from tests.web.conftest import Published
from tests.web.test_errors import assert_problem
from web.app import create_app
from web.settings import WebSettings

Client = TestClient  # type: ignore[type-arg]


def test_every_response_carries_security_headers(client: Client) -> None:
    for url in ("/ping", "/api/v1/coins?limit=1", "/no/such/route", "/schema/swagger"):
        response = client.get(url)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        if url == "/schema/swagger":
            assert "script-src 'self' 'unsafe-inline'" in csp
        else:
            assert csp.startswith("default-src 'none'")


def test_cors_is_off_by_default_and_answers_only_configured_origins(published: Published) -> None:
    snapshot = published.data_dir / "serving.duckdb"
    preflight = {"origin": "https://dash.example", "access-control-request-method": "GET"}
    with TestClient(app=create_app(WebSettings(), snapshot_path=snapshot)) as closed:
        response = closed.get("/ping", headers={"origin": "https://dash.example"})
        assert "access-control-allow-origin" not in response.headers
    settings = WebSettings(cors_origins=["https://dash.example"])
    with TestClient(app=create_app(settings, snapshot_path=snapshot)) as open_:
        allowed = open_.options("/api/v1/coins", headers=preflight)
        assert allowed.status_code in (200, 204)
        assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
        simple = open_.get("/ping", headers={"origin": "https://dash.example"})
        assert simple.headers["access-control-allow-origin"] == "https://dash.example"
        assert "x-request-id" in simple.headers["access-control-expose-headers"]
        other = open_.get("/ping", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_cors_origins_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASPARRO_API_CORS_ORIGINS", "https://a.example, https://b.example")
    assert WebSettings().cors_origins == ["https://a.example", "https://b.example"]


def test_a_client_past_the_rate_limit_gets_429_with_retry_after(published: Published) -> None:
    settings = WebSettings(rate_limit_per_minute=3)
    app = create_app(settings, snapshot_path=published.data_dir / "serving.duckdb")
    with TestClient(app=app) as limited:
        for _ in range(3):
            assert limited.get("/api/v1/coins?limit=1").status_code == 200
        # Probes are not counted: a load balancer's health checks never lock a client out.
        for _ in range(5):
            assert limited.get("/ping").status_code == 200
            assert limited.get("/health").status_code == 200
        refused = limited.get("/api/v1/runs")
        assert_problem(refused, 429)
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        spec = limited.get("/schema/openapi.json").json()
    responses = spec["paths"]["/api/v1/runs"]["get"]["responses"]
    assert "Retry-After" in responses["429"]["headers"]


def test_no_limit_when_set_to_zero(published: Published) -> None:
    app = create_app(
        WebSettings(rate_limit_per_minute=0), snapshot_path=published.data_dir / "serving.duckdb"
    )
    with TestClient(app=app) as unlimited:
        assert all(unlimited.get("/ping").status_code == 200 for _ in range(5))
        assert (
            "429" not in app.openapi_schema.to_schema()["paths"]["/api/v1/runs"]["get"]["responses"]
        )


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_no_absolute_path_in_a_response_or_a_log(published: Published, tmp_path: Path) -> None:
    """/health named the snapshot's absolute path, and so did every 503."""
    # Litestar configures the root logger when an app starts, so listen on the module's logger.
    logged = Lines()
    logging.getLogger("web.errors").addHandler(logged)
    with TestClient(
        app=create_app(WebSettings(), snapshot_path=published.data_dir / "serving.duckdb")
    ) as ok:
        health = ok.get("/health").json()
        assert health["snapshot"]["path"] == "<data dir>/serving.duckdb"
        assert str(published.data_dir) not in ok.get("/health").text
    missing = tmp_path / "nowhere" / "serving.duckdb"
    broken = tmp_path / "serving.duckdb"
    broken.write_bytes(b"not duckdb" * 100)
    try:
        for path in (missing, broken):
            with TestClient(app=create_app(WebSettings(), snapshot_path=path)) as client:
                for url in ("/health", "/api/v1/coins", "/api/v1/runs"):
                    response = client.get(url)
                    assert response.status_code == 503
                    assert str(tmp_path) not in response.text
                    assert "<data dir>/serving.duckdb" in response.text
    finally:
        logging.getLogger("web.errors").removeHandler(logged)
    assert any("503 on /api/v1/coins" in line for line in logged.lines)
    assert not any(str(tmp_path) in line for line in logged.lines)


def test_a_snapshot_under_the_working_directory_is_named_relative_to_it(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(published.data_dir.parent)
    app = create_app(WebSettings(), snapshot_path=published.data_dir / "serving.duckdb")
    with TestClient(app=app) as client:
        assert client.get("/health").json()["snapshot"]["path"] == "data/serving.duckdb"
