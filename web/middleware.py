"""Every response carries a request id and its latency, unmatched routes (404, 405) included.

``x-request-id`` echoes a well-formed id sent by the client, else a new one; ``server-timing``
(``app;dur=<ms>``) and ``x-response-time-ms`` give the time spent in the app. Error bodies repeat
the request id (see :mod:`web.errors`). Litestar runs middleware only for matched routes, so this
wraps the application's own ASGI entry point instead.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import cast

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
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
        incoming = next(
            (
                v.decode("latin-1")
                for k, v in http_scope["headers"]
                if k == REQUEST_ID_HEADER.encode()
            ),
            None,
        )
        request_id = incoming if incoming and _VALID_ID.match(incoming) else uuid.uuid4().hex
        http_scope.setdefault("state", {})["request_id"] = request_id

        http_send = cast(Send, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = MutableScopeHeaders.from_message(message)
                headers[REQUEST_ID_HEADER] = request_id
                headers["server-timing"] = f"app;dur={elapsed_ms:.2f}"
                headers["x-response-time-ms"] = f"{elapsed_ms:.2f}"
            await http_send(message)

        await super().__call__(scope, receive, send_with_headers)
