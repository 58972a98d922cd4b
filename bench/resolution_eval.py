"""``make resolution-eval``: entity resolution measured where sources were not captured together.

    python -m bench.resolution_eval [--only real|demo] [--show 12] [--seed 20261204]

``real``: the whole real captures of ``../shared/realdata`` (``KASPARRO_SHARED_DIR`` when it is
elsewhere; see :mod:`bench.realcaptures`), fed to :func:`flows.resolution.resolve` one capture
per run in chronological order (2019 to 2025), each run seeing what the earlier ones left: the
stored mappings, the coin ids, and a market lookup answered from the earlier captures'
observations within the resolver's window, as :func:`flows.load.nearest_quotes` answers it from
the warehouse. No overrides, no crosswalk, no contracts. Scored against
``data/resolution_labels_real.csv``.

``demo``: the bundled recording ``data/demo``, unshifted and then with each source's capture moved
apart (:data:`DEMO_SHIFTS`, :mod:`bench.timeshift`), ingested by ``kasparro ingest --replay`` in a
subprocess with an empty overrides file (the header only) and no crosswalk, and scored against
``data/resolution_labels.csv`` from the published snapshot.

Prints precision, recall and F1 overall and per category, the assets sent to review, the coins
founded, and the first wrong merges and missed links. It asserts nothing and exits 0; 2 when the
real captures are not found.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl

from bench.realcaptures import Capture, read_captures, shared_dir
from bench.timeshift import shift_recording
from flows.resolution import (
    MARKET_FOUND,
    MARKET_WINDOW_DAYS,
    Evidence,
    Resolution,
    resolve,
)
from flows.resolution.evaluation import (
    AssetLink,
    Counts,
    LabelledPair,
    Report,
    evaluate,
    read_labels,
    read_links,
)
from store.connection import open_read_only
from store.resolution import PENDING_REVIEW
from store.settings import StoreSettings

REAL_LABELS = Path("data/resolution_labels_real.csv")
DEMO_LABELS = Path("data/resolution_labels.csv")
DEMO = Path("data/demo")
OVERRIDES = Path("data/asset_overrides.csv")
DEMO_SHIFTS = {"coingecko": 0, "coinpaprika": -3, "coincap": -400, "csv": 0}
"""Days each source's demo capture moves (into the past: nothing may look observed in the
future). The CSV history is left as it is."""
SEED = 20261204
_LINK = ["source", "source_asset_id"]
_STORED = ["source", "source_asset_id", "coin_id", "symbol", "name", "match_key"]


@dataclass(frozen=True)
class Outcome:
    """What one evaluation found, beside its report."""

    report: Report
    review_assets: int
    review_rows: int
    coins: int
    seconds: float
    quarantined: int | None = None
    """Records the ingest quarantined (the demo only)."""
    observed: str = ""
    """Per source, the days its loaded quotes were observed on (the demo only: shows the shift)."""


# --- real captures, in memory ---------------------------------------------------------------------


class MemoryWarehouse:
    """What a warehouse keeps between runs that resolution reads: mappings, coins, and every
    priced observation (to answer market lookups)."""

    def __init__(self) -> None:
        self.mappings = pl.DataFrame(schema={c: pl.String() for c in _STORED}).with_columns(
            method=pl.lit(None, pl.String()), confidence=pl.lit(None, pl.Float64())
        )
        self.coin_ids: set[str] = set()
        self.observations = pl.DataFrame(
            schema={
                "source": pl.String(),
                "source_asset_id": pl.String(),
                "observed_at": MARKET_FOUND["observed_at"],
                "price_usd": pl.Float64(),
                "market_cap_usd": pl.Float64(),
                "rank": pl.Int32(),
            }
        )
        self.review: list[pl.DataFrame] = []
        self.pending = PENDING_REVIEW.to_frame()
        """Review rows still pending: the loader hands those of a batch's assets back."""
        self.aliases: dict[str, str] = {}
        self.founded = 0
        self.relinked = 0

    def evidence(self) -> Evidence:
        return Evidence(
            stored_mappings=self.mappings.select(*_STORED, "method"),
            stored_coin_ids=frozenset(self.coin_ids),
            overrides={},
            crosswalk={},
            aliases=self.aliases,
            market=self.nearest,
            pending_review=self.pending,
        )

    def nearest(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """:data:`flows.resolution.MarketLookup` over the stored observations: for each pair, the
        candidate coin's observation from another source nearest ``asked_at`` within the window;
        of equally near ones, the first source alphabetically."""
        quotes = self.observations.join(
            self.mappings.select(*_LINK, "coin_id"), on=_LINK, how="inner"
        ).rename({"source": "quote_source", "source_asset_id": "quote_asset"})
        window = timedelta(days=MARKET_WINDOW_DAYS)
        found = (
            pairs.with_row_index("pair_id")
            .join(quotes, on="coin_id", how="inner")
            .with_columns(distance=(pl.col("observed_at") - pl.col("asked_at")).abs())
            .filter((pl.col("quote_source") != pl.col("source")) & (pl.col("distance") <= window))
            .sort("pair_id", "distance", "quote_source")
            .unique("pair_id", keep="first", maintain_order=True)
        )
        return found.select(MARKET_FOUND.names()).cast(MARKET_FOUND)

    def load(self, capture: Capture, resolution: Resolution) -> None:
        decided = resolution.mappings.select(*_STORED, "method", "confidence")
        # A sticky asset keeps how it was first decided; its name follows the source.
        before = self.mappings.select(*_LINK, "method", "confidence")
        decided = (
            decided.join(before, on=_LINK, how="left", suffix="_before")
            .with_columns(
                method=pl.when(pl.col("method") == "sticky")
                .then(pl.col("method_before"))
                .otherwise(pl.col("method")),
                confidence=pl.when(pl.col("method") == "sticky")
                .then(pl.col("confidence_before"))
                .otherwise(pl.col("confidence")),
            )
            .select(self.mappings.columns)
        )
        self.mappings = pl.concat(
            [self.mappings.join(decided, on=_LINK, how="anti"), decided], how="vertical"
        )
        self.coin_ids |= set(resolution.new_coins["coin_id"].to_list())
        self.founded += resolution.new_coins.height
        self.review.append(resolution.review)
        # What the loader's resolver merges do: the coin moves whole, its id an alias; the
        # asset's review rows are settled. Reopened rows queue again.
        for relink in resolution.relinks:
            self.relinked += 1
            self.aliases[relink.other_coin_id] = relink.coin_id
            self.coin_ids.discard(relink.other_coin_id)
            self.mappings = self.mappings.with_columns(
                coin_id=pl.when(pl.col("coin_id") == relink.other_coin_id)
                .then(pl.lit(relink.coin_id))
                .otherwise(pl.col("coin_id"))
            )
            self.pending = self.pending.filter(
                (pl.col("source") != relink.source)
                | (pl.col("source_asset_id") != relink.source_asset_id)
            )
        queued = pl.concat([resolution.review, resolution.reopened]).select(PENDING_REVIEW.names())
        self.pending = pl.concat([self.pending, queued]).unique(maintain_order=True)
        priced = capture.frame.filter(pl.col("price_usd").is_not_null()).select(
            self.observations.columns
        )
        self.observations = pl.concat([self.observations, priced.cast(self.observations.schema)])

    def links(self) -> list[AssetLink]:
        columns = [*_LINK, "coin_id", "method", "confidence"]
        return [AssetLink(*row) for row in self.mappings.select(columns).iter_rows()]

    def review_counts(self) -> tuple[int, int]:
        """(distinct assets, rows) waiting in review after the last run."""
        rows = self.pending
        return rows.select(_LINK).unique().height, rows.height


def evaluate_real(labels: Sequence[LabelledPair], realdata: Path) -> tuple[Outcome, list[str]]:
    """Resolve the real captures run by run; the outcome, and one line per run."""
    clock = time.perf_counter()
    warehouse = MemoryWarehouse()
    lines = []
    for capture in read_captures(realdata):
        started = time.perf_counter()
        resolution = resolve(
            capture.frame, warehouse.evidence(), run_id=capture.run_id, now=capture.observed_at
        )
        warehouse.load(capture, resolution)
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(resolution.decisions().items()))
        lines.append(
            f"  {capture.observed_at:%Y-%m-%d} {capture.file.path:<44} {capture.frame.height:>6} "
            f"assets: {decisions}; review {resolution.review.height}; "
            f"relinked {len(resolution.relinks)}; reopened {resolution.reopened.height}; "
            f"{time.perf_counter() - started:.1f} s"
        )
    assets, rows = warehouse.review_counts()
    report = evaluate(labels, warehouse.links())
    coins = warehouse.mappings["coin_id"].n_unique()
    return Outcome(report, assets, rows, coins, time.perf_counter() - clock), lines


# --- the demo, shifted and ingested -------------------------------------------------------------


def evaluate_demo(
    labels: Sequence[LabelledPair], recording: Path, workdir: Path, name: str
) -> Outcome:
    """Ingest ``recording`` into a fresh data directory with empty overrides; score it."""
    clock = time.perf_counter()
    data_dir = workdir / f"data-{name}"
    overrides = workdir / "overrides-header-only.csv"
    with OVERRIDES.open(encoding="utf-8") as handle:
        overrides.write_text(handle.readline(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "KASPARRO_CROSSWALK_FILE"}
    env |= {
        "KASPARRO_DATA_DIR": str(data_dir),
        "KASPARRO_OVERRIDES_FILE": str(overrides),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "kasparro", "ingest", "--replay", str(recording)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"kasparro ingest --replay {recording} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    con = open_read_only(StoreSettings(data_dir=data_dir).serving_path)
    try:
        report = evaluate(labels, read_links(con))
        assets, rows = con.execute(
            "select count(distinct (source, source_asset_id)), count(*) from resolution_review"
        ).fetchone() or (0, 0)
        (coins,) = con.execute("select count(*) from coins").fetchone() or (0,)
        (quarantined,) = con.execute("select count(*) from quarantine").fetchone() or (0,)
        days = con.execute(
            """
            select source, min(observed_at)::date, max(observed_at)::date
            from quotes
            group by source
            order by source
            """
        ).fetchall()
    finally:
        con.close()
    observed = ", ".join(
        f"{source} {first}" + ("" if first == last else f"..{last}") for source, first, last in days
    )
    return Outcome(report, assets, rows, coins, time.perf_counter() - clock, quarantined, observed)


# --- printing ------------------------------------------------------------------------------------


def _row(label: str, c: Counts) -> str:
    return (
        f"| {label} | {c.pairs} | {c.tp} | {c.fp} | {c.fn} | {c.tn} | {c.precision:.4f} "
        f"| {c.recall:.4f} | {c.f1:.4f} |"
    )


def format_outcome(title: str, outcome: Outcome, show: int) -> list[str]:
    report = outcome.report
    lines = [
        f"### {title}\n",
        f"review: {outcome.review_assets} assets ({outcome.review_rows} rows); "
        f"coins: {outcome.coins}; mapped assets: {report.mapped_assets}; "
        + ("" if outcome.quarantined is None else f"quarantined records: {outcome.quarantined}; ")
        + f"{outcome.seconds:.1f} s\n",
        *([f"observed (UTC days): {outcome.observed}\n"] if outcome.observed else []),
        "| pairs | n | tp | fp | fn | tn | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        _row("**all**", report.counts),
        *(_row(name, counts) for name, counts in report.by_category.items()),
        "",
    ]
    for kind, outcome_code in (("wrong merges", "fp"), ("missed links", "fn")):
        errors = [r for r in report.results if r.outcome == outcome_code]
        lines.append(f"{kind}: {len(errors)}" + (f" (first {show})" if len(errors) > show else ""))
        for result in errors[:show]:
            pair = result.pair
            coins = [link.coin_id if link else "-" for link in (result.link_a, result.link_b)]
            lines.append(
                f"  [{pair.category}] {pair.a} -> {coins[0]} | {pair.b} -> {coins[1]}"
                + (f"  ({pair.note})" if pair.note else "")
            )
    if report.missing:
        lines.append(
            f"labelled assets not mapped: {len(report.missing)} "
            f"(e.g. {', '.join(str(m.asset) for m in report.missing[:5])})"
        )
    lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", choices=("real", "demo"), help="run one of the two evaluations")
    parser.add_argument("--show", type=int, default=12, help="errors listed per kind (12)")
    parser.add_argument("--seed", type=int, default=SEED, help="price drift of the shifted demo")
    args = parser.parse_args(argv)
    out: list[str] = []
    if args.only in (None, "real"):
        realdata = shared_dir() / "realdata"
        try:
            outcome, runs = evaluate_real(read_labels(REAL_LABELS), realdata)
        except FileNotFoundError as exc:
            print(f"resolution-eval: {exc}", file=sys.stderr)
            return 2
        out += [f"real captures ({realdata}), one run each, no overrides, no crosswalk:", *runs, ""]
        out += format_outcome(f"Real captures against {REAL_LABELS}", outcome, args.show)
        print("\n".join(out), flush=True)
        out = []
    if args.only in (None, "demo"):
        labels = read_labels(DEMO_LABELS)
        with tempfile.TemporaryDirectory(prefix="kasparro-resolution-eval-") as tmp:
            workdir = Path(tmp)
            unshifted = evaluate_demo(labels, DEMO, workdir, "unshifted")
            out += format_outcome(
                f"Demo, unshifted, empty overrides, against {DEMO_LABELS}", unshifted, args.show
            )
            shifted_dir = workdir / "demo-shifted"
            shift_recording(DEMO, shifted_dir, DEMO_SHIFTS, seed=args.seed)
            shifted = evaluate_demo(labels, shifted_dir, workdir, "shifted")
            moves = ", ".join(f"{source} {days:+d} d" for source, days in DEMO_SHIFTS.items())
            out += format_outcome(
                f"Demo, time-shifted ({moves}; price drift sigma 0.04*sqrt(days), seed "
                f"{args.seed}), empty overrides",
                shifted,
                args.show,
            )
        print("\n".join(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
