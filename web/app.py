"""The Litestar application: ``create_app()`` wires settings, the snapshot and the controllers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from store.settings import get_store_settings
from web.controllers.coins import CoinsController
from web.controllers.data import DataController
from web.controllers.health import health, ping
from web.controllers.runs import RunsController
from web.controllers.stats import stats
from web.dependencies import provide_db
from web.errors import EXCEPTION_HANDLERS
from web.middleware import RequestContextApp
from web.settings import WebSettings, get_web_settings
from web.snapshot import Snapshot


def create_app(
    web_settings: WebSettings | None = None, snapshot_path: Path | None = None
) -> Litestar:
    """The API over the serving snapshot (``serving.duckdb`` under KASPARRO_DATA_DIR)."""
    settings = web_settings or get_web_settings()
    snapshot = Snapshot(snapshot_path or get_store_settings().serving_path)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            snapshot.close()

    return RequestContextApp(
        route_handlers=[ping, health, stats, CoinsController, DataController, RunsController],
        dependencies={
            "snapshot": Provide(lambda: snapshot, use_cache=True, sync_to_thread=False),
            "web_settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "db": Provide(provide_db),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Kasparro API",
            version=version("kasparro"),
            description="Crypto market data from CoinGecko, CoinPaprika, CoinCap and legacy "
            "CSV files, resolved to canonical coins. Money is exact decimal text.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
    )
