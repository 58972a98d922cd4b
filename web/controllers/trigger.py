"""Runs from the API: ``POST /api/v1/runs`` starts a Prefect deployment of the ingest flow with
parameters, and ``GET /api/v1/runs/{run_id}/prefect`` gives the Prefect state of the flow run a
ledger row points at.

Starting runs needs ``Authorization: Bearer <KASPARRO_API_RUNS_TOKEN>`` (compared in constant
time; unset: disabled, 403) and a Prefect API (``PREFECT_API_URL``; unset: 503). The web app
never imports the flows: it asks Prefect's API, whose worker runs the deployment.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from uuid import UUID

import duckdb
import httpx
import msgspec
from litestar import get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody, Parameter
from prefect.client.orchestration import PrefectClient
from prefect.exceptions import ObjectNotFound

from store import runs
from web.operations_settings import OperationsSettings, get_operations_settings

FLOW = "ingest"


class RunRequest(msgspec.Struct, forbid_unknown_fields=True):
    deployment: str
    """A deployment of the ingest flow: ``demo-replay``, ``hourly`` (or ``ingest/<name>``)."""
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    """The flow's parameters (sources, replay_dir, history), over the deployment's own."""


class StartedRun(msgspec.Struct):
    flow_run_id: UUID
    flow_run_name: str
    deployment: str
    state: str
    ui_url: str | None


class PrefectRun(msgspec.Struct):
    run_id: str
    flow_run_id: UUID
    state: str | None
    state_message: str | None
    ui_url: str | None


class Unprocessable(HTTPException):
    """Prefect refused the run (its parameters, say)."""

    status_code = 422


def require_runs_token(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """``Authorization: Bearer <KASPARRO_API_RUNS_TOKEN>``, compared in constant time."""
    settings = get_operations_settings()
    if settings.runs_token is None:
        raise PermissionDeniedException("starting runs is disabled: set KASPARRO_API_RUNS_TOKEN")
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    expected = settings.runs_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise NotAuthorizedException(
            "missing or wrong token: send the header Authorization: Bearer <token>, the token "
            "being KASPARRO_API_RUNS_TOKEN"
        )


def _prefect(settings: OperationsSettings) -> PrefectClient:
    if not settings.prefect_api_url:
        raise ServiceUnavailableException(
            "no Prefect API is configured: set PREFECT_API_URL to the Prefect server the "
            "deployments are on (e.g. http://127.0.0.1:4200/api; `make up` starts one)"
        )
    return PrefectClient(settings.prefect_api_url)


def _unreachable(settings: OperationsSettings, exc: Exception) -> ServiceUnavailableException:
    return ServiceUnavailableException(
        f"the Prefect API at {settings.prefect_api_url} did not answer ({type(exc).__name__}): "
        "start it (`make up`) or fix PREFECT_API_URL"
    )


# Plain handlers, not a Controller: Litestar refuses a second controller on /api/v1/runs (each
# brings an OPTIONS handler); registered after RunsController, they join its path.
@post(
    "/api/v1/runs",
    tags=["runs"],
    operation_id="startRun",
    summary="Start a run of an ingest deployment",
    description="Creates a flow run of the named deployment with the given parameters; a "
    "worker of its pool runs it. 201 with the flow run id and its Prefect UI link. Needs "
    "KASPARRO_API_RUNS_TOKEN (403 when unset) and PREFECT_API_URL (503 when unset).",
    guards=[require_runs_token],
    raises=[NotAuthorizedException, PermissionDeniedException, NotFoundException, Unprocessable],
    status_code=201,
)
async def start_run(data: JSONBody[RunRequest]) -> StartedRun:
    settings = get_operations_settings()
    name = data.deployment if "/" in data.deployment else f"{FLOW}/{data.deployment}"
    try:
        async with _prefect(settings) as client:
            try:
                deployment = await client.read_deployment_by_name(name)
            except ObjectNotFound:
                raise NotFoundException(
                    f"no deployment {name!r} on {settings.prefect_api_url}: deploy it "
                    "(`prefect --no-prompt deploy --all`, or `make up`)"
                ) from None
            flow_run = await client.create_flow_run_from_deployment(
                deployment.id, parameters=data.parameters
            )
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code in {409, 422}:
            raise Unprocessable(
                detail=f"Prefect refused the run of {name!r}: {exc.response.text[:500]}",
            ) from None
        raise _unreachable(settings, exc) from None
    except httpx.TransportError as exc:
        raise _unreachable(settings, exc) from None
    return StartedRun(
        flow_run_id=flow_run.id,
        flow_run_name=flow_run.name,
        deployment=name,
        state=(flow_run.state.name if flow_run.state else None) or "Scheduled",
        ui_url=settings.flow_run_url(flow_run.id),
    )


@get(
    "/api/v1/runs/{run_id:str}/prefect",
    tags=["runs"],
    operation_id="getRunPrefectState",
    summary="The Prefect state of the flow run a ledger run points at",
    raises=[NotFoundException],
)
async def prefect_state(
    run_id: Annotated[str, Parameter(description="Run id, e.g. 20261125T104105Z-3f9a2c.")],
    db: NamedDependency[duckdb.DuckDBPyConnection],
) -> PrefectRun:
    settings = get_operations_settings()
    known, flow_run_id = runs.flow_run_of(db, run_id)
    if not known:
        raise NotFoundException(f"no run {run_id!r} in the ledger")
    if flow_run_id is None:
        raise NotFoundException(f"run {run_id!r} ran without Prefect (no flow run recorded)")
    try:
        async with _prefect(settings) as client:
            flow_run = await client.read_flow_run(UUID(flow_run_id))
    except ObjectNotFound:
        raise NotFoundException(
            f"flow run {flow_run_id} of run {run_id!r} is not on {settings.prefect_api_url}"
        ) from None
    except httpx.HTTPError as exc:
        raise _unreachable(settings, exc) from None
    state = flow_run.state
    return PrefectRun(
        run_id=run_id,
        flow_run_id=flow_run.id,
        state=state.name if state else None,
        state_message=state.message if state else None,
        ui_url=settings.flow_run_url(flow_run.id),
    )
