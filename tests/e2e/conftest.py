from __future__ import annotations

from collections.abc import Iterator

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
