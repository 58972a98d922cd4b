"""JSON log lines carry the request id, run id, flow run id and source they concern."""

from __future__ import annotations

import io
import json
import logging

from kasparro import logs


def test_a_json_line_names_its_request_run_and_source() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with (
            logs.context(logs.request_id, "req-1"),
            logs.context(logs.run_id, "20261204T100000Z-abc123"),
            logs.context(logs.source, "coincap"),
        ):
            logger.warning("coincap: retrying in %ds", 10)
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "coincap: retrying in 10s"
    assert inside["level"] == "WARNING"
    assert inside["logger"] == "tests.json_logs"
    assert (inside["request_id"], inside["run_id"], inside["source"]) == (
        "req-1",
        "20261204T100000Z-abc123",
        "coincap",
    )
    assert "flow_run_id" in inside
    assert (outside["request_id"], outside["run_id"], outside["source"]) == (None, None, None)
