"""Runs ``kasparro ingest`` many times without paying Python's imports each time.

Importing the flows (Prefect, polars, DuckDB) takes ~3 s, the demo ingest itself ~1.5 s. This
process imports them once, single-threaded, then forks one child per request read from stdin (a
JSON object: ``data_dir``, ``argv``); each child becomes its own process group, runs
``kasparro.cli.main(argv)`` with that data dir, and logs to ``<data_dir>.log``. For each request
it writes two lines to stdout: the child's pid as soon as it runs (so a test can kill its group),
then ``{"pid": ..., "returncode": ...}`` once it is gone (-9 when SIGKILLed).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import prefect.context

import flows.ingest  # noqa: F401 - the import the children share
from flows.settings import get_ingest_settings
from kasparro import cli
from store.settings import get_store_settings


def _child(data_dir: str, argv: list[str]) -> None:
    code = 1
    try:
        os.setsid()
        log = os.open(f"{data_dir}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ["KASPARRO_DATA_DIR"] = data_dir
        os.environ["PREFECT_LOCAL_STORAGE_PATH"] = os.path.join(data_dir, "prefect-results")
        get_store_settings.cache_clear()
        get_ingest_settings.cache_clear()
        prefect.context.refresh_global_settings_context()
        code = cli.main(argv)
    except BaseException:  # the child must never return into the parent's loop
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request["data_dir"], request["argv"])
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
