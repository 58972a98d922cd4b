"""CoinPaprika ``/v1/tickers?quotes=USD``: every ticker in one unpaged response.

The free host is ``api.coinpaprika.com``; with a key, ``api-pro.coinpaprika.com`` and the key in
``Authorization``. ``max_supply: 0`` means "unknown" here, not zero.
"""

from __future__ import annotations

from collections.abc import Iterator

from flows.sources.api import Access, ApiSource
from flows.sources.http import Page, SourceHttp
from flows.sources.settings import CoinPaprikaSettings
from flows.sources.spec import Endpoint, SourceSpec

FREE_URL = "https://api.coinpaprika.com/v1"
PRO_URL = "https://api-pro.coinpaprika.com/v1"

TICKERS = Endpoint(name="tickers", path="tickers", records_key=None)

SPEC = SourceSpec(
    name="coinpaprika",
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
    endpoints=(TICKERS,),
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


SOURCE = ApiSource(spec=SPEC, settings_type=CoinPaprikaSettings, access=access, pages=pages)
