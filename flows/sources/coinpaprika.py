"""CoinPaprika ``/v1/tickers?quotes=USD``: every ticker in one unpaged response; and
``/v1/contracts/{platform}``: token contract addresses, for entity resolution.

The free host is ``api.coinpaprika.com``; with a key, ``api-pro.coinpaprika.com`` and the key in
``Authorization``. ``max_supply: 0`` means "unknown" here, not zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from flows.sources.api import Access, ApiSource, HistoryApi, HistoryRequest
from flows.sources.http import Page, SourceHttp
from flows.sources.platforms import platforms
from flows.sources.settings import CoinPaprikaSettings
from flows.sources.spec import Endpoint, SourceSpec

FREE_URL = "https://api.coinpaprika.com/v1"
PRO_URL = "https://api-pro.coinpaprika.com/v1"

TICKERS = Endpoint(name="tickers", path="tickers", records_key=None)
CONTRACTS = Endpoint(
    name="contracts",
    path="contracts/{subject}",
    records_key=None,
    role="contracts",
    subject_key="platform",
    fields=("address", "id"),
)
"""The contract addresses of one platform's tokens (``[{address, id, type}]``): identity evidence
for entity resolution, one request per platform of the crosswalk."""

SPEC = SourceSpec(
    name="coinpaprika",
    id_style="symbol_name_slug",
    title="CoinPaprika",
    natural_key=("id", "last_updated"),
    checkpoint_field="last_updated",
    columns={
        "source_asset_id": "id",
        "symbol": "symbol",
        "name": "name",
        "price_usd": "quotes.USD.price",
        "market_cap_usd": "quotes.USD.market_cap",
        "volume_24h_usd": "quotes.USD.volume_24h",
        "pct_change_24h": "quotes.USD.percent_change_24h",
        "circulating_supply": "circulating_supply",
        "total_supply": "total_supply",
        "max_supply": "max_supply",
        "rank": "rank",
        "observed_at": "last_updated",
    },
    time_format="iso8601",
    endpoints=(TICKERS, CONTRACTS),
    sentinel_nulls={"max_supply": "0"},
)


def access(settings: CoinPaprikaSettings, replay: bool) -> Access:
    if settings.api_key:
        return Access(
            settings.base_url or PRO_URL,
            {"authorization": settings.api_key.get_secret_value()},
        )
    return Access(settings.base_url or FREE_URL)


def pages(http: SourceHttp, settings: CoinPaprikaSettings) -> Iterator[Page]:
    yield http.get_page(TICKERS, {"quotes": "USD"}, None)
    if settings.contracts:
        for platform in platforms():
            if listing := http.get_listing(CONTRACTS, {}, {"platform": platform.coinpaprika}):
                yield listing


HISTORICAL = Endpoint(
    name="tickers_historical", path="tickers/{subject}/historical", records_key=None
)

HISTORY_SPEC = SourceSpec(
    name="coinpaprika",
    id_style="symbol_name_slug",
    title="CoinPaprika historical tickers",
    natural_key=("id (in the URL)", "timestamp"),
    checkpoint_field="last complete UTC day loaded, per coin",
    columns={
        "source_asset_id": "^source_asset_id",
        "symbol": "^symbol",
        "name": "^name",
        "observed_at": "timestamp",
        "price_usd": "price",
        "market_cap_usd": "market_cap",
        "volume_24h_usd": "volume_24h",
    },
    time_format="iso8601",
    kind="history",
    endpoints=(HISTORICAL,),
)
MAX_HISTORY_ROWS = 5000
"""CoinPaprika's largest ``limit`` for historical ticks."""


def history_pages(
    http: SourceHttp, settings: CoinPaprikaSettings, requests: Sequence[HistoryRequest]
) -> Iterator[Page]:
    for request in requests:
        days = (request.end - request.start).days + 1
        params: dict[str, str | int] = {
            "start": request.start.isoformat(),
            "end": request.end.isoformat(),
            "interval": "1d",
            "limit": min(days, MAX_HISTORY_ROWS),
        }
        yield http.get_page(HISTORICAL, params, None, subject=request.subject())


SOURCE = ApiSource(
    spec=SPEC,
    settings_type=CoinPaprikaSettings,
    access=access,
    pages=pages,
    history=HistoryApi(spec=HISTORY_SPEC, pages=history_pages),
)
