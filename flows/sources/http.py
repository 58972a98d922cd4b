"""The HTTP path every API source shares: rate limit, retries, error classification.

Transient failures are retried with exponential backoff and jitter, honouring ``Retry-After``:
timeouts, a refused or reset connection, 429, 5xx, and a 200 whose body is a broken delivery (empty,
an HTML page such as a proxy's error or a bot challenge, truncated or otherwise not JSON).
Terminal ones fail the source at once: 400/401/403/404, and a host this machine cannot resolve or
has no route to (network trouble on our side, not the source being down). A 200 of well-formed JSON
that is not the documented shape, or a broken body still broken on the last attempt, becomes a
:class:`Page` with ``shape_error`` set, so the extract can store it in the raw zone before failing.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import random
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx
import msgspec

from flows.errors import (
    NoNetworkError,
    SourceError,
    TerminalSourceError,
    TransientSourceError,
    redact_url,
)
from flows.sources.records import ShapeError, SplitBody, split_records
from flows.sources.spec import Endpoint

logger = logging.getLogger(__name__)

USER_AGENT = "kasparro/0.1 (+https://github.com/kasparro/kasparro)"


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
    broken: bool = False
    """``shape_error`` is a broken delivery (empty, HTML, truncated or not JSON), which fetching
    again may mend; otherwise it is well-formed JSON of the wrong shape: the API's answer."""
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
                if not isinstance(failure, TransientSourceError):
                    raise failure from exc
                delay = self._backoff(attempt)
            else:
                outcome = self._outcome(endpoint, page, url, response, subject, attempt=attempt)
                if isinstance(outcome, Page):
                    return outcome
                failure, delay = outcome
            if last:
                raise TransientSourceError(
                    self.source,
                    f"gave up after {self.policy.max_attempts} attempts ({failure.reason}); the "
                    "source may be down or rate-limiting: retry the run later",
                    url=url,
                ) from failure
            logger.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1f s",
                self.source, attempt + 1, self.policy.max_attempts, failure.reason, delay,
            )  # fmt: skip
            self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _outcome(
        self,
        endpoint: Endpoint,
        page: int | None,
        url: str,
        response: httpx.Response,
        subject: Mapping[str, str] | None,
        *,
        attempt: int,
    ) -> Page | tuple[TransientSourceError, float]:
        """The page a response gives, or the transient failure it is and the wait before the next
        attempt; raises a terminal failure."""
        if response.status_code == 200:
            received = self._page(endpoint, page, url, response, subject)
            if not received.broken:
                return received
            if attempt == self.policy.max_attempts - 1:
                # The last one is kept in the raw zone by the extract, then fails as transient.
                return dataclasses.replace(
                    received,
                    shape_error=f"{received.shape_error}, on each of "
                    f"{self.policy.max_attempts} attempts",
                )
            failure = TransientSourceError(
                self.source, f"HTTP 200 but {received.shape_error}", url=url
            )
            return failure, self._backoff(attempt)
        classified = classify(self.source, url, response)
        if not isinstance(classified, TransientSourceError):
            raise classified
        asked = retry_after_seconds(response)
        delay = asked if asked is not None else self._backoff(attempt)
        if delay > self.policy.max_retry_after_seconds:
            raise TransientSourceError(
                self.source,
                f"asked to wait {delay:.0f} s (Retry-After), more than the "
                f"{self.policy.max_retry_after_seconds:.0f} s allowed; retry the run later",
                url=url,
            )
        return classified, delay

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
        split, shape_error, broken = read_body(endpoint, body)
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
            broken=broken,
            subject=json.dumps(dict(subject), sort_keys=True) if subject else None,
        )


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def read_body(endpoint: Endpoint, body: bytes) -> tuple[SplitBody | None, str | None, bool]:
    """A 200 body's records; else why it has none, and whether it is a broken delivery (empty,
    an HTML page, cut short or not JSON at all: a proxy, a captive portal, bot protection or a
    dropped connection answered, so fetching again may mend it) rather than well-formed JSON of
    the wrong shape (the API's own answer: fetching again will not change it)."""
    if not body.strip():
        return None, "the body is empty", True
    if body.lstrip()[:1] == b"<":
        title = _TITLE.search(body[:8192])
        named = " ".join(title[1].decode("utf-8", "replace").split())[:80] if title else ""
        return None, f"an HTML page{f' ({named!r})' if named else ''} instead of JSON", True
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = exc.reason == "unexpected end of data"  # the body ends inside a character
        return None, f"the body is {'cut short' if cut else 'not UTF-8'}: {exc}", cut
    try:
        return split_records(text, endpoint.records_key, arrays=endpoint.array_records), None, False
    except ShapeError as exc:
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError as not_json:
            return None, f"the body is not well-formed JSON ({not_json})", True
        return None, str(exc), False


def _network_trouble(exc: BaseException) -> str | None:
    """Why this machine cannot reach the host, if that is what ``exc`` comes from: the name does
    not resolve (httpx wraps the ``socket.gaierror``), or there is no route to the network or
    host. A refused or reset connection reached the source's side: that is not this."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return f"cannot resolve the host name ({current.strerror or current})"
        if isinstance(current, OSError) and current.errno in (
            errno.ENETUNREACH,
            errno.EHOSTUNREACH,
        ):
            return f"no route to the host ({current.strerror or current})"
        pending += [current.__cause__, current.__context__]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return None


def classify(source: str, url: str, outcome: httpx.Response | httpx.RequestError) -> SourceError:
    """The one place native httpx outcomes become Kasparro errors."""
    if isinstance(outcome, httpx.TimeoutException):
        return TransientSourceError(source, f"timed out ({type(outcome).__name__})", url=url)
    if isinstance(outcome, httpx.RequestError) and (trouble := _network_trouble(outcome)):
        return NoNetworkError(
            source,
            f"{trouble}: network trouble on this machine's side, not a sign that the source is "
            "down. Check the network (DNS, proxy, connection) and the host of the source's base "
            "URL setting, then re-run",
            url=url,
        )
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
