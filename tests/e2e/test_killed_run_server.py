"""A SIGKILLed ingest leaves no temporary Prefect server behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DEMO_DIR, REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; Linux only"),
]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its parent (maybe none) has not reaped it


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if parent == pid:
            found[int(entry.name)] = command
    return found


def test_a_killed_ingest_takes_its_temporary_prefect_server_with_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KASPARRO_DATA_DIR": str(tmp_path / "data"),
        "KASPARRO_OVERRIDES_FILE": str(REPO / "data" / "asset_overrides.csv"),
        "KASPARRO_FAULT": "after_raw:coinpaprika",  # the drill: the run SIGKILLs itself
        "PREFECT_HOME": str(tmp_path / "prefect"),  # its own server database
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)  # no API configured: the run starts a temporary server
    ingest = subprocess.Popen(
        [sys.executable, "-m", "kasparro", "ingest", "--replay", str(DEMO_DIR)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    servers: dict[int, str] = {}
    try:
        while ingest.poll() is None:
            servers |= {p: c for p, c in _children(ingest.pid).items() if "uvicorn" in c}
            time.sleep(0.05)
        assert ingest.returncode == -signal.SIGKILL, ingest.stderr.read() if ingest.stderr else ""
        assert servers, "the run started a temporary Prefect server"
        deadline = time.monotonic() + 15
        while any(map(_alive, servers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {pid: servers[pid] for pid in servers if _alive(pid)}
        assert not left, f"servers left running after their ingest was killed: {left}"
    finally:
        for pid in servers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if ingest.stderr:
            ingest.stderr.close()
