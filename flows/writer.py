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
the last renewal); meanwhile the flock in the data directory tells a waiting writer on the same
machine that the holder is gone (see :func:`one_writer`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
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
def _local_lock(data_dir: Path, *, wait: bool) -> Iterator[bool]:
    """An flock on ``<data dir>/.writer.lock``, held by whoever writes this warehouse on this
    machine; yields whether it was taken (always, when ``wait``). It ends with its process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def one_writer(what: str, data_dir: Path, flow_run_id: UUID | None = None) -> Iterator[float]:
    """Hold the warehouse writer's slot within; yields the seconds waited for it.

    A writer also holds an flock in the data directory while it holds the slot. A slot whose
    holder was killed stays taken until its lease lapses (60 s at least, Prefect's minimum);
    when the slot is taken but no process on this machine holds this data directory's flock,
    the holder is gone (or writes another warehouse), and this writer goes on under the flock
    alone instead of waiting: the flock still keeps out any other writer of this warehouse.
    """
    ensure_writer_limit()
    started = time.monotonic()
    if _busy():
        with _local_lock(data_dir, wait=False) as free:
            if free:
                logger.warning(
                    "%s: the %r slot is taken, but no process here writes %s (the holder was "
                    "killed, or writes another warehouse): going on without waiting for its lease",
                    what,
                    WRITER_LIMIT,
                    data_dir,
                )
                yield 0.0
                return
        logger.warning(
            "%s waits for the warehouse: another ingest or rebuild holds the %r slot "
            "(Prefect UI: Concurrency); it starts when that one ends",
            what,
            WRITER_LIMIT,
        )
    holder = ConcurrencyLeaseHolder(type="flow_run", id=flow_run_id) if flow_run_id else None
    with (
        concurrency(
            WRITER_LIMIT,
            occupy=1,
            lease_duration=LEASE_SECONDS,
            strict=True,
            holder=holder,
            # A renewal that fails once (a busy server) must not kill a load half-way: the
            # flock and DuckDB's lock still refuse a second writer.
            raise_on_lease_renewal_failure=False,
        ),
        _local_lock(data_dir, wait=True),
    ):
        waited = time.monotonic() - started
        if waited >= 1:
            logger.info("%s got the warehouse after waiting %.1fs", what, waited)
        yield waited
