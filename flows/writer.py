"""One writer of the warehouse at a time, across every deployment, worker and CLI run that
shares a Prefect server: a Prefect global concurrency limit of one slot.

DuckDB lets one process open a file read-write; a second writer used to fail at once with
``WarehouseBusyError``. Each deployment's own ``concurrency_limit`` only queues runs of that
deployment, so ``hourly`` and ``demo-replay`` still collided. Every writer (the ingest flow, and
``kasparro rebuild`` when a Prefect API is configured) now takes the slot of the limit
``kasparro-warehouse`` first: a second run waits for it, and the slot shows in the UI
(Concurrency). The limit is created with one slot when missing; an operator may deactivate it,
and then DuckDB's lock is the only guard again.

A run that dies holding the slot gives it back when its lease expires (``LEASE_SECONDS`` after
the last renewal), not at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

logger = logging.getLogger(__name__)

WRITER_LIMIT = "kasparro-warehouse"
"""The global concurrency limit every warehouse writer takes one slot of."""

LEASE_SECONDS = 60.0
"""How long a dead writer's slot stays taken (renewed while the writer lives)."""


def ensure_writer_limit() -> None:
    """Create the one-slot limit unless it exists (an operator's changes to it are kept)."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(WRITER_LIMIT)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another writer created it first
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=WRITER_LIMIT, limit=1)
                )


def _busy() -> bool:
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(WRITER_LIMIT)
    return bool(limit.active and limit.active_slots >= limit.limit)


@contextmanager
def one_writer(what: str, flow_run_id: UUID | None = None) -> Iterator[float]:
    """Hold the warehouse writer's slot within; yields the seconds waited for it."""
    ensure_writer_limit()
    if _busy():
        logger.warning(
            "%s waits for the warehouse: another ingest or rebuild holds the %r slot "
            "(Prefect UI: Concurrency); it starts when that one ends",
            what,
            WRITER_LIMIT,
        )
    holder = ConcurrencyLeaseHolder(type="flow_run", id=flow_run_id) if flow_run_id else None
    started = time.monotonic()
    with concurrency(
        WRITER_LIMIT,
        occupy=1,
        lease_duration=LEASE_SECONDS,
        strict=True,
        holder=holder,
        # A renewal that fails once (a busy server) must not kill a load half-way: DuckDB's
        # lock still refuses a second writer.
        raise_on_lease_renewal_failure=False,
    ):
        waited = time.monotonic() - started
        if waited >= 1:
            logger.info("%s got the warehouse after waiting %.1fs", what, waited)
        yield waited
