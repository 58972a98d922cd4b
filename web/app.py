"""The Litestar application: ``create_app()`` wires settings, the snapshot and the controllers."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.types import Middleware

from store.settings import DECISIONS_INBOX, get_store_settings
from web.controllers.coins import CoinsController
from web.controllers.data import DataController
from web.controllers.drift import DriftController
from web.controllers.health import health, ping
from web.controllers.operations import metrics, ready
from web.controllers.resolution import SECURITY_SCHEME, ResolutionController
from web.controllers.runs import RunsController
from web.controllers.stats import stats
from web.controllers.trigger import prefect_state, start_run
from web.dashboard import DASHBOARD_HANDLERS
from web.dependencies import provide_db
from web.docs import DOCS_PATH, OfflineSwagger, ProblemAwareJson, docs_router
from web.errors import EXCEPTION_HANDLERS, PROBLEM_MAP
from web.log_context import request_log_context
from web.metrics import HTTP_METRICS
from web.middleware import RequestContextApp
from web.request import SafeJSONRequest
from web.settings import WebSettings, get_web_settings
from web.snapshot import Snapshot
from web.warmer import Warmer

UNLIMITED = ("^/ping$", "^/health$", f"^{DOCS_PATH}")
"""Not counted by the rate limit: probes, and the docs (static, rendered once)."""


def create_app(
    web_settings: WebSettings | None = None, snapshot_path: Path | None = None
) -> Litestar:
    """The API over the serving snapshot (``serving.duckdb`` under KASPARRO_DATA_DIR)."""
    settings = web_settings or get_web_settings()
    snapshot = Snapshot(snapshot_path or get_store_settings().serving_path)
    # Decisions go to the inbox of the data directory whose snapshot this app serves.
    inbox = snapshot.path.parent / DECISIONS_INBOX
    warmer = Warmer(snapshot)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # What is alive once started (modules, the app, ~150k objects) lives as long as the
        # process: kept out of the collector, a full collection no longer walks it. Walking it
        # cost ~80 ms, paid by whichever request set the collection off (1-in-thousands
        # requests of 75-130 ms at 10M quotes, where they otherwise take 10-35).
        gc.freeze()
        warmer.start()
        try:
            yield
        finally:
            warmer.stop()
            gc.unfreeze()
            snapshot.close()

    # The request's log context and metrics first, so a refused request is logged and counted.
    middleware: list[Middleware] = [request_log_context, HTTP_METRICS.middleware]
    if settings.rate_limit_per_minute:
        # Litestar's limiter keeps its counts in this process's memory.
        limit = RateLimitConfig(
            rate_limit=("minute", settings.rate_limit_per_minute), exclude=list(UNLIMITED)
        )
        middleware.append(limit.middleware)
    cors = (
        CORSConfig(
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id", "server-timing", "retry-after"],
            max_age=600,
        )
        if settings.cors_origins
        else None
    )

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
            DriftController,
            *DASHBOARD_HANDLERS,
        ],
        dependencies={
            "snapshot": Provide(lambda: snapshot, use_cache=True, sync_to_thread=False),
            "web_settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "decisions_inbox": Provide(lambda: inbox, use_cache=True, sync_to_thread=False),
            "db": Provide(provide_db),
        },
        # For guards and hooks, which dependency injection does not reach.
        state=State({"web_settings": settings, "snapshot": snapshot}),
        plugins=[
            ProblemDetailsPlugin(ProblemDetailsConfig(exception_to_problem_detail_map=PROBLEM_MAP))
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=SafeJSONRequest,
        request_max_body_size=settings.max_body_bytes,
        middleware=middleware,
        cors_config=cors,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Kasparro API",
            version=version("kasparro"),
            description="Crypto market data from CoinGecko, CoinPaprika, CoinCap and legacy "
            "CSV files, resolved to canonical coins. Money is exact decimal text. Errors are "
            "RFC 9457 problem details.",
            path=DOCS_PATH,
            openapi_router=docs_router(),
            render_plugins=[OfflineSwagger(), ProblemAwareJson()],
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
