"""The Litestar application: ``create_app()`` wires settings, the snapshot and the controllers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from store.settings import DECISIONS_INBOX, get_store_settings
from web.controllers.coins import CoinsController
from web.controllers.data import DataController
from web.controllers.health import health, ping
from web.controllers.operations import metrics, ready
from web.controllers.resolution import SECURITY_SCHEME, ResolutionController
from web.controllers.runs import RunsController
from web.controllers.stats import stats
from web.controllers.trigger import prefect_state, start_run
from web.dependencies import provide_db
from web.errors import EXCEPTION_HANDLERS
from web.log_context import request_log_context
from web.metrics import HTTP_METRICS
from web.middleware import RequestContextApp
from web.settings import WebSettings, get_web_settings
from web.snapshot import Snapshot


def create_app(
    web_settings: WebSettings | None = None, snapshot_path: Path | None = None
) -> Litestar:
    """The API over the serving snapshot (``serving.duckdb`` under KASPARRO_DATA_DIR)."""
    settings = web_settings or get_web_settings()
    snapshot = Snapshot(snapshot_path or get_store_settings().serving_path)
    # Decisions go to the inbox of the data directory whose snapshot this app serves.
    inbox = snapshot.path.parent / DECISIONS_INBOX

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            snapshot.close()

    return RequestContextApp(
        route_handlers=[
            ping,
            health,
            stats,
            CoinsController,
            DataController,
            RunsController,
            ResolutionController,
            start_run,
            prefect_state,
            metrics,
            ready,
        ],
        middleware=[request_log_context, HTTP_METRICS.middleware],
        dependencies={
            "snapshot": Provide(lambda: snapshot, use_cache=True, sync_to_thread=False),
            "web_settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "decisions_inbox": Provide(lambda: inbox, use_cache=True, sync_to_thread=False),
            "db": Provide(provide_db),
        },
        # For guards and hooks, which dependency injection does not reach.
        state=State({"web_settings": settings, "snapshot": snapshot}),
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Kasparro API",
            version=version("kasparro"),
            description="Crypto market data from CoinGecko, CoinPaprika, CoinCap and legacy "
            "CSV files, resolved to canonical coins. Money is exact decimal text.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=Components(
                security_schemes={
                    SECURITY_SCHEME: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="KASPARRO_API_DECISIONS_TOKEN",
                    )
                }
            ),
        ),
    )
