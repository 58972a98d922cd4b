"""The application's Request class: a JSON body that cannot be decoded is a 400, whatever it holds.

msgspec reports most malformed JSON as a decode error, which Litestar answers with a 400, but
not two kinds: arrays or objects nested deeper than its recursion limit (``[[[[...`` of a few
kilobytes) raise ``RecursionError``, and bytes that are not UTF-8 inside a string raise
``UnicodeDecodeError``. Both are the client's malformed input, not a server error.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException


class SafeJSONRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise ClientException(
                "JSON is malformed: nested too deeply; send the documented object"
            ) from None
        except UnicodeDecodeError:
            raise ClientException(
                "JSON is malformed: a string holds bytes that are not UTF-8; send the body as UTF-8"
            ) from None
