"""What `kasparro ingest` prints when a source fails: the source's error once, no traceback, a
last line naming the failed source; the Prefect flow run still ends Failed with the message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from store.connection import open_read_only
from tests.conftest import REPO

pytestmark = pytest.mark.slow

NO_DNS = (
    "import socket, sys\n"
    "resolve = socket.getaddrinfo\n"
    "def no_dns(host, *args, **kwargs):\n"
    "    if host in ('127.0.0.1', 'localhost'):\n"
    "        return resolve(host, *args, **kwargs)\n"
    "    raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')\n"
    "socket.getaddrinfo = no_dns\n"
    "from kasparro.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
"""The command line on a machine where only the local Prefect API resolves (no request to a
source leaves it)."""


def kasparro_ingest(
    data_dir: Path, prefect_api: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "KASPARRO_DATA_DIR": str(data_dir),
        "KASPARRO_OVERRIDES_FILE": str(REPO / "data" / "asset_overrides.csv"),
        "PREFECT_API_URL": prefect_api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **env,
    }
    environment.pop("KASPARRO_FAULT", None)
    return subprocess.run(
        [sys.executable, "-c", NO_DNS, "ingest", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def flow_run_message(data_dir: Path) -> tuple[bool, str]:
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        ((flow_run_id,),) = con.execute("select flow_run_id from runs").fetchall()
    finally:
        con.close()
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    assert state is not None
    return state.is_failed(), state.message or ""


def assert_told_once(done: subprocess.CompletedProcess[str], error: str) -> None:
    printed = done.stdout + done.stderr
    assert done.returncode == 1, printed
    assert printed.count(error) == 1, printed
    assert "Traceback" not in printed, printed
    (last,) = [line for line in printed.splitlines() if line.startswith("ingest failed:")]
    assert "coingecko failed" in last


def test_a_source_with_a_drifted_payload_is_reported_once_without_a_traceback(
    prefect_api: str, data_dir: Path, demo_dir: Path, tmp_path: Path
) -> None:
    replay = tmp_path / "replay"
    shutil.copytree(demo_dir, replay)
    page = replay / "coingecko" / "coins_markets" / "page-0001.json"
    page.write_text('{"status": {"error_code": 10002, "error_message": "API Key Missing"}}')

    done = kasparro_ingest(
        data_dir, prefect_api, "--replay", str(replay), "--source", "coingecko", "--source", "csv"
    )

    error = "expected a JSON array of records at the top level"
    assert_told_once(done, error)
    assert "update flows/sources/coingecko.py" in done.stderr
    failed, message = flow_run_message(data_dir)
    assert failed
    assert error in message
    assert "https://api.coingecko.com/api/v3/coins/markets" in message


def test_no_dns_fails_the_source_at_once_saying_check_the_network_once(
    prefect_api: str, data_dir: Path
) -> None:
    done = kasparro_ingest(
        data_dir,
        prefect_api,
        "--source",
        "coingecko",
        KASPARRO_COINGECKO_API_KEY="secret-key-1234",
        KASPARRO_COINGECKO_BACKOFF_SECONDS="0",
        KASPARRO_COINGECKO_REQUESTS_PER_MINUTE="6000",
        KASPARRO_EXTRACT_RETRY_DELAY_SECONDS="0",
    )

    assert_told_once(done, "Name or service not known")
    printed = done.stdout + done.stderr
    assert "Check the network" in printed
    assert "may be down" not in printed
    assert "retrying in" not in printed  # no request retried
    assert "Retry 1/" not in printed  # no extract retried
    assert "secret-key-1234" not in printed
    failed, message = flow_run_message(data_dir)
    assert failed
    assert "Check the network" in message
    assert "https://api.coingecko.com/api/v3/coins/markets" in message


def test_a_challenge_page_is_retried_then_reported_once_as_transient(
    prefect_api: str, data_dir: Path, demo_dir: Path, tmp_path: Path
) -> None:
    replay = tmp_path / "replay"
    shutil.copytree(demo_dir, replay)
    page = replay / "coingecko" / "coins_markets" / "page-0001.json"
    page.write_text("<html><head><title>Just a moment...</title></head></html>")

    done = kasparro_ingest(
        data_dir,
        prefect_api,
        "--replay",
        str(replay),
        "--source",
        "coingecko",
        KASPARRO_COINGECKO_MAX_ATTEMPTS="2",
        KASPARRO_COINGECKO_BACKOFF_SECONDS="0",
        KASPARRO_EXTRACT_RETRIES="1",
        KASPARRO_EXTRACT_RETRY_DELAY_SECONDS="0",
    )

    con = open_read_only(data_dir / "serving.duckdb")
    try:
        ((error,),) = con.execute("select error from run_sources").fetchall()
    finally:
        con.close()
    assert "HTTP 200 but an HTML page ('Just a moment...') instead of JSON" in error
    assert "retry the run later" in error
    assert_told_once(done, error)
    printed = done.stdout + done.stderr
    assert printed.count("attempt 1/2 failed (HTTP 200 but an HTML page") == 2  # per extract
    assert "Retry 1/1 will start" in printed  # the whole extract was retried: transient
    kept = list((data_dir / "raw").glob("source=coingecko/**/coins_markets-page-0001*.parquet"))
    assert len(kept) == 2, "each extract attempt's last body is in the raw zone"
