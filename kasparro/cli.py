"""``kasparro``: the command line, the one place that sees both the flows and the web app.

kasparro ingest [--source NAME ...] [--replay DIR]   run the ingest flow once (exit 0 ok,
                                                     1 a source failed, 3 one degraded)
kasparro serve [--host HOST] [--port PORT]           serve the API over the snapshot
kasparro record DIR [--source NAME ...]              capture live responses for replay
kasparro resolution-eval LABELS.csv                  score entity resolution against labels
kasparro resolution export-overrides [--out FILE]    write operators' decisions as overrides
kasparro rebuild [--from-raw [--recover]]            republish / re-derive the warehouse
kasparro up [--detach] / kasparro down               the local stack (Prefect, worker, API)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from store.settings import get_store_settings

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

SOURCES = ("coingecko", "coinpaprika", "coincap", "csv")
EXIT_DEGRADED = 3
"""``kasparro ingest`` exit code when every source loaded but one or more only in part (valid
share below the floor, or a payload drift its policy warns about); 1 when a source failed."""


class _OnceOnTheTerminal(logging.Filter):
    """Keeps Prefect's echoes of a failure off the terminal, where each failure is told once: a
    failed source by the flow's ``<source> failed: ...`` line, a failed run by this command's last
    line. Prefect repeats them in its closing ``Finished in state Failed(...)`` lines (of the task
    and of the flow) and in its report of an exception, with a traceback that a Kasparro error does
    not need: its message says what failed and what to do. Prefect's own run logs keep them all."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flows.errors import IngestError
        from store.errors import StoreError

        if not record.name.startswith("prefect."):
            return True
        if record.getMessage().startswith("Finished in state Failed"):
            return False
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, IngestError | StoreError)


def _ingest(args: argparse.Namespace) -> int:
    from flows.ingest import RunSummary, ingest, retry_advice
    from kasparro.ephemeral_server import EphemeralServerError, prefect_api

    for handler in logging.getLogger().handlers:
        handler.addFilter(_OnceOnTheTerminal())
    replay_dir = str(args.replay) if args.replay else None
    try:
        with prefect_api():
            state = ingest(
                sources=args.source or None,
                replay_dir=replay_dir,
                history=args.history,
                return_state=True,
            )
    except EphemeralServerError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, RunSummary):
        _print_summary(summary)
    if not state.is_failed():
        if isinstance(summary, RunSummary) and summary.degraded:
            names = ", ".join(r.source for r in summary.degraded)
            print(
                f"ingest degraded: run {summary.run_id}: {names} loaded only part of what "
                "was delivered (why: the 'degraded:' line above)",
                file=sys.stderr,
            )
            return EXIT_DEGRADED
        return 0
    if isinstance(summary, RunSummary) and summary.failed:
        # Each source's error was logged once above, as it happened (and is in the run ledger).
        failed = summary.failed
        names = ", ".join(r.source for r in failed)
        others = (
            "; the others were loaded and published" if len(failed) < len(summary.results) else ""
        )
        print(
            f"ingest failed: run {summary.run_id}: {names} failed (why and what to do: the "
            f"'failed:' line above){others}. Once the cause is fixed, "
            f"{retry_advice(failed, replay_dir, args.history)}",
            file=sys.stderr,
        )
    else:
        print(f"ingest failed: {state.message}", file=sys.stderr)
    return 1


def _print_summary(summary: object) -> None:
    from flows.ingest import RunSummary, rounded_note

    assert isinstance(summary, RunSummary)
    header = f"{'source':<12} {'status':<8} {'fetched':>8} {'valid':>8} {'quarant.':>8} " \
             f"{'inserted':>8} {'updated':>8} {'unchanged':>9}"  # fmt: skip
    print(f"run {summary.run_id}: {summary.status}")
    print(header)
    for r in summary.results:
        print(
            f"{r.source:<12} {r.status:<8} {r.fetched:>8} {r.valid:>8} {r.quarantined:>8} "
            f"{r.inserted:>8} {r.updated:>8} {r.unchanged:>9}"
        )
    for r in summary.results:
        if r.rounded:
            print(f"{r.source}: {rounded_note(r.rounded)}")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from store.settings import get_store_settings
    from web.app import create_app
    from web.settings import get_web_settings

    settings = get_web_settings()
    host, port = args.host or settings.host, args.port or settings.port
    snapshot = get_store_settings().serving_path
    print(f"Kasparro API on http://{host}:{port}  (snapshot: {snapshot})")
    print(f"  dashboard   http://{host}:{port}/")
    print(f"  health      http://{host}:{port}/health")
    print(f"  quotes      http://{host}:{port}/api/v1/data?limit=10")
    print(f"  coins       http://{host}:{port}/api/v1/coins")
    print(f"  runs        http://{host}:{port}/api/v1/runs")
    print(f"  API docs    http://{host}:{port}/schema/swagger")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


def _record(args: argparse.Namespace) -> int:
    from flows.errors import IngestError
    from flows.record import record

    try:
        counts = record(Path(args.dir), args.source or list(SOURCES))
    except IngestError as exc:
        print(f"record failed: {exc}", file=sys.stderr)
        return 1
    for source, files in counts.items():
        print(f"{source}: {files} file(s) recorded under {Path(args.dir) / source}")
    return 0


def _export_overrides(args: argparse.Namespace) -> int:
    """Merge every link an operator's decision set into the overrides file, so the decisions
    survive a fresh warehouse (an existing row for the same asset is replaced)."""
    import csv

    from flows.resolution import OverridesError, read_overrides
    from flows.settings import get_ingest_settings
    from store.connection import open_read_only
    from store.errors import StoreError
    from store.resolution import operator_links

    out: Path = args.out or get_ingest_settings().overrides_file
    serving = get_store_settings().serving_path
    try:
        rows = {key: (o.coin_id, o.note) for key, o in read_overrides(out).items()}
        con = open_read_only(serving)
    except (OverridesError, StoreError) as exc:
        print(f"export-overrides: {exc}", file=sys.stderr)
        return 2
    try:
        links = operator_links(con)
    finally:
        con.close()
    replaced = sum((source, asset) in rows for source, asset, _, _ in links)
    for source, asset, coin_id, note in links:
        rows[(source, asset)] = (coin_id, note)
    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["source", "source_asset_id", "coin_id", "note"])
        writer.writerows([*key, *value] for key, value in rows.items())
    try:
        read_overrides(tmp)  # never leave a file the next ingest cannot read
    except OverridesError as exc:
        tmp.unlink()
        print(f"export-overrides: {out} left unchanged: {exc}", file=sys.stderr)
        return 1
    tmp.replace(out)
    print(
        f"wrote {len(rows)} overrides to {out}: {len(links)} from operators' decisions in "
        f"{serving} ({len(links) - replaced} new, {replaced} replacing a row)"
    )
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    """With a Prefect server (PREFECT_API_URL, or the stack's), a rebuild takes the warehouse
    writer's slot like an ingest, and waits for a running one; without, DuckDB's lock refuses
    a second writer. No temporary server is started for it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kasparro.stack import running_stack

    api = PREFECT_API_URL.value() or getattr(running_stack(), "prefect_api_url", None)
    if not api:
        return _rebuild_holding(args)
    from flows.writer import one_writer

    data_dir = get_store_settings().data_dir
    with temporary_settings({PREFECT_API_URL: api}), one_writer("rebuild", data_dir):
        return _rebuild_holding(args)


def _rebuild_holding(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from flows.rebuild import Chunk, RebuildError, Replay, rebuild_from_raw
    from flows.resolution import read_crosswalk, read_overrides
    from flows.settings import get_ingest_settings
    from flows.sources import SOURCE_NAMES
    from store.quote_layout_build import build_after_publish
    from store.runs import SourceResult
    from store.snapshot import publish_snapshot

    store = get_store_settings()
    if not args.from_raw:
        if args.recover:
            print("rebuild: --recover needs --from-raw", file=sys.stderr)
            return 2
        published = publish_snapshot(store.warehouse_path, store.serving_path, sources=SOURCE_NAMES)
        print(f"republished {published.path} ({published.bytes} bytes) in {published.seconds:.2f}s")
        with Progress(transient=True) as progress:  # the build logs what it did
            build_after_publish(published.path, _layout_bar(progress), base=True)
        return 0
    settings = get_ingest_settings()
    overrides = read_overrides(settings.overrides_file)
    crosswalk = read_crosswalk(settings.crosswalk_file) if settings.crosswalk_file else {}
    with Progress() as progress:
        bar: list[TaskID] = []

        def planned(replay: Replay, plan: list[Chunk]) -> None:
            if replay.recovered:
                progress.console.print(
                    f"recovering {len(replay.recovered)} (run, source) load(s) no run committed: "
                    + ", ".join(f"{b.run_id} {b.source}" for b in replay.recovered)
                )
            total = sum(c.rows for c in plan)
            bar.append(progress.add_task("rebuilding from the raw zone", total=total))

        def advance(chunk: Chunk, result: SourceResult) -> None:
            progress.update(
                bar[0],
                advance=chunk.rows,
                description=f"{chunk.source}, {len(chunk.run_ids)} run(s): "
                f"{result.inserted} inserted",
            )

        try:
            rebuilt = rebuild_from_raw(
                store.data_dir,
                overrides,
                crosswalk=crosswalk,
                recover=args.recover,
                on_plan=planned,
                on_chunk=advance,
                on_layout=_layout_bar(progress),
            )
        except RebuildError as exc:
            print(f"rebuild: {exc}", file=sys.stderr)
            return 1
    replay = rebuilt.replay
    print(
        f"rebuilt {store.warehouse_path} from {sum(c.rows for c in rebuilt.chunks)} raw rows of "
        f"{len(replay.batches)} (run, source) loads the run ledger lists"
        + (f", {len(replay.recovered)} of them recovered" if replay.recovered else "")
        + f" (previous warehouse kept as {store.warehouse_path.name}.bak); "
        f"published {rebuilt.published.path}"
    )
    if replay.left_out:
        files = sum(len(b.files) for b in replay.left_out)
        print(
            f"left out {files} raw file(s) of {len(replay.left_out)} (run, source) pair(s) that no "
            "committed load read (failed sources, runs that died, repeated deliveries, files that "
            "could not be loaded); they stay in the raw zone. `--recover` also loads the pages of "
            "sources no run committed"
        )
    return 0


def _layout_bar(progress: Progress) -> Callable[[int, int], None]:
    """A bar for the quote layout built after a publish, added when it starts."""
    bar: list[TaskID] = []

    def advance(done: int, total: int) -> None:
        if not bar:
            bar.append(progress.add_task("building the quote layout", total=total))
        progress.update(bar[0], completed=done)

    return advance


def _resolution_eval(args: argparse.Namespace) -> int:
    from flows.resolution.evaluation import (
        LabelsError,
        evaluate,
        format_report,
        read_labels,
        read_links,
    )
    from store.connection import open_read_only
    from store.errors import StoreError
    from store.settings import StoreSettings

    store = StoreSettings(data_dir=args.data_dir) if args.data_dir else get_store_settings()
    try:
        labels = read_labels(args.labels)
        con = open_read_only(store.serving_path)
    except LabelsError as exc:
        print(f"resolution-eval: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(
            f"resolution-eval: {exc} (offline: `kasparro ingest --replay data/demo`), or point "
            "--data-dir at the data directory that holds serving.duckdb",
            file=sys.stderr,
        )
        return 2
    try:
        report = evaluate(labels, read_links(con))
    finally:
        con.close()
    print(format_report(report, labels=args.labels, snapshot=store.serving_path))
    missed = [
        f"{name} {value:.4f} is below --min-{name} {floor}"
        for name, value, floor in (
            ("precision", report.counts.precision, args.min_precision),
            ("recall", report.counts.recall, args.min_recall),
        )
        if floor is not None and value < floor
    ]
    for message in missed:
        print(f"resolution-eval: {message}", file=sys.stderr)
    return 1 if missed else 0


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kasparro", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="run the ingest flow once")
    ingest.add_argument(
        "--source", action="append", choices=SOURCES, help="only this source (repeatable)"
    )
    ingest.add_argument(
        "--replay", type=Path, metavar="DIR", help="replay recorded responses from DIR"
    )
    ingest.add_argument(
        "--history",
        action="store_true",
        help="backfill daily history of KASPARRO_HISTORY_COINS (CoinGecko, CoinPaprika, CSV)",
    )
    ingest.set_defaults(run=_ingest)

    serve = commands.add_parser("serve", help="serve the HTTP API over the serving snapshot")
    serve.add_argument("--host", help="interface to bind (default KASPARRO_API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default KASPARRO_API_PORT or 8000)")
    serve.set_defaults(run=_serve)

    resolution = commands.add_parser("resolution", help="operators' resolution decisions")
    resolution_commands = resolution.add_subparsers(dest="resolution_command", required=True)
    export = resolution_commands.add_parser(
        "export-overrides",
        help="merge every link an operator's decision set into the overrides file",
    )
    export.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="overrides file to update (default KASPARRO_OVERRIDES_FILE, data/asset_overrides.csv)",
    )
    export.set_defaults(run=_export_overrides)

    rebuild = commands.add_parser(
        "rebuild", help="republish the snapshot, or re-derive the warehouse from the raw zone"
    )
    rebuild.add_argument(
        "--from-raw",
        action="store_true",
        help="replay the raw files of every load the run ledger says committed, with today's "
        "rules (e.g. after a resolution change)",
    )
    rebuild.add_argument(
        "--recover",
        action="store_true",
        help="with --from-raw: also load the raw files no run committed (failed sources, runs "
        "that died, a raw zone without its warehouse), recorded as recovered in the ledger",
    )
    rebuild.set_defaults(run=_rebuild)

    record = commands.add_parser("record", help="capture live responses into the replay layout")
    record.add_argument("dir", help="replay directory to write")
    record.add_argument(
        "--source", action="append", choices=SOURCES, help="only this source (repeatable)"
    )
    record.set_defaults(run=_record)

    evaluation = commands.add_parser(
        "resolution-eval",
        help="precision, recall and F1 of cross-source links against a labelled CSV",
    )
    evaluation.add_argument(
        "labels", type=Path, metavar="LABELS.csv", help="source_a,id_a,source_b,id_b,same[,...]"
    )
    evaluation.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="read DIR/serving.duckdb (default: settings)"
    )
    evaluation.add_argument(
        "--min-precision", type=_fraction, metavar="P", help="exit 1 when precision is below P"
    )
    evaluation.add_argument(
        "--min-recall", type=_fraction, metavar="R", help="exit 1 when recall is below R"
    )
    evaluation.set_defaults(run=_resolution_eval)

    up = commands.add_parser(
        "up", help="start the local stack: Prefect server, work pool, deployments, worker, API"
    )
    up.add_argument("--prefect-port", type=int, default=4200, help="Prefect server (4200)")
    up.add_argument("--port", type=int, default=8000, help="the API (8000)")
    up.add_argument(
        "--detach", action="store_true", help="run in the background; return once it is up"
    )
    up.set_defaults(run=_up)
    down = commands.add_parser("down", help="stop the local stack")
    down.set_defaults(run=_down)
    return parser


def _up(args: argparse.Namespace) -> int:
    from kasparro import stack

    data_dir = get_store_settings().data_dir
    if args.detach:
        argv = ["up", "--prefect-port", str(args.prefect_port), "--port", str(args.port)]
        return stack.detach(data_dir, argv, os.environ)
    return stack.up(data_dir, args.prefect_port, args.port)


def _down(args: argparse.Namespace) -> int:
    from kasparro import stack

    return stack.down(get_store_settings().data_dir)


def _prefect_defaults() -> None:
    """Prefect reads its settings when first imported: set our defaults before any command
    imports it (an operator's own environment still wins)."""
    from kasparro.ephemeral_server import STARTUP_SECONDS

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(STARTUP_SECONDS))
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "flows,store")
    # Outside a flow run (a rebuild), our log lines go to the terminal only, quietly.
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # Task results (what a retried flow run reuses) live beside the warehouse they describe.
    os.environ.setdefault(
        "PREFECT_LOCAL_STORAGE_PATH",
        str(get_store_settings().data_dir.resolve() / "prefect-results"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    _prefect_defaults()
    from kasparro import logs

    logs.configure()
    # One line per HTTP request to Prefect's own API is noise; source requests log their retries.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
