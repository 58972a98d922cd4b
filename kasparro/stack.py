"""``kasparro up`` / ``kasparro down``: the local stack in one command.

It starts, in order: a Prefect server on 127.0.0.1, the ``kasparro`` work pool (one flow run at a
time), ``prefect deploy --all`` (prefect.yaml), a worker, and the API. All of them share one data
directory (KASPARRO_DATA_DIR) and write their logs to ``<data dir>/stack/logs/``; Prefect's
database and settings live in ``<data dir>/stack/prefect``. ``stack/stack.json`` tells other
``kasparro`` commands where the server is: while it is up, ``kasparro ingest`` runs against it
instead of starting a temporary server (seconds instead of tens of seconds), and shows in its UI.

It stops cleanly on Ctrl-C, SIGTERM or ``kasparro down``: each process gets SIGTERM, in the
reverse order, then SIGKILL if it has not ended within ``STOP_SECONDS``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

import httpx

from store.settings import get_store_settings

REPO = Path(__file__).resolve().parent.parent
POOL = "kasparro"
STOP_SECONDS = 20.0
READY_SECONDS = 180.0
"""How long the server may take to answer: its first start migrates its database (~40 s on a
busy 2-core machine, measured)."""


@dataclass(frozen=True)
class StackInfo:
    pid: int
    """The ``kasparro up`` process that supervises the others."""
    prefect_api_url: str
    prefect_ui_url: str
    api_url: str
    logs: str


def stack_dir(data_dir: Path | None = None) -> Path:
    return (data_dir or get_store_settings().data_dir).resolve() / "stack"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_stack(data_dir: Path | None = None) -> StackInfo | None:
    """The stack serving this data directory, if one is up."""
    try:
        info = StackInfo(**json.loads((stack_dir(data_dir) / "stack.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return info if _alive(info.pid) else None


def stack_environment(data_dir: Path, prefect_port: int) -> dict[str, str]:
    """What every process of the stack runs with (an operator's own settings still win)."""
    data_dir = data_dir.resolve()
    defaults = {
        "KASPARRO_DATA_DIR": str(data_dir),
        # The deployments' pull step runs the flow here (prefect.yaml).
        "KASPARRO_HOME": str(REPO),
        "PREFECT_HOME": str(stack_dir(data_dir) / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(prefect_port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "flows,store",
        # Task results (what a retried flow run reuses) beside the warehouse they describe,
        # not in $PREFECT_HOME/storage.
        "PREFECT_LOCAL_STORAGE_PATH": str(data_dir / "prefect-results"),
        "PREFECT_WORKER_QUERY_SECONDS": "5",
    }
    env = dict(os.environ)
    for key, value in defaults.items():
        if key in _OURS:
            env[key] = value
        else:
            env.setdefault(key, value)
    return env


_OURS = frozenset({"KASPARRO_DATA_DIR", "PREFECT_API_URL", "PREFECT_HOME", "KASPARRO_HOME"})
"""Set by the stack whatever the environment says: they must agree across its processes."""


class Stack:
    def __init__(self, data_dir: Path, prefect_port: int, api_port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.env = stack_environment(self.data_dir, prefect_port)
        self.logs = stack_dir(self.data_dir) / "logs"
        self.prefect_port, self.api_port = prefect_port, api_port
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _bin(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 - this environment's own commands
            args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append((name, process))
        print(f"  {name:<7} pid {process.pid}, log {self.logs / name}.log", flush=True)
        return process

    def _deploy(self, name: str, args: list[str]) -> None:
        # Without KASPARRO_HOME: `prefect deploy` would write its value into the pull step; unset,
        # the step keeps `{{ $KASPARRO_HOME }}`, which each run reads from its worker.
        env = {k: v for k, v in self.env.items() if k != "KASPARRO_HOME"}
        with (self.logs / f"{name}.log").open("ab") as log:
            done = subprocess.run(  # noqa: S603 - this environment's own commands
                args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            raise StackError(f"{' '.join(args[1:3])} failed: see {self.logs / name}.log")

    def _wait_for(self, url: str, what: str, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(f"{what} exited with code {process.returncode}: see its log")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise StackError(f"{what} did not answer {url} within {READY_SECONDS:.0f}s: see its log")

    def up(self) -> StackInfo:
        self.logs.mkdir(parents=True, exist_ok=True)
        api_url = self.env["PREFECT_API_URL"]
        server = self._start(
            "server", [self._bin("prefect"), "server", "start", "--host", "127.0.0.1"]
        )
        self._wait_for(f"{api_url}/health", "the Prefect server", server)
        self._configure_pool(api_url)
        self._deploy("deploy", [self._bin("prefect"), "--no-prompt", "deploy", "--all"])
        self._start("worker", [self._bin("prefect"), "worker", "start", "--pool", POOL])
        api = self._start("api", [self._bin("kasparro"), "serve", "--port", str(self.api_port)])
        self._wait_for(f"http://127.0.0.1:{self.api_port}/ping", "the API", api)
        info = StackInfo(
            pid=os.getpid(),
            prefect_api_url=api_url,
            prefect_ui_url=f"http://127.0.0.1:{self.prefect_port}",
            api_url=f"http://127.0.0.1:{self.api_port}",
            logs=str(self.logs),
        )
        state = stack_dir(self.data_dir) / "stack.json"
        state.write_text(json.dumps(asdict(info), indent=2))
        return info

    def _configure_pool(self, api_url: str) -> None:
        """The pool takes one flow run at a time: a run waiting for the warehouse then waits in
        the queue, not in a process of its own (flows.writer guards the warehouse either way).
        Prefect's worker module is imported here only: `kasparro ingest` reads this module."""
        from prefect.client.orchestration import get_client  # noqa: PLC0415
        from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate  # noqa: PLC0415
        from prefect.exceptions import ObjectAlreadyExists  # noqa: PLC0415
        from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415
        from prefect.workers.process import ProcessWorker  # noqa: PLC0415

        with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as c:
            try:
                c.create_work_pool(
                    WorkPoolCreate(
                        name=POOL,
                        type="process",
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                        concurrency_limit=1,
                    )
                )
            except ObjectAlreadyExists:
                c.update_work_pool(POOL, WorkPoolUpdate(concurrency_limit=1))

    def down(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in {STOP_SECONDS:.0f}s: killed", flush=True)
                process.kill()
                process.wait()
        (stack_dir(self.data_dir) / "stack.json").unlink(missing_ok=True)
        self.processes.clear()

    def watch(self) -> str | None:
        """Until a process ends or we are told to stop: the name of a process that ended."""
        while True:
            for name, process in self.processes:
                if process.poll() is not None:
                    return name
            time.sleep(1)


class StackError(RuntimeError):
    pass


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def up(data_dir: Path, prefect_port: int, api_port: int) -> int:
    """Run the stack in the foreground until Ctrl-C, SIGTERM or ``kasparro down``."""
    running = running_stack(data_dir)
    if running is not None:
        print(
            f"up: a stack already serves {data_dir} (pid {running.pid}, UI "
            f"{running.prefect_ui_url}); `kasparro down` stops it",
            file=sys.stderr,
        )
        return 1
    signal.signal(signal.SIGTERM, _stop_on_signal)
    stack = Stack(data_dir, prefect_port, api_port)
    print(f"starting the Kasparro stack over {stack.data_dir}", flush=True)
    try:
        info = stack.up()
        print(
            f"up: Prefect UI {info.prefect_ui_url}, API {info.api_url}, logs {info.logs}\n"
            f"  `kasparro ingest` now runs against this server; `kasparro down` (or Ctrl-C) "
            "stops the stack",
            flush=True,
        )
        ended = stack.watch()
        print(f"up: {ended} ended (see its log); stopping the stack", file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"up: {exc}; stopping what started", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the stack", flush=True)
        return 0
    finally:
        stack.down()


def detach(data_dir: Path, argv: list[str], env: Mapping[str, str]) -> int:
    """Start ``kasparro up`` in the background and return once it is up (``make up``)."""
    logs = stack_dir(data_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "up.log").open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - this environment's own command
            [str(Path(sys.executable).parent / "kasparro"), *argv],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_SECONDS * 2
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(f"up: the stack did not start: see {logs / 'up.log'}", file=sys.stderr)
            return 1
        info = running_stack(data_dir)
        if info is not None and info.pid == process.pid:
            print(
                f"up: Prefect UI {info.prefect_ui_url}, API {info.api_url}, logs {info.logs}; "
                "`make down` stops it"
            )
            return 0
        time.sleep(1)
    print(f"up: not up after {READY_SECONDS * 2:.0f}s: see {logs / 'up.log'}", file=sys.stderr)
    return 1


def down(data_dir: Path) -> int:
    info = running_stack(data_dir)
    if info is None:
        print(f"down: no stack is up over {data_dir.resolve()}")
        return 0
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS * 4
    while _alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _alive(info.pid):
        print(f"down: the stack (pid {info.pid}) is still stopping", file=sys.stderr)
        return 1
    print("down: the stack stopped")
    return 0
