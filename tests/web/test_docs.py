"""The API docs work with no network: Swagger UI's page loads only files this app serves, and the
docs UIs that are not offered answer a JSON 404."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from litestar.testing import TestClient

from tests.web.conftest import Published
from tests.web.test_errors import assert_problem
from web.app import create_app
from web.settings import WebSettings

Client = TestClient  # type: ignore[type-arg]
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""")
CHROMIUM = shutil.which("chromium")
EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/schema/swagger", "/schema"])
def test_the_swagger_page_references_no_external_host(client: Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    references = REFERENCE.findall(html)
    assert len(references) == 4, references  # favicon, CSS, the bundle and its preset
    for reference in references:
        assert reference.startswith("/schema/swagger/assets/"), reference
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.headers["content-type"].startswith(EXPECTED_TYPES[Path(reference).suffix])
        assert len(asset.content) > 1000
    # Nothing else in the page points elsewhere (the OpenAPI document is inline).
    assert not re.search(r"""(?:src|href|url)\s*[=(]\s*['"]?(?:https?:)?//""", html)
    assert "cdn." not in html
    css = client.get("/schema/swagger/assets/swagger-ui.css").text
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", css)


def test_only_the_listed_assets_are_served(client: Client) -> None:
    assert_problem(client.get("/schema/swagger/assets/swagger-editor-bundle.js"), 404)
    assert_problem(client.get("/schema/swagger/assets/..%2F__init__.py"), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/schema/redoc",
        "/schema/elements",
        "/schema/rapidoc",
        "/schema/openapi.yaml",
        "/schema/oauth2-redirect",
        "/schema/nope",
    ],
)
def test_docs_uis_not_offered_are_json_404s(client: Client, path: str) -> None:
    problem = assert_problem(client.get(path), 404)
    assert "/schema/swagger" in problem["detail"] or problem["detail"] == "Not Found"


@pytest.fixture
def live_server(published: Published) -> Iterator[str]:
    """The app on a free port of 127.0.0.1, in a thread of this process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(WebSettings(), snapshot_path=published.data_dir / "serving.duckdb")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.mark.slow
def test_swagger_ui_renders_the_operations_in_a_browser_with_no_network(
    live_server: str, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        pytest.fail(
            "no chromium: install it with "
            "`apt-get install -y --no-install-recommends chromium` (.ci/run does)"
        )
    """Chromium with every host but 127.0.0.1 unreachable: the page draws the operations."""
    dom = subprocess.run(
        [
            CHROMIUM or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            # Every name resolves nowhere but the loopback: a CDN reference would fail to load.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{live_server}/schema/swagger",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    # The page's script holds the document as text: look for what Swagger UI draws from it.
    for operation in ("/api/v1/data", "/api/v1/runs/compare", "/api/v1/resolution/decisions"):
        assert f'data-path="{operation}"' in dom, f"{operation} not drawn"
