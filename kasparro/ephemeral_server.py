"""A temporary Prefect server that dies with the ``kasparro`` process that started it.

With no ``PREFECT_API_URL``, Prefect 3 starts a server for the process (``SubprocessASGIServer``:
uvicorn in a child process, ~230 MB) and stops it from an ``atexit`` hook, which a SIGKILL (a
crash, the OOM killer, a ``KASPARRO_FAULT`` drill) never runs: the server was left behind, one
more per killed run. On Linux, the server started here asks the kernel to SIGTERM it as soon as
its parent dies (``prctl(PR_SET_PDEATHSIG)``). Elsewhere Prefect starts its own, as before.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import prefect
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    get_current_settings,
    temporary_settings,
)

from kasparro.stack import running_stack

if TYPE_CHECKING:
    from prefect.server.api.server import SubprocessASGIServer

_PR_SET_PDEATHSIG = 1
"""<linux/prctl.h>"""


def _die_with(parent: int, prctl: Any) -> None:
    """Run in the server's process between fork and exec (``prctl`` looked up before the fork):
    the kernel sends it SIGTERM when the thread that started it ends, here the main thread, so
    when the process ends."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _server_dying_with_parent() -> SubprocessASGIServer:
    """Prefect's server module is imported only when a server is started: importing it costs
    seconds, which a run against a configured API should not pay."""
    from prefect.server.api.server import SubprocessASGIServer  # noqa: PLC0415 - costs seconds

    class _ServerDyingWithParent(SubprocessASGIServer):
        """Prefect's temporary server, started with the same command (that of Prefect 3.8's
        ``SubprocessASGIServer._run_uvicorn_command``) and a parent-death signal."""

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            parent, prctl = os.getpid(), ctypes.CDLL(None, use_errno=True).prctl
            return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                args=[
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--app-dir",
                    str(prefect.__module_path__.parent),
                    "--factory",
                    "prefect.server.api.server:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "error",
                    "--lifespan",
                    "on",
                ],
                env={
                    **os.environ,
                    "PREFECT_UI_ENABLED": "0",
                    "PREFECT__SERVER_EPHEMERAL": "1",
                    "PREFECT__SERVER_FINAL": "1",
                    **get_current_settings().to_environment_variables(exclude_unset=True),
                },
                # Safe here: it is started from the main thread before the flow starts any other.
                preexec_fn=lambda: _die_with(parent, prctl),  # noqa: PLW1509
            )

    return _ServerDyingWithParent()


STARTUP_SECONDS = 120
"""The temporary server's startup timeout, unless PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
says otherwise: Prefect's 20 s default is not enough on a busy 2-core machine, where the
server's imports and database setup alone took 25-40 s (measured); 2 of 3 runs failed there."""


class EphemeralServerError(RuntimeError):
    """The temporary Prefect server did not start: one line that says what to do."""


@contextmanager
def prefect_api() -> Iterator[None]:
    """Within: a Prefect API: the configured one, else the server of ``kasparro up``'s stack over
    this data directory, else a temporary server that dies with us."""
    if PREFECT_API_URL.value():
        yield
        return
    stack = running_stack()
    if stack is not None:
        with temporary_settings(updates={PREFECT_API_URL: stack.prefect_api_url}):
            yield
        return
    if not sys.platform.startswith("linux"):
        yield
        return
    server = _server_dying_with_parent()
    # Read here: Prefect's own settings object may predate the environment `kasparro` set.
    timeout = int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "0")) or (
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    )
    try:
        # Stopped at exit, after Prefect's workers have sent their last logs.
        server.start(timeout=timeout)
    except (RuntimeError, OSError) as exc:
        server.stop()
        reason = str(exc).split(". ")[0].rstrip(".")
        raise EphemeralServerError(
            f"no Prefect API: the temporary Prefect server did not start ({reason}; waited "
            f"{timeout}s). Start the local stack once with `make up` (commands then use its "
            "server), or point PREFECT_API_URL at a Prefect server, or raise "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
        ) from None
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield
