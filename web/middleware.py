"""Every response carries a request id, its latency and security headers, unmatched routes (404,
405) included.

``x-request-id`` echoes a well-formed id sent by the client, else a new one; ``server-timing``
(``app;dur=<ms>``) and ``x-response-time-ms`` give the time spent in the app. Error bodies repeat
the request id (see :mod:`web.errors`). Litestar runs middleware only for matched routes, so this
wraps the application's own ASGI entry point instead.

Security headers: no sniffing, no framing, no referrer, and a Content-Security-Policy that lets a
JSON response load nothing and an HTML page (the docs) load only from this origin. A response
that sets its own policy keeps it.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import cast

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import (
    HTTPScope,
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Message,
    Receive,
    Scope,
    Send,
)

_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = REQUEST_ID_HEADER.encode()
_STAMPED = frozenset((_REQUEST_ID, b"server-timing", b"x-response-time-ms"))
_CSP = b"content-security-policy"
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
CSP_DATA = b"default-src 'none'; frame-ancestors 'none'"
CSP_PAGE = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    b"form-action 'self'"
)
"""Swagger UI starts from an inline script and styles inline, and draws its icons as data URLs."""


def request_id_of(scope: Scope) -> str | None:
    value = scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


class RequestContextApp(Litestar):
    """A Litestar application that stamps every HTTP response with its request id and timing."""

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        if scope["type"] != ScopeType.HTTP:
            await super().__call__(scope, receive, send)
            return
        started = time.perf_counter()
        http_scope = cast(HTTPScope, scope)
        incoming = next((v for k, v in http_scope["headers"] if k == _REQUEST_ID), b"")
        request_id = incoming.decode("latin-1")
        if not _VALID_ID.match(request_id):
            request_id = uuid.uuid4().hex
        http_scope.setdefault("state", {})["request_id"] = request_id
        stamped_id = request_id.encode()

        http_send = cast(Send, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = f"{(time.perf_counter() - started) * 1000:.2f}".encode()
                # Raw header pairs, appended once per response: this runs on every request, so
                # no header object; a header the app set itself is replaced, not repeated.
                headers = [h for h in message.get("headers", ()) if h[0].lower() not in _STAMPED]
                names = {name.lower() for name, _ in headers}
                headers += (
                    (_REQUEST_ID, stamped_id),
                    (b"server-timing", b"app;dur=" + elapsed),
                    (b"x-response-time-ms", elapsed),
                )
                headers += (h for h in SECURITY_HEADERS if h[0] not in names)
                if _CSP not in names:
                    html = any(
                        n.lower() == b"content-type" and v.startswith(b"text/html")
                        for n, v in headers
                    )
                    headers.append((_CSP, CSP_PAGE if html else CSP_DATA))
                message["headers"] = headers
            await http_send(message)

        await super().__call__(scope, receive, send_with_headers)
