"""prefect.yaml deploys the real ingest flow with parameters it accepts."""

from __future__ import annotations

import importlib
import inspect

import yaml
from prefect import Flow

from tests.conftest import REPO


def test_every_deployment_points_at_the_ingest_flow_with_valid_parameters() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = config["deployments"]
    assert {d["name"] for d in deployments} == {"hourly", "demo-replay"}
    for deployment in deployments:
        path, name = deployment["entrypoint"].split(":")
        assert (REPO / path).is_file()
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        assert isinstance(flow, Flow)
        assert flow.name == "ingest"
        accepted = inspect.signature(flow.fn).parameters
        assert set(deployment["parameters"]) <= set(accepted), deployment["name"]
        assert deployment["concurrency_limit"]["limit"] == 1, "one writer at a time"
        for key, value in deployment["parameters"].items():
            if key == "replay_dir":
                assert (REPO / value).is_dir()
    hourly = next(d for d in deployments if d["name"] == "hourly")
    assert hourly["schedules"][0]["cron"] == "7 * * * *"


def test_deploying_needs_no_prompt_and_no_deploying_machines_path() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    # Resolved from the worker's environment when a run starts: `kasparro up` and compose set it.
    directory = config["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"]
    assert directory == "{{ $KASPARRO_HOME }}"
    # A deployment without a `schedules` key makes `prefect deploy --all` ask for one.
    assert all("schedules" in d for d in config["deployments"])
    assert "PREFECT_API_URL" in (REPO / "prefect.yaml").read_text()
