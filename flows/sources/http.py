"""The HTTP path every API source shares: rate limit, retries, error classification.

Transient failures (timeouts, connect errors, 429, 5xx) are retried with exponential backoff and
jitter, honouring ``Retry-After``; terminal ones (400/401/403/404) fail the source at once. A 200
whose body is not the documented shape still becomes a :class:`Page` (the raw zone keeps it), with
``shape_error`` set so the extract can fail the source after storing it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx

from flows.errors import SourceError, TerminalSourceError, TransientSourceError
from flows.sources.records import ShapeError, SplitBody, split_records
from flows.sources.spec import Endpoint

logger = logging.getLogger(__name__)

USER_AGENT = "kasparro/0.1 (+https://github.com/kasparro/kasparro)"
_SECRET_PARAM_WORDS = ("key", "token", "secret", "auth", "password")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0


@dataclass(frozen=True)
class Page:
    """One response of one endpoint, as received."""

    source: str
    endpoint: Endpoint
    page: int | None
    url: str
    """The request URL with secrets removed."""
    status: int
    fetched_at: datetime
    body: bytes
    split: SplitBody | None
    shape_error: str | None = None
    subject: str | None = None
    """For a per-asset request, the asset it was about, as JSON (source_asset_id, symbol,
    name): history records do not name their asset."""
    reused_from: str | None = None
    """Set when the page was not fetched but taken from this run's raw zone (a resumed run):
    the raw file holding it. ``body`` is then empty and ``stored_sha256`` is the payload's."""
    stored_sha256: str | None = None

    @property
    def sha256(self) -> str:
        return self.stored_sha256 or hashlib.sha256(self.body).hexdigest()

    @property
    def records(self) -> list[str]:
        return self.split.records if self.split else []


def redact_url(url: str | httpx.URL) -> str:
    """The URL without query parameters that look like credentials."""
    parts = urlsplit(str(url))
    query = [
        (name, "REDACTED" if any(w in name.lower() for w in _SECRET_PARAM_WORDS) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``Retry-After`` (delta-seconds or HTTP-date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RateLimiter:
    """Spaces requests so a source never sees more than ``requests_per_minute``."""

    def __init__(
        self,
        requests_per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 60.0 / requests_per_minute
        self._clock = clock
        self._sleep = sleep
        self._next_at: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._next_at is not None and now < self._next_at:
            self._sleep(self._next_at - now)
            now = self._next_at
        self._next_at = now + self._interval


def _terminal_message(status: int, source: str) -> str:
    env = f"KASPARRO_{source.upper()}_API_KEY"
    if status in (401, 403):
        return (
            f"HTTP {status}: the API key was refused or the plan does not allow this endpoint; "
            f"check {env} (and the plan/base URL settings), then re-run"
        )
    if status == 404:
        return "HTTP 404: endpoint not found; check the source's base URL setting"
    return f"HTTP {status}: the request was rejected; this is not retried, check the settings"


class SourceHttp:
    """GETs one source's endpoints through a shared, rate-limited, retrying httpx client."""

    def __init__(
        self,
        source: str,
        client: httpx.Client,
        *,
        policy: RetryPolicy,
        limiter: RateLimiter,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.source = source
        self.client = client
        self.policy = policy
        self.limiter = limiter
        self.requests = 0
        self.warnings: list[str] = []
        """Worth an operator's look, for the run ledger (a contract listing that failed)."""
        self.reuse: Callable[[Endpoint, int | None, str | None], Page | None] | None = None
        """Where a resumed run finds pages it already fetched (then no request is made)."""
        self._sleep = sleep
        self._jitter = jitter

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.policy.max_backoff_seconds, self.policy.backoff_seconds * 2.0**attempt)
        return ceiling / 2 + self._jitter() * ceiling / 2

    def get_page(
        self,
        endpoint: Endpoint,
        params: Mapping[str, str | int],
        page: int | None,
        subject: Mapping[str, str] | None = None,
    ) -> Page:
        """GET one page; ``subject`` for per-subject endpoints (an asset: source_asset_id, symbol,
        name; or a platform)."""
        subject_id = subject[endpoint.subject_key] if subject else None
        if self.reuse is not None and (kept := self.reuse(endpoint, page, subject_id)) is not None:
            return kept
        path = endpoint.path
        if endpoint.per_subject:
            if subject_id is None:
                raise ValueError(f"{endpoint.name} needs a subject (the asset to ask about)")
            path = path.format(subject=quote(subject_id, safe=""))
        request = self.client.build_request("GET", path, params=dict(params))
        url = redact_url(request.url)
        for attempt in range(self.policy.max_attempts):
            last = attempt == self.policy.max_attempts - 1
            self.limiter.wait()
            self.requests += 1
            try:
                response = self.client.send(request)
            except httpx.RequestError as exc:
                failure: SourceError = classify(self.source, url, exc)
                if isinstance(failure, TerminalSourceError):
                    raise failure from exc
                delay = self._backoff(attempt)
            else:
                if response.status_code == 200:
                    return self._page(endpoint, page, url, response, subject)
                failure = classify(self.source, url, response)
                if isinstance(failure, TerminalSourceError):
                    raise failure
                asked = retry_after_seconds(response)
                delay = asked if asked is not None else self._backoff(attempt)
                if delay > self.policy.max_retry_after_seconds:
                    raise TransientSourceError(
                        self.source,
                        f"asked to wait {delay:.0f} s (Retry-After), more than the "
                        f"{self.policy.max_retry_after_seconds:.0f} s allowed; retry the run later",
                        url=url,
                    )
            if last:
                raise TransientSourceError(
                    self.source,
                    f"gave up after {self.policy.max_attempts} attempts ({failure}); the source "
                    "may be down or rate-limiting: retry the run later",
                    url=url,
                ) from failure
            logger.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1f s",
                self.source, attempt + 1, self.policy.max_attempts, failure, delay,
            )  # fmt: skip
            self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def get_listing(
        self,
        endpoint: Endpoint,
        params: Mapping[str, str | int],
        subject: Mapping[str, str] | None = None,
    ) -> Page | None:
        """GET an unpaged contract listing: identity evidence, whose failure costs only that
        evidence. It is then a warning for the run ledger, not an error of the source."""
        try:
            return self.get_page(endpoint, params, None, subject)
        except SourceError as exc:
            of = f" of {subject[endpoint.subject_key]}" if subject else ""
            self.warnings.append(
                f"contract addresses{of} not fetched ({exc}): this run's new assets were "
                "resolved without them"
            )
            logger.warning("%s: %s", self.source, self.warnings[-1])
            return None

    def _page(
        self,
        endpoint: Endpoint,
        page: int | None,
        url: str,
        response: httpx.Response,
        subject: Mapping[str, str] | None,
    ) -> Page:
        body = response.content
        split: SplitBody | None = None
        shape_error: str | None = None
        try:
            split = split_records(
                body.decode("utf-8"), endpoint.records_key, arrays=endpoint.array_records
            )
        except UnicodeDecodeError as exc:
            shape_error = f"body is not UTF-8: {exc}"
        except ShapeError as exc:
            shape_error = str(exc)
        return Page(
            source=self.source,
            endpoint=endpoint,
            page=page,
            url=url,
            status=response.status_code,
            fetched_at=datetime.now(UTC),
            body=body,
            split=split,
            shape_error=shape_error,
            subject=json.dumps(dict(subject), sort_keys=True) if subject else None,
        )


def classify(source: str, url: str, outcome: httpx.Response | httpx.RequestError) -> SourceError:
    """The one place native httpx outcomes become Kasparro errors."""
    if isinstance(outcome, httpx.TimeoutException):
        return TransientSourceError(source, f"timed out ({type(outcome).__name__})", url=url)
    if isinstance(outcome, httpx.NetworkError | httpx.RemoteProtocolError):
        return TransientSourceError(source, f"connection failed: {outcome}", url=url)
    if isinstance(outcome, httpx.RequestError):
        return TerminalSourceError(
            source, f"request failed: {outcome}; check the source's base URL setting", url=url
        )
    status = outcome.status_code
    if status == 429 or status >= 500:
        return TransientSourceError(source, f"HTTP {status}", url=url)
    return TerminalSourceError(source, _terminal_message(status, source), url=url)
