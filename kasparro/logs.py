"""Structured logs: with ``KASPARRO_LOG_FORMAT=json`` every line Kasparro's processes write (the
CLI, the API, the ingest flow, the stack's processes) is one JSON object with the request id,
run id, Prefect flow run id and source it concerns, when known.

The stdlib's logging with python-json-logger's formatter, not structlog: Prefect, uvicorn and
Litestar all log through the stdlib, so one formatter on the root handler covers their lines too
without a second logging system to bridge (and Prefect already depends on python-json-logger).
The context travels in context variables: the web app sets the request id per request, the
flow the run id and the source being loaded.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("kasparro_request_id", default=None)
run_id: ContextVar[str | None] = ContextVar("kasparro_run_id", default=None)
source: ContextVar[str | None] = ContextVar("kasparro_source", default=None)

FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _flow_run_id() -> str | None:
    if "prefect.runtime" not in sys.modules:  # never import Prefect for a log line
        return None
    from prefect.runtime import flow_run  # noqa: PLC0415 - already imported, see above

    value = flow_run.id
    return str(value) if value else None


class ContextFilter(logging.Filter):
    """Adds request_id, run_id, flow_run_id and source to every record (None when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.run_id = run_id.get()
        record.source = source.get()
        record.flow_run_id = _flow_run_id()
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        FIELDS + " %(request_id)s %(run_id)s %(flow_run_id)s %(source)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def configure(level: int = logging.INFO) -> None:
    """The CLI's logging: plain lines, or JSON ones when KASPARRO_LOG_FORMAT=json."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get("KASPARRO_LOG_FORMAT", "text").lower() != "json":
        return
    for handler in logging.getLogger().handlers:
        handler.setFormatter(json_formatter())
        handler.addFilter(ContextFilter())


@contextmanager
def context(var: ContextVar[str | None], value: str | None) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)
