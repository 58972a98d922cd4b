"""The published snapshot opened and its facts read on a thread of the app's own, not by the
first request after each publish.

A publish renames a new file over the snapshot. The first request to find it opened it and read
its facts (the sources, the span of ``quotes``, the coin index, :mod:`web.versioned`): 52-78 ms
of that request at 10M quotes, against 13-40 ms for any later one. The warmer looks for a new
snapshot every :data:`POLL_SECONDS` (a ``stat``) and does that work itself, and once when the app
starts. A request that comes before it still opens the snapshot itself, as before: a request
always reads the snapshot published when it began.

It also opens the snapshot's quote layout (:mod:`store.quote_layout`) when the writer has built
it, seconds after publishing: from then on, pages are read from the layout.
"""

from __future__ import annotations

import logging
import threading

import duckdb

from store.errors import StoreError
from web.snapshot import Snapshot
from web.versioned import facts_of, open_layout

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
"""How often the warmer looks for a newly published snapshot."""

THREAD_NAME = "snapshot-warmer"


def warm(snapshot: Snapshot) -> None:
    """Open the published snapshot, if it changed, read its facts, and open its quote layout
    once the writer has built it. A missing or broken snapshot is left for the requests to
    report (503 naming the fix)."""
    try:
        open_layout(snapshot, facts_of(snapshot))
    except (StoreError, duckdb.Error, OSError) as exc:
        # A request that comes meanwhile opens the snapshot itself, and says what failed.
        logger.debug("snapshot not warmed: %s", exc)


class Warmer:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        warm(self._snapshot)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            warm(self._snapshot)
