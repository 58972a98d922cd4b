"""Kasparro's own log lines (retries, drift, armed faults, waits for the warehouse) in the
Prefect UI, at INFO and above, however the flow run was started.

``PREFECT_LOGGING_EXTRA_LOGGERS`` does this only where it is set before Prefect configures
logging: ``kasparro`` sets it, but a worker started by hand does not, and the flow-run process a
worker spawns leaves the root logger at WARNING. The flow calls :func:`to_prefect_ui` first.
"""

from __future__ import annotations

import logging

from prefect.logging.handlers import APILogHandler

KASPARRO_LOGGERS = ("flows", "store")


def to_prefect_ui() -> None:
    for name in KASPARRO_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        if not any(isinstance(h, APILogHandler) for h in logger.handlers):
            logger.addHandler(APILogHandler())
