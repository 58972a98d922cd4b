"""Shared fixtures for the source-client tests: settings, fake time, clients and source cases.

Every client is built through the product path (``SOURCE.open(settings, ...)``). Tests about
waiting re-wrap that client's ``httpx.Client`` in a :class:`SourceHttp` whose sleep, clock and
jitter are fakes, so no test sleeps for real and the waits can be asserted exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from flows.sources import coincap, coingecko, coinpaprika
from flows.sources.api import ApiSource
from flows.sources.http import Page, RateLimiter, SourceHttp
from flows.sources.settings import (
    CoinCapSettings,
    CoinGeckoSettings,
    CoinPaprikaSettings,
    HttpSourceSettings,
)
from tests.flows.sources.payloads import API_KEY, coincap_page, coingecko_page, coinpaprika_tickers

FAST = {
    "page_size": 2,
    "max_pages": 5,
    "max_attempts": 3,
    "backoff_seconds": 0,
    "requests_per_minute": 6000,
    "timeout_seconds": 5,
    "contracts": False,
}
"""Settings that make a real ``SOURCE.open`` client quick: small pages, no backoff, no limit;
the contract listings have their own tests (test_contracts.py)."""


def coingecko_settings(**overrides: Any) -> CoinGeckoSettings:
    return CoinGeckoSettings(**{"api_key": SecretStr(API_KEY), **FAST, **overrides})


def coinpaprika_settings(**overrides: Any) -> CoinPaprikaSettings:
    return CoinPaprikaSettings(**{"api_key": SecretStr(API_KEY), **FAST, **overrides})


def coincap_settings(**overrides: Any) -> CoinCapSettings:
    return CoinCapSettings(**{"api_key": SecretStr(API_KEY), **FAST, **overrides})


@pytest.fixture(autouse=True)
def no_kasparro_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are built from explicit arguments only, never from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("KASPARRO_"):
            monkeypatch.delenv(name)


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        """Retry waits (backoff and Retry-After) requested by SourceHttp."""
        self.limiter_sleeps: list[float] = []
        """Waits requested by the rate limiter."""

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def limiter_sleep(self, seconds: float) -> None:
        self.limiter_sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


OpenSource = Callable[..., SourceHttp]


@pytest.fixture
def open_source() -> Iterator[OpenSource]:
    """``SOURCE.open(settings, **kwargs)`` exactly as the product calls it; closed afterwards."""
    opened: list[SourceHttp] = []

    def open_(source: ApiSource[Any], settings: HttpSourceSettings, **kwargs: Any) -> SourceHttp:
        http = source.open(settings, **kwargs)
        opened.append(http)
        return http

    yield open_
    for http in opened:
        http.client.close()


@pytest.fixture
def open_with_fake_clock(open_source: OpenSource, fake_clock: FakeClock) -> OpenSource:
    """A client from ``SOURCE.open`` whose waits go to ``fake_clock`` (jitter fixed: 0.5)."""

    def open_(
        source: ApiSource[Any],
        settings: HttpSourceSettings,
        *,
        jitter: float = 0.5,
        **kwargs: Any,
    ) -> SourceHttp:
        real = open_source(source, settings, **kwargs)
        limiter = RateLimiter(
            settings.requests_per_minute,
            clock=fake_clock.monotonic,
            sleep=fake_clock.limiter_sleep,
        )
        return SourceHttp(
            real.source,
            real.client,
            policy=real.policy,
            limiter=limiter,
            sleep=fake_clock.sleep,
            jitter=lambda: jitter,
        )

    return open_


@dataclass(frozen=True)
class LiveSource:
    """One API source as a retry/error test needs it: a single short page at a known URL."""

    name: str
    source: ApiSource[Any]
    settings: Callable[..., HttpSourceSettings]
    first_url: str
    """The first request's full URL (with query) under :func:`FAST` settings and a key."""
    one_page_body: bytes
    """A body with fewer records than a page, so ``pages`` makes exactly one request."""
    env_var: str

    def run(self, http: SourceHttp, settings: HttpSourceSettings) -> list[Page]:
        return list(self.source.pages(http, settings))


LIVE_SOURCES = [
    LiveSource(
        name="coingecko",
        source=coingecko.SOURCE,
        settings=coingecko_settings,
        first_url=str(
            httpx.URL(
                "https://api.coingecko.com/api/v3/coins/markets",
                params={"vs_currency": "usd", "order": "market_cap_desc", "per_page": 2, "page": 1},
            )
        ),
        one_page_body=coingecko_page(1, 1),
        env_var="KASPARRO_COINGECKO_API_KEY",
    ),
    LiveSource(
        name="coinpaprika",
        source=coinpaprika.SOURCE,
        settings=coinpaprika_settings,
        first_url="https://api-pro.coinpaprika.com/v1/tickers?quotes=USD",
        one_page_body=coinpaprika_tickers(1),
        env_var="KASPARRO_COINPAPRIKA_API_KEY",
    ),
    LiveSource(
        name="coincap",
        source=coincap.SOURCE,
        settings=coincap_settings,
        first_url="https://rest.coincap.io/v3/assets?limit=2&offset=0",
        one_page_body=coincap_page(1, 1),
        env_var="KASPARRO_COINCAP_API_KEY",
    ),
]


@pytest.fixture(params=LIVE_SOURCES, ids=[s.name for s in LIVE_SOURCES])
def live_source(request: pytest.FixtureRequest) -> LiveSource:
    """Each API source in turn (the retry and error rules are shared, so all must obey them)."""
    source: LiveSource = request.param
    return source


def _is_source_request(request: httpx.Request) -> bool:
    # A Prefect API started by another test module may still flush its logs over httpx to
    # localhost; only requests to the sources are mocked (and asserted on) here.
    return request.url.host not in {"127.0.0.1", "localhost"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    marker = pytest.mark.httpx_mock(should_mock=_is_source_request)
    for item in items:
        if "tests/flows/sources/" in item.nodeid:
            item.add_marker(marker)
