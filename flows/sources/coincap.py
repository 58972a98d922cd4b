"""CoinCap ``/v3/assets?limit=&offset=``: assets by rank, every number a decimal string.

v3 needs an API key (sent as a bearer token). The v2 base URL (``https://api.coincap.io/v2``)
can be configured instead: same record shape. The observation time is the envelope's
``timestamp`` (epoch milliseconds); records carry none of their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from flows.errors import SourceSkipped
from flows.sources.api import Access, ApiSource
from flows.sources.http import Page, SourceHttp
from flows.sources.settings import CoinCapSettings
from flows.sources.spec import Endpoint, SourceSpec

V3_URL = "https://rest.coincap.io/v3"
DEFAULT_LIMIT = 100


def _page_of(query: Mapping[str, str]) -> int:
    limit = int(query.get("limit", str(DEFAULT_LIMIT)))
    return int(query.get("offset", "0")) // limit + 1


ASSETS = Endpoint(name="assets", path="assets", records_key="data", page_of=_page_of)

SPEC = SourceSpec(
    name="coincap",
    title="CoinCap",
    natural_key=("id", "@timestamp"),
    checkpoint_field="@timestamp",
    columns={
        "source_asset_id": "id",
        "symbol": "symbol",
        "name": "name",
        "price_usd": "priceUsd",
        "market_cap_usd": "marketCapUsd",
        "volume_24h_usd": "volumeUsd24Hr",
        "pct_change_24h": "changePercent24Hr",
        "circulating_supply": "supply",
        "max_supply": "maxSupply",
        "rank": "rank",
        "observed_at": "@timestamp",
    },
    time_format="epoch_ms",
    endpoints=(ASSETS,),
    numbers_as="string",
)


def access(settings: CoinCapSettings, replay: bool) -> Access:
    base_url = settings.base_url or V3_URL
    if settings.api_key:
        return Access(base_url, {"authorization": f"Bearer {settings.api_key.get_secret_value()}"})
    if base_url == V3_URL and not replay:
        raise SourceSkipped(
            "coincap",
            "CoinCap v3 needs an API key: set KASPARRO_COINCAP_API_KEY (or point "
            "KASPARRO_COINCAP_BASE_URL at a v2-compatible host)",
            url=base_url,
        )
    return Access(base_url)


def pages(http: SourceHttp, settings: CoinCapSettings) -> Iterator[Page]:
    for number in range(1, settings.max_pages + 1):
        params = {"limit": settings.page_size, "offset": (number - 1) * settings.page_size}
        page = http.get_page(ASSETS, params, number)
        yield page
        if page.shape_error or len(page.records) < settings.page_size:
            return


SOURCE = ApiSource(spec=SPEC, settings_type=CoinCapSettings, access=access, pages=pages)
