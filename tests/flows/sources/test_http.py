"""The shared HTTP path: retries, waits, error classification, redaction and the rate limiter.

Retry and error rules live in one class, but every API source goes through it, so the
behaviours a user relies on are checked for each source (``live_source``).
"""

from __future__ import annotations

import errno
import logging
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from pytest_httpx import HTTPXMock

from flows.errors import ContractError, NoNetworkError, TerminalSourceError, TransientSourceError
from flows.extract import extract_api
from flows.sources import coingecko
from flows.sources.http import RateLimiter, redact_url, retry_after_seconds
from tests.flows.sources.conftest import (
    FakeClock,
    LiveSource,
    OpenSource,
    coingecko_settings,
)
from tests.flows.sources.payloads import API_KEY, coingecko_page

STARTED_AT = datetime(2026, 11, 24, 12, tzinfo=UTC)
LIVE_COINGECKO_URL = (
    "https://api.coingecko.com/api/v3/coins/markets"
    "?vs_currency=usd&order=market_cap_desc&per_page=2&page=1"
)


# --- 429 and Retry-After ---------------------------------------------------------------------


def test_429_with_retry_after_seconds_is_retried_once_after_exactly_that_wait(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
) -> None:
    settings = live_source.settings(backoff_seconds=1)
    httpx_mock.add_response(
        url=live_source.first_url, status_code=429, headers={"Retry-After": "7"}
    )
    httpx_mock.add_response(url=live_source.first_url, content=live_source.one_page_body)
    http = open_with_fake_clock(live_source.source, settings)

    pages = live_source.run(http, settings)

    assert [page.status for page in pages] == [200]
    assert len(pages[0].records) == 1
    assert fake_clock.sleeps == [7.0]
    assert len(httpx_mock.get_requests()) == 2
    assert http.requests == 2


def test_429_with_retry_after_as_http_date_waits_until_that_moment(
    httpx_mock: HTTPXMock, open_with_fake_clock: OpenSource, fake_clock: FakeClock
) -> None:
    settings = coingecko_settings(backoff_seconds=1)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    url = LIVE_COINGECKO_URL
    httpx_mock.add_response(url=url, status_code=429, headers={"Retry-After": when})
    httpx_mock.add_response(url=url, content=coingecko_page(1, 1))
    http = open_with_fake_clock(coingecko.SOURCE, settings)

    pages = list(coingecko.SOURCE.pages(http, settings))

    assert len(pages) == 1
    assert len(fake_clock.sleeps) == 1
    # The date has one-second resolution and a little real time passes before it is read.
    assert 28.0 <= fake_clock.sleeps[0] <= 30.0


def test_retry_after_longer_than_allowed_fails_transient_at_once_without_sleeping(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
) -> None:
    settings = live_source.settings(max_retry_after_seconds=60)
    httpx_mock.add_response(
        url=live_source.first_url, status_code=429, headers={"Retry-After": "3600"}
    )
    http = open_with_fake_clock(live_source.source, settings)

    with pytest.raises(TransientSourceError) as caught:
        live_source.run(http, settings)

    message = str(caught.value)
    assert "3600" in message
    assert "Retry-After" in message
    assert "retry the run later" in message
    assert caught.value.source == live_source.name
    assert fake_clock.sleeps == []
    assert len(httpx_mock.get_requests()) == 1


def test_429_without_retry_after_waits_the_backoff(
    httpx_mock: HTTPXMock, open_with_fake_clock: OpenSource, fake_clock: FakeClock
) -> None:
    settings = coingecko_settings(backoff_seconds=4)
    url = LIVE_COINGECKO_URL
    httpx_mock.add_response(url=url, status_code=429)
    httpx_mock.add_response(url=url, content=coingecko_page(1, 1))
    http = open_with_fake_clock(coingecko.SOURCE, settings, jitter=0.0)

    list(coingecko.SOURCE.pages(http, settings))

    # First backoff: half the 4 s ceiling plus jitter (0 here) times the other half.
    assert fake_clock.sleeps == [2.0]


# --- 5xx -------------------------------------------------------------------------------------


def test_5xx_then_success_is_retried_with_growing_backoff(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
) -> None:
    settings = live_source.settings(backoff_seconds=2, max_backoff_seconds=30, max_attempts=3)
    httpx_mock.add_response(url=live_source.first_url, status_code=502)
    httpx_mock.add_response(url=live_source.first_url, status_code=503)
    httpx_mock.add_response(url=live_source.first_url, content=live_source.one_page_body)
    http = open_with_fake_clock(live_source.source, settings, jitter=0.5)

    pages = live_source.run(http, settings)

    assert [page.status for page in pages] == [200]
    # Ceilings 2 s then 4 s; each wait is half the ceiling plus jitter x half.
    assert fake_clock.sleeps == [1.5, 3.0]
    assert len(httpx_mock.get_requests()) == 3


def test_backoff_doubles_each_attempt_and_is_capped_at_max_backoff_seconds(
    httpx_mock: HTTPXMock, open_with_fake_clock: OpenSource, fake_clock: FakeClock
) -> None:
    settings = coingecko_settings(backoff_seconds=1, max_backoff_seconds=3, max_attempts=5)
    httpx_mock.add_response(url=LIVE_COINGECKO_URL, status_code=500, is_reusable=True)
    http = open_with_fake_clock(coingecko.SOURCE, settings, jitter=0.0)

    with pytest.raises(TransientSourceError):
        list(coingecko.SOURCE.pages(http, settings))

    # Ceilings 1, 2, 4 -> 3 (capped), 8 -> 3; with no jitter each wait is half its ceiling.
    assert fake_clock.sleeps == [0.5, 1.0, 1.5, 1.5]


def test_5xx_every_time_gives_up_after_max_attempts_naming_source_url_and_retry_later(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
) -> None:
    settings = live_source.settings(backoff_seconds=1, max_attempts=4)
    httpx_mock.add_response(url=live_source.first_url, status_code=503, is_reusable=True)
    http = open_with_fake_clock(live_source.source, settings)

    with pytest.raises(TransientSourceError) as caught:
        live_source.run(http, settings)

    error = caught.value
    assert len(httpx_mock.get_requests()) == 4
    assert http.requests == 4
    assert len(fake_clock.sleeps) == 3  # no pointless wait after the last attempt
    assert error.source == live_source.name
    assert error.url == live_source.first_url
    message = str(error)
    assert message.startswith(live_source.name)
    assert live_source.first_url in message
    assert "4 attempts" in message
    assert "HTTP 503" in message
    assert "retry the run later" in message
    assert API_KEY not in message


# --- timeouts and connection failures --------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
    ],
    ids=["read-timeout", "connect-timeout", "server-disconnected"],
)
def test_transient_transport_failure_then_success_is_retried(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
    failure: httpx.RequestError,
) -> None:
    settings = live_source.settings(backoff_seconds=1)
    httpx_mock.add_exception(failure, url=live_source.first_url)
    httpx_mock.add_response(url=live_source.first_url, content=live_source.one_page_body)
    http = open_with_fake_clock(live_source.source, settings, jitter=0.0)

    pages = live_source.run(http, settings)

    assert len(pages) == 1
    assert len(pages[0].records) == 1
    assert fake_clock.sleeps == [0.5]
    assert len(httpx_mock.get_requests()) == 2


def test_connect_error_every_time_raises_transient_after_max_attempts(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
) -> None:
    settings = live_source.settings(backoff_seconds=1, max_attempts=3)
    httpx_mock.add_exception(
        httpx.ConnectError("[Errno 111] Connection refused"),
        url=live_source.first_url,
        is_reusable=True,
    )
    http = open_with_fake_clock(live_source.source, settings)

    with pytest.raises(TransientSourceError) as caught:
        live_source.run(http, settings)

    assert len(httpx_mock.get_requests()) == 3
    assert len(fake_clock.sleeps) == 2
    message = str(caught.value)
    assert "connection failed" in message
    assert "Connection refused" in message
    assert "retry the run later" in message
    assert message.count(live_source.first_url) == 1  # the attempts' reason does not repeat it


# The real transport (no pytest-httpx): httpx's own wrapping of the socket error is what the
# classification reads. Connecting goes through socket.create_connection (name lookup included).
NETWORK_TROUBLE = {
    "dns": socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    "dns-temporary": socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    "network-unreachable": OSError(errno.ENETUNREACH, "Network is unreachable"),
    "host-unreachable": OSError(errno.EHOSTUNREACH, "No route to host"),
}


@pytest.mark.parametrize("failure", NETWORK_TROUBLE.values(), ids=NETWORK_TROUBLE.keys())
def test_no_network_on_our_side_fails_at_once_saying_check_the_network(
    monkeypatch: pytest.MonkeyPatch,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
    failure: OSError,
) -> None:
    attempts: list[object] = []

    def no_network(address: object, *args: object, **kwargs: object) -> socket.socket:
        attempts.append(address)
        raise failure

    monkeypatch.setattr(socket, "create_connection", no_network)
    settings = live_source.settings(backoff_seconds=1, max_attempts=5)
    http = open_with_fake_clock(live_source.source, settings)

    with pytest.raises(NoNetworkError) as caught:
        live_source.run(http, settings)

    assert len(attempts) == 1
    assert fake_clock.sleeps == []
    message = str(caught.value)
    assert message.startswith(f"{live_source.name} ({live_source.first_url}): ")
    assert str(failure.strerror) in message
    assert "Check the network" in message
    assert "may be down" not in message
    assert API_KEY not in message


def test_a_refused_connection_through_the_real_transport_is_transient(
    monkeypatch: pytest.MonkeyPatch, open_with_fake_clock: OpenSource, fake_clock: FakeClock
) -> None:
    """The source's host answered (refused or reset): that is the source's side, retried."""

    def refused(address: object, *args: object, **kwargs: object) -> socket.socket:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refused)
    settings = coingecko_settings(max_attempts=3)
    http = open_with_fake_clock(coingecko.SOURCE, settings)

    with pytest.raises(TransientSourceError, match="Connection refused"):
        list(coingecko.SOURCE.pages(http, settings))
    assert http.requests == 3


# --- a 200 that is not the API's answer ------------------------------------------------------

CHALLENGE = (
    b"<!DOCTYPE html><html lang='en-US'><head><title>Just a moment...</title></head>"
    b"<body>Checking your browser</body></html>"
)
BROKEN_BODIES = {
    "challenge-page": (CHALLENGE, "an HTML page ('Just a moment...') instead of JSON"),
    "empty": (b"", "the body is empty"),
    "whitespace": (b" \r\n", "the body is empty"),
    "truncated-json": (
        b'[{"id": "bitcoin", "current_price": 9',
        "the body is not well-formed JSON (Input data was truncated)",
    ),
    "truncated-utf8": ('[{"name": "caf\u00e9"}]'.encode()[:15], "the body is cut short"),
}


@pytest.mark.parametrize(("body", "expected"), BROKEN_BODIES.values(), ids=BROKEN_BODIES.keys())
def test_a_broken_200_body_is_transient_and_fetched_again(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    expected: str,
) -> None:
    settings = live_source.settings(backoff_seconds=1)
    httpx_mock.add_response(
        url=live_source.first_url, content=body, headers={"content-type": "text/html"}
    )
    httpx_mock.add_response(url=live_source.first_url, content=live_source.one_page_body)
    http = open_with_fake_clock(live_source.source, settings, jitter=0.0)

    with caplog.at_level(logging.WARNING, logger="flows.sources.http"):
        pages = live_source.run(http, settings)

    assert [len(page.records) for page in pages] == [1]
    assert pages[0].shape_error is None
    assert fake_clock.sleeps == [0.5]
    assert f"attempt 1/3 failed (HTTP 200 but {expected}" in caplog.text


def test_a_body_broken_on_every_attempt_is_kept_then_fails_the_source_as_transient(
    httpx_mock: HTTPXMock, live_source: LiveSource, tmp_path: Path
) -> None:
    settings = live_source.settings(max_attempts=3)
    httpx_mock.add_response(url=live_source.first_url, content=CHALLENGE, is_reusable=True)

    with pytest.raises(TransientSourceError) as caught:
        extract_api(
            live_source.source, settings, raw_root=tmp_path, run_id="r1", started_at=STARTED_AT
        )

    assert len(httpx_mock.get_requests()) == 3
    message = str(caught.value)
    assert message.startswith(f"{live_source.name} ({live_source.first_url}): HTTP 200 but an HTML")
    assert "on each of 3 attempts" in message
    assert "retry the run later" in message
    assert "update flows/sources" not in message
    (kept,) = tmp_path.glob(f"source={live_source.name}/date=*/run=r1/*.parquet")
    assert pl.read_parquet(kept)["envelope"].to_list() == [CHALLENGE.decode()]
    assert kept.relative_to(tmp_path).as_posix() in message


def test_well_formed_json_of_another_shape_is_terminal_after_one_request(
    httpx_mock: HTTPXMock, live_source: LiveSource, tmp_path: Path
) -> None:
    settings = live_source.settings(max_attempts=3)
    httpx_mock.add_response(url=live_source.first_url, json={"unexpected": ["shape"]})

    with pytest.raises(ContractError, match=f"update flows/sources/{live_source.name}.py"):
        extract_api(
            live_source.source, settings, raw_root=tmp_path, run_id="r1", started_at=STARTED_AT
        )
    assert len(httpx_mock.get_requests()) == 1


def test_timeout_every_time_raises_transient_naming_the_timeout(
    httpx_mock: HTTPXMock, open_with_fake_clock: OpenSource
) -> None:
    settings = coingecko_settings(max_attempts=2)
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=LIVE_COINGECKO_URL, is_reusable=True)
    http = open_with_fake_clock(coingecko.SOURCE, settings)

    with pytest.raises(TransientSourceError, match=r"timed out \(ReadTimeout\)"):
        list(coingecko.SOURCE.pages(http, settings))
    assert len(httpx_mock.get_requests()) == 2


def test_request_error_that_retrying_cannot_fix_is_terminal_after_one_request(
    httpx_mock: HTTPXMock, open_with_fake_clock: OpenSource, fake_clock: FakeClock
) -> None:
    settings = coingecko_settings()
    httpx_mock.add_exception(
        httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'htps://'."),
        url=LIVE_COINGECKO_URL,
    )
    http = open_with_fake_clock(coingecko.SOURCE, settings)

    with pytest.raises(TerminalSourceError, match="base URL setting"):
        list(coingecko.SOURCE.pages(http, settings))
    assert len(httpx_mock.get_requests()) == 1
    assert fake_clock.sleeps == []


# --- terminal statuses -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_terminal_after_one_request_and_names_the_key_variable(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
    status: int,
) -> None:
    settings = live_source.settings(max_attempts=5)
    httpx_mock.add_response(
        url=live_source.first_url, status_code=status, json={"error": "invalid api key"}
    )
    http = open_with_fake_clock(live_source.source, settings)

    with pytest.raises(TerminalSourceError) as caught:
        live_source.run(http, settings)

    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert live_source.env_var in message
    assert live_source.first_url in message
    assert API_KEY not in message
    assert len(httpx_mock.get_requests()) == 1
    assert fake_clock.sleeps == []


def test_400_is_terminal_and_not_retried(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
) -> None:
    settings = live_source.settings()
    httpx_mock.add_response(url=live_source.first_url, status_code=400)
    http = open_with_fake_clock(live_source.source, settings)

    with pytest.raises(TerminalSourceError, match=r"HTTP 400.*not retried"):
        live_source.run(http, settings)
    assert len(httpx_mock.get_requests()) == 1
    assert fake_clock.sleeps == []


def test_404_is_terminal_and_points_at_the_base_url_setting(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    fake_clock: FakeClock,
) -> None:
    settings = live_source.settings()
    httpx_mock.add_response(url=live_source.first_url, status_code=404)
    http = open_with_fake_clock(live_source.source, settings)

    with pytest.raises(TerminalSourceError, match=r"HTTP 404.*base URL setting"):
        live_source.run(http, settings)
    assert len(httpx_mock.get_requests()) == 1
    assert fake_clock.sleeps == []


# --- secrets ---------------------------------------------------------------------------------


def test_api_key_is_sent_in_a_header_but_never_in_the_url_page_or_retry_logs(
    httpx_mock: HTTPXMock,
    live_source: LiveSource,
    open_with_fake_clock: OpenSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = live_source.settings()
    httpx_mock.add_response(url=live_source.first_url, status_code=500)
    httpx_mock.add_response(url=live_source.first_url, content=live_source.one_page_body)
    http = open_with_fake_clock(live_source.source, settings)

    with caplog.at_level(logging.WARNING, logger="flows.sources.http"):
        pages = live_source.run(http, settings)

    requests = httpx_mock.get_requests()
    assert all(API_KEY in " ".join(r.headers.values()) for r in requests)
    assert all(API_KEY not in str(r.url) for r in requests)
    assert pages[0].url == live_source.first_url
    assert API_KEY not in pages[0].url
    assert "attempt 1/3 failed" in caplog.text
    assert API_KEY not in caplog.text


def test_settings_repr_hides_the_api_key(live_source: LiveSource) -> None:
    settings = live_source.settings()
    assert API_KEY not in repr(settings)
    assert API_KEY not in str(settings)


# --- client construction ---------------------------------------------------------------------


def test_open_applies_timeout_retry_policy_and_identifying_headers(
    open_source: OpenSource,
) -> None:
    settings = coingecko_settings(timeout_seconds=45, max_attempts=7, backoff_seconds=2)
    http = open_source(coingecko.SOURCE, settings)

    assert http.client.timeout.read == 45
    assert http.client.timeout.connect == 10  # connecting never waits longer than 10 s
    assert http.policy == settings.retry_policy()
    assert http.policy.max_attempts == 7
    assert http.client.headers["accept"] == "application/json"
    assert http.client.headers["user-agent"].startswith("kasparro/")


def test_body_that_is_not_utf8_becomes_a_page_with_a_shape_error(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coingecko_settings()
    body = '[{"id": "caf\u00e9"}]'.encode("latin-1")
    httpx_mock.add_response(url=LIVE_COINGECKO_URL, content=body)
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    (page,) = coingecko.SOURCE.pages(http, settings)

    assert page.shape_error is not None
    assert "not UTF-8" in page.shape_error
    assert page.records == []
    assert page.body == body


# --- Retry-After parsing ---------------------------------------------------------------------

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Tue, 24 Nov 2026 12:00:45 GMT", 45.0),
        ("Tue, 24 Nov 2026 11:59:00 GMT", 0.0),  # a moment already past: no wait
    ],
)
def test_retry_after_reads_delta_seconds_and_http_dates(header: str, seconds: float) -> None:
    response = httpx.Response(429, headers={"Retry-After": header})
    assert retry_after_seconds(response, now=NOW) == seconds


@pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}], ids=["absent", "garbage"])
def test_retry_after_absent_or_unreadable_gives_none(headers: dict[str, str]) -> None:
    assert retry_after_seconds(httpx.Response(429, headers=headers), now=NOW) is None


# --- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["api_key", "x_cg_demo_api_key", "apiKey", "token", "access_token", "client_secret",
             "auth", "password"],
)  # fmt: skip
def test_redact_url_hides_credential_like_query_parameters(name: str) -> None:
    redacted = redact_url(f"https://api.example.test/v1/assets?limit=5&{name}=s3cr3t&page=2")

    assert "s3cr3t" not in redacted
    assert httpx.URL(redacted).params[name] == "REDACTED"
    assert httpx.URL(redacted).params["limit"] == "5"
    assert httpx.URL(redacted).params["page"] == "2"


def test_redact_url_keeps_ordinary_urls_unchanged() -> None:
    url = "https://api.coingecko.com/api/v3/coins/markets?vs_currency=usd&per_page=250&page=1"
    assert redact_url(httpx.URL(url)) == url
    assert redact_url("https://api.coinpaprika.com/v1/tickers") == (
        "https://api.coinpaprika.com/v1/tickers"
    )


# --- rate limiter ----------------------------------------------------------------------------


def test_rate_limiter_at_60_per_minute_spaces_calls_one_second_apart(
    fake_clock: FakeClock,
) -> None:
    limiter = RateLimiter(60, clock=fake_clock.monotonic, sleep=fake_clock.limiter_sleep)

    for _ in range(4):
        limiter.wait()

    assert fake_clock.limiter_sleeps == [1.0, 1.0, 1.0]
    assert fake_clock.now == 3.0


def test_rate_limiter_only_waits_for_what_remains_of_the_interval(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(60, clock=fake_clock.monotonic, sleep=fake_clock.limiter_sleep)

    limiter.wait()
    fake_clock.now += 0.25
    limiter.wait()
    fake_clock.now += 5.0  # idle for longer than the interval: no wait, no burst credit
    limiter.wait()
    limiter.wait()

    assert fake_clock.limiter_sleeps == [0.75, 1.0]


def test_source_requests_are_rate_limited_across_pages(
    httpx_mock: HTTPXMock, open_with_fake_clock: OpenSource, fake_clock: FakeClock
) -> None:
    settings = coingecko_settings(requests_per_minute=60, page_size=2)
    for page, body in [(1, coingecko_page(1, 2)), (2, coingecko_page(3, 2)), (3, b"[]")]:
        httpx_mock.add_response(
            url=LIVE_COINGECKO_URL.replace("page=1", f"page={page}"), content=body
        )
    http = open_with_fake_clock(coingecko.SOURCE, settings)

    pages = list(coingecko.SOURCE.pages(http, settings))

    assert len(pages) == 3
    assert fake_clock.limiter_sleeps == [1.0, 1.0]
    assert fake_clock.sleeps == []


def test_a_base_url_with_user_and_password_is_redacted_in_the_raw_zone_errors_and_logs(
    httpx_mock: HTTPXMock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """KASPARRO_<SOURCE>_BASE_URL may carry ``user:password@``: they are sent as HTTP basic
    credentials, and reach neither the raw zone's request_url, an error message nor a log."""
    base = "https://ops:hunter2-pw@gecko.example.test/api/v3"
    public = "https://gecko.example.test/api/v3/coins/markets"
    query = "?vs_currency=usd&order=market_cap_desc&per_page=2&page="
    httpx_mock.add_response(url=f"{public}{query}1", content=coingecko_page(1, 2))
    httpx_mock.add_response(url=f"{public}{query}2", status_code=401)
    settings = coingecko_settings(base_url=base, max_attempts=1, max_pages=2)
    assert redact_url(base).startswith("https://REDACTED@gecko.example.test/")

    with caplog.at_level(logging.DEBUG), pytest.raises(TerminalSourceError) as caught:
        extract_api(
            coingecko.SOURCE, settings, raw_root=tmp_path, run_id="r1", started_at=STARTED_AT
        )

    sent = httpx_mock.get_requests()
    assert sent[0].headers["authorization"] == "Basic b3BzOmh1bnRlcjItcHc="  # ops:hunter2-pw
    kept = sorted(tmp_path.glob("source=coingecko/date=*/run=r1/*.parquet"))
    request_urls = pl.concat([pl.read_parquet(f) for f in kept])["request_url"].to_list()
    assert request_urls
    assert all(u.startswith(public) for u in request_urls)
    for text in (str(caught.value), caplog.text, *request_urls):
        assert "hunter2-pw" not in text
        assert "ops:" not in text
