"""Fault injection: kill (or fail) an ingest at a named point, to prove resume is exact.

Armed by ``KASPARRO_FAULT`` (or the flow's ``fault`` parameter) as ``<point>[:<source>[:<page>]]``:

    after_page      after extracting page k of a source (and writing it to the raw zone)
    after_raw       after a source's whole extract is in the raw zone
    mid_transform   after staging, before validation
    before_commit   inside the load transaction, everything written but not committed
    after_commit    after every source committed, before the snapshot is published

``KASPARRO_FAULT_MODE=kill`` (default) sends the process SIGKILL, as a crash or an OOM kill
would: no cleanup, no exception handler, no ``finally``. ``raise`` raises :class:`InjectedFault`
instead, which Prefect records as a failed run that an operator can retry.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

POINTS = ("after_page", "after_raw", "mid_transform", "before_commit", "after_commit")


class InjectedFault(RuntimeError):
    """Raised at an armed fault point in ``raise`` mode."""


class FaultSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASPARRO_", extra="ignore")

    fault: str | None = Field(
        default=None, description="Fault to inject: <point>[:<source>[:<page>]] (testing only)."
    )
    fault_mode: Literal["kill", "raise"] = Field(
        default="kill", description="kill: SIGKILL the process; raise: raise InjectedFault."
    )


@dataclass(frozen=True)
class Fault:
    point: str
    source: str | None = None
    page: int | None = None

    @classmethod
    def parse(cls, spec: str) -> Fault:
        point, *rest = spec.split(":")
        if point not in POINTS:
            raise ValueError(f"unknown fault point {point!r}; one of {POINTS}")
        source = rest[0] if rest and rest[0] else None
        page = int(rest[1]) if len(rest) > 1 else None
        return cls(point, source, page)


_armed: Fault | None = None
_mode: Literal["kill", "raise"] = "kill"


def arm(spec: str | None = None, mode: Literal["kill", "raise"] | None = None) -> None:
    """Arm the fault ``spec`` (else KASPARRO_FAULT; neither disarms) in ``mode`` (else
    KASPARRO_FAULT_MODE)."""
    global _armed, _mode  # noqa: PLW0603 - one process-wide switch, set at the start of a run
    settings = FaultSettings()
    spec = spec or settings.fault
    _armed = Fault.parse(spec) if spec else None
    _mode = mode or settings.fault_mode
    if _armed:
        logger.warning("fault armed: %s (%s)", spec, _mode)


def fault_point(point: str, *, source: str | None = None, page: int | None = None) -> None:
    fault = _armed
    if fault is None or fault.point != point:
        return
    if fault.source is not None and fault.source != source:
        return
    if fault.page is not None and fault.page != page:
        return
    message = f"injected fault at {point} (source={source}, page={page})"
    if _mode == "kill":
        logger.warning("%s: killing the process", message)
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(message)
