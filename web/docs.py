"""The OpenAPI document and its Swagger UI, served with no network.

Litestar's Swagger page loads its JavaScript, CSS and favicon from a CDN: offline, a blank page.
Here the page references only this app: the Swagger UI files come from the ``swagger-ui-py``
package (Swagger UI 5, which reads OpenAPI 3.1), served from ``/schema/swagger/assets/``. The
other UIs Litestar offers (ReDoc, Elements, RapiDoc) have no packaged assets: their paths, and any
other path under ``/schema``, answer a JSON 404 like every other unknown route.

The document says what errors look like: every 4xx/5xx is a problem detail
(``application/problem+json``, :mod:`web.errors`), and the responses any operation may give
(429 past the rate limit, 413 for a body too large, 503 without a readable snapshot) are listed
on every operation they apply to.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.params import FromPath
from litestar.response import File

from web.errors import PROBLEM_JSON
from web.settings import WebSettings

DOCS_PATH = "/schema"
ASSETS_PATH = f"{DOCS_PATH}/swagger/assets"
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
"""The files the page loads, and nothing else of the package (it also ships an editor)."""

NOT_FOUND = (
    "no documentation page here: Swagger UI is at /schema/swagger, the OpenAPI document at "
    "/schema/openapi.json"
)


def _assets_directory() -> Path:
    # Located, not imported: the package's module pulls in jinja2 and yaml for its own handlers.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


ASSETS_DIRECTORY = _assets_directory()


@get(
    "/swagger/assets/{name:str}",
    include_in_schema=False,
    sync_to_thread=False,
    cache_control=None,
)
def swagger_asset(name: FromPath[str]) -> File:
    if name not in ASSETS:
        raise NotFoundException(NOT_FOUND)
    return File(
        ASSETS_DIRECTORY / name,
        media_type=ASSETS[name],
        content_disposition_type="inline",
        headers={"cache-control": "public, max-age=86400"},
    )


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI whose page loads its files from this app."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, _documented(request, openapi_schema))

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(swagger_asset)


async def _json_not_found(response: Response[Any]) -> Response[Any]:
    """Litestar answers unknown docs paths with an HTML page of its own: raise instead, so the
    problem-details handler answers as for any unknown route."""
    if response.status_code == 404 and response.media_type == MediaType.HTML:
        raise NotFoundException(NOT_FOUND)
    return response


def docs_router() -> Router:
    return Router(
        DOCS_PATH, route_handlers=[], include_in_schema=False, after_request=_json_not_found
    )


PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem detail. Extension members: `request_id` (the response's "
    "x-request-id), `errors` (the parameters that failed validation) and, for a refused "
    "decision, its facts.",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "description": "`about:blank`: see `status`"},
        "title": {"type": "string", "description": "The status' reason phrase"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What failed and what to do"},
        "instance": {"type": "string", "description": "The request's path"},
        "request_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
    },
}
_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _problem(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, **extra, "content": _PROBLEM_CONTENT}


def document_problems(document: dict[str, Any], settings: WebSettings) -> None:
    """Make every error response of the rendered OpenAPI ``document`` a problem detail, and add
    those any request may meet. Litestar documents its own error shape; this is the one place
    that replaces it. In place and once: the document is rendered once and cached, so this runs
    when it is first served, not each time an app is created."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" in components:
        return
    components["Problem"] = PROBLEM
    retry_after = {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "description": "Seconds to wait before trying again",
        }
    }
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            if (operation := item.get(method)) is None:
                continue
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                # Litestar's own error shape is an inline schema; a response a route declares
                # itself (/health's 503) refers to a component and stays.
                media = response.get("content", {}).values()
                if int(code) >= 400 and not any("$ref" in m.get("schema", {}) for m in media):
                    response["content"] = _PROBLEM_CONTENT
            if path != "/ping":
                responses.setdefault(
                    "503", _problem("No readable snapshot: what is wrong, and the command to run")
                )
            if settings.rate_limit_per_minute and path not in ("/ping", "/health"):
                responses.setdefault(
                    "429", _problem("Too many requests from this client", headers=retry_after)
                )
            if "requestBody" in operation:
                responses.setdefault(
                    "413", _problem(f"The body is larger than {settings.max_body_bytes} bytes")
                )


def _documented(request: Request[Any, Any, Any], document: dict[str, Any]) -> dict[str, Any]:
    document_problems(document, request.app.state.web_settings)
    return document


class ProblemAwareJson(JsonRenderPlugin):
    """``/schema/openapi.json``, errors documented as problem details."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, _documented(request, openapi_schema))
