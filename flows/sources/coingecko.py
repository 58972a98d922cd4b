"""CoinGecko ``/api/v3/coins/markets``: the market snapshot, 250 coins a page by market cap;
and ``/coins/list?include_platform=true``: contract addresses, for entity resolution.

Demo keys go to ``api.coingecko.com`` in ``x-cg-demo-api-key``; Pro keys to
``pro-api.coingecko.com`` in ``x-cg-pro-api-key``; without a key the public host is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from flows.sources.api import Access, ApiSource, HistoryApi, HistoryRequest
from flows.sources.http import Page, SourceHttp
from flows.sources.settings import CoinGeckoSettings
from flows.sources.spec import Endpoint, SourceSpec

PUBLIC_URL = "https://api.coingecko.com/api/v3"
PRO_URL = "https://pro-api.coingecko.com/api/v3"


def _page_of(query: Mapping[str, str]) -> int:
    return int(query.get("page", "1"))


MARKETS = Endpoint(name="coins_markets", path="coins/markets", records_key=None, page_of=_page_of)
COINS_LIST = Endpoint(
    name="coins_list",
    path="coins/list",
    records_key=None,
    role="contracts",
    fields=("id", "platforms"),
    may_be_empty=False,
)
"""Every coin with its contract address per platform (``include_platform=true``): identity
evidence for entity resolution, fetched once a run after the markets."""

SPEC = SourceSpec(
    name="coingecko",
    title="CoinGecko",
    natural_key=("id", "last_updated"),
    checkpoint_field="last_updated",
    columns={
        "source_asset_id": "id",
        "symbol": "symbol",
        "name": "name",
        "price_usd": "current_price",
        "market_cap_usd": "market_cap",
        "volume_24h_usd": "total_volume",
        "pct_change_24h": "price_change_percentage_24h",
        "circulating_supply": "circulating_supply",
        "total_supply": "total_supply",
        "max_supply": "max_supply",
        "rank": "market_cap_rank",
        "observed_at": "last_updated",
    },
    time_format="iso8601",
    endpoints=(MARKETS, COINS_LIST),
)


def access(settings: CoinGeckoSettings, replay: bool) -> Access:
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if settings.plan == "pro":
        headers = {"x-cg-pro-api-key": key} if key else {}
        return Access(settings.base_url or PRO_URL, headers)
    headers = {"x-cg-demo-api-key": key} if key else {}
    return Access(settings.base_url or PUBLIC_URL, headers)


def pages(http: SourceHttp, settings: CoinGeckoSettings) -> Iterator[Page]:
    for number in range(1, settings.max_pages + 1):
        params: dict[str, str | int] = {
            "vs_currency": "usd",
            "order": "market_cap_desc",
            "per_page": settings.page_size,
            "page": number,
        }
        page = http.get_page(MARKETS, params, number)
        yield page
        if page.shape_error or len(page.records) < settings.page_size:
            break
    if settings.contracts and (
        listing := http.get_listing(COINS_LIST, {"include_platform": "true"})
    ):
        yield listing


MARKET_CHART = Endpoint(
    name="coins_market_chart_range",
    path="coins/{subject}/market_chart/range",
    records_key="prices",
    array_records=True,
)

HISTORY_SPEC = SourceSpec(
    name="coingecko",
    title="CoinGecko market chart",
    natural_key=("id (in the URL)", "timestamp"),
    checkpoint_field="last complete UTC day loaded, per coin",
    # A record is [epoch_ms, price]; market caps and volumes are parallel series in the envelope.
    columns={
        "source_asset_id": "^source_asset_id",
        "symbol": "^symbol",
        "name": "^name",
        "observed_at": "0",
        "price_usd": "1",
        "market_cap_usd": "@market_caps",
        "volume_24h_usd": "@total_volumes",
    },
    time_format="epoch_ms",
    record_format="series",
    kind="history",
    endpoints=(MARKET_CHART,),
)


def history_pages(
    http: SourceHttp, settings: CoinGeckoSettings, requests: Sequence[HistoryRequest]
) -> Iterator[Page]:
    for request in requests:
        first, last = request.bounds()
        params: dict[str, str | int] = {
            "vs_currency": "usd",
            "from": int(first.timestamp()),
            "to": int(last.timestamp()),
        }
        yield http.get_page(MARKET_CHART, params, None, subject=request.subject())


SOURCE = ApiSource(
    spec=SPEC,
    settings_type=CoinGeckoSettings,
    access=access,
    pages=pages,
    history=HistoryApi(spec=HISTORY_SPEC, pages=history_pages),
)
