"""What an HTTP API source is: a spec, its settings, how to reach it and how to page through it.

Three clients sit behind each API, all through the same code: the live httpx transport, the
replay transport serving recorded bodies (:mod:`flows.sources.replay`), and pytest-httpx in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Generic, TypeVar

import httpx

from flows.sources.http import USER_AGENT, Page, RateLimiter, SourceHttp
from flows.sources.settings import HttpSourceSettings
from flows.sources.spec import SourceSpec

S = TypeVar("S", bound=HttpSourceSettings)


@dataclass(frozen=True)
class Access:
    """Where a source is reached and with which headers (the key lives only here)."""

    base_url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class HistoryRequest:
    """Daily history of one asset over whole UTC days ``start``..``end`` (inclusive)."""

    source_asset_id: str
    symbol: str
    name: str
    start: date
    end: date

    def subject(self) -> dict[str, str]:
        return {"source_asset_id": self.source_asset_id, "symbol": self.symbol, "name": self.name}

    def bounds(self) -> tuple[datetime, datetime]:
        """The first instant of ``start`` and the last second of ``end``, in UTC."""
        first = datetime.combine(self.start, time(), UTC)
        return first, datetime.combine(self.end + timedelta(days=1), time(), UTC) - timedelta(
            seconds=1
        )


@dataclass(frozen=True)
class HistoryApi(Generic[S]):
    """A source's daily-history endpoint (``kasparro ingest --history``)."""

    spec: SourceSpec
    pages: Callable[[SourceHttp, S, Sequence[HistoryRequest]], Iterator[Page]]
    """One request per asset, each a whole range of days."""


@dataclass(frozen=True)
class ApiSource(Generic[S]):
    spec: SourceSpec
    settings_type: type[S]
    access: Callable[[S, bool], Access]
    """Base URL and auth headers; the flag is True for a replay, where no key is needed.
    Raises :class:`flows.errors.SourceSkipped` when a live run lacks a required key."""
    pages: Callable[[SourceHttp, S], Iterator[Page]]
    """Fetch every page of one run, stopping at a short page or the configured limit."""
    history: HistoryApi[S] | None = None

    def open(
        self,
        settings: S,
        *,
        transport: httpx.BaseTransport | None = None,
        replay: bool = False,
        rate_limit: bool = True,
    ) -> SourceHttp:
        access = self.access(settings, replay)
        # Credentials in the base URL (user:password@) go in the Authorization header, as httpx
        # would send them, but off the URL: request URLs are logged and kept in the raw zone.
        base_url = httpx.URL(access.base_url)
        auth = (base_url.username, base_url.password) if base_url.userinfo else None
        client = httpx.Client(
            base_url=base_url.copy_with(username=None, password=None),
            auth=auth,
            headers={"user-agent": USER_AGENT, "accept": "application/json", **access.headers},
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=min(10.0, settings.timeout_seconds)
            ),
            transport=transport,
        )
        rpm = settings.requests_per_minute if rate_limit else 1e9
        return SourceHttp(
            self.spec.name, client, policy=settings.retry_policy(), limiter=RateLimiter(rpm)
        )
