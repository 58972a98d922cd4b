from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress

import pytest
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from tests.conftest import REPO


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One ephemeral Prefect API for the session (starting one costs ~10 s); its URL, so that
    subprocesses can use it too instead of starting their own."""
    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        assert url
        yield url


@pytest.fixture
def overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASPARRO_OVERRIDES_FILE", str(REPO / "data" / "asset_overrides.csv"))


@pytest.fixture
def free_writer_slot(prefect_api: str) -> None:
    """The writer limit recreated with its slot free. The session's server runs no lease
    reaper (Prefect's temporary server starts no services), so the lease of a run an earlier
    test killed would hold the slot for the rest of the session."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

    from flows.writer import WRITER_LIMIT, ensure_writer_limit  # noqa: PLC0415

    with get_client(sync_client=True) as client, suppress(ObjectNotFound):
        client.delete_global_concurrency_limit_by_name(WRITER_LIMIT)
    ensure_writer_limit()
