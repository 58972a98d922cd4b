"""Which Prefect API a command runs against: the configured one, the stack's, else a temporary
server whose failure to start is one line that says what to do."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from kasparro import cli, ephemeral_server
from kasparro.ephemeral_server import EphemeralServerError, prefect_api
from kasparro.stack import StackInfo


@pytest.mark.slow
def test_a_temporary_server_that_does_not_start_is_one_line_of_advice(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # As on a machine too busy to start it in time: its imports alone take longer than 1 s.
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "1")
    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(EphemeralServerError) as failed,
        prefect_api(),
    ):
        pytest.fail("no API, no run")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("no Prefect API: the temporary Prefect server did not start")
    assert "`make up`" in message
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in message


def test_the_command_says_it_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @contextmanager
    def no_api() -> Iterator[None]:
        raise EphemeralServerError("no Prefect API: ... `make up` ...")
        yield

    monkeypatch.setattr(ephemeral_server, "prefect_api", no_api)
    assert cli._ingest(cli.build_parser().parse_args(["ingest"])) == 1
    assert capsys.readouterr().err == "ingest: no Prefect API: ... `make up` ...\n"


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
