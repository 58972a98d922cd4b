"""Which Prefect API a command runs against: the configured one, the stack's, else a temporary
server whose failure to start is one line that says what to do."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from kasparro.cli import main
from kasparro.ephemeral_server import prefect_api
from kasparro.stack import StackInfo


@pytest.mark.slow
def test_a_temporary_server_that_does_not_start_is_one_line_of_advice(
    data_dir: Path,
    demo_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # As on a machine too busy to start it in time: no time at all.
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "0")
    assert main(["ingest", "--replay", str(demo_dir)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # Prefect's own progress lines ("Starting temporary server ...") may precede it.
    (line,) = [line for line in err.splitlines() if "ingest:" in line]
    assert line.startswith("ingest: no Prefect API: the temporary Prefect server did not start")
    assert "`make up`" in line
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in line
    assert not (data_dir / "warehouse.duckdb").exists()


def test_while_the_stack_is_up_commands_use_its_server(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    stack = data_dir / "stack"
    stack.mkdir(parents=True)
    info = StackInfo(os.getpid(), "http://127.0.0.1:4999/api", "", "", str(stack / "logs"))
    (stack / "stack.json").write_text(json.dumps(info.__dict__))
    with prefect_api():
        assert PREFECT_API_URL.value() == "http://127.0.0.1:4999/api"
