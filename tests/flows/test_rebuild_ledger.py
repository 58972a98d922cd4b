"""`kasparro rebuild --from-raw` replays what the run ledger says was loaded, and nothing else:
with unchanged rules the rebuilt warehouse equals the one ingest built, every table and every
lineage column, whatever the runs went through."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.rebuild import RebuildError, rebuild_from_raw
from flows.resolution import read_overrides
from kasparro.cli import main
from store.connection import open_read_only, warehouse
from store.resolution import new_decision, write_inbox
from store.settings import get_store_settings
from tests.conftest import DEMO_DIR, REPO
from tests.helpers import ingest_without_prefect, snapshot_checksums

OVERRIDES = read_overrides(REPO / "data" / "asset_overrides.csv")
FIRST, SECOND = "20261124T120000Z-aaaaaa", "20261124T130000Z-bbbbbb"


def ingest(data_dir: Path, run_id: str, replay: Path = DEMO_DIR, **options: Any) -> None:
    ingest_without_prefect(replay, data_dir, run_id=run_id, overrides=OVERRIDES, **options)


def failed_source(data_dir: Path) -> None:
    """CoinCap's load fails (rolled back) after its pages are in the raw zone."""
    ingest(data_dir, FIRST, fault="before_commit:coincap")


def abandoned_run(data_dir: Path) -> None:
    """The first run dies after CoinGecko committed, every extract in the raw zone; the next
    run (CSV only) marks it abandoned."""
    ingest(data_dir, FIRST, dies_before="coinpaprika")
    ingest(data_dir, SECOND, sources=("csv",))


def repeated_delivery(data_dir: Path) -> None:
    """The same demo twice: the second run's API sources repeat the first's loads."""
    ingest(data_dir, FIRST)
    ingest(data_dir, SECOND)


def operator_decision(data_dir: Path) -> None:
    """An operator rejects CoinCap's bitcoin from btc-bitcoin; the next run applies it."""
    ingest(data_dir, FIRST)
    decision = new_decision(
        "reject",
        source="coincap",
        source_asset_id="bitcoin",
        coin_id="btc-bitcoin",
        decided_by="ops@example.com",
    )
    write_inbox(data_dir / "decisions" / "inbox", decision)
    ingest(data_dir, SECOND)


def history_backfill(data_dir: Path) -> None:
    """The listings, then a daily-history backfill of bitcoin and ethereum."""
    ingest(data_dir, FIRST)
    ingest(data_dir, SECOND, history=True, sources=("coingecko", "coinpaprika", "csv"))


def failed_but_committed(data_dir: Path) -> None:
    """A CSV file with an unknown header beside the demo's: the other files load and commit,
    and the source is reported failed."""
    replay = data_dir.parent / "replay"
    shutil.copytree(DEMO_DIR, replay)
    (replay / "csv" / "unknown.csv").write_text("when,what\n2026-11-20,1\n")
    ingest(data_dir, FIRST, replay)


SCENARIOS: dict[str, Callable[[Path], None]] = {
    "failed but committed": failed_but_committed,
    "failed source": failed_source,
    "abandoned run": abandoned_run,
    "repeated delivery": repeated_delivery,
    "operator decision": operator_decision,
    "history backfill": history_backfill,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each scenario ingested once for the module; tests rebuild copies."""
    dirs = {}
    for name, scenario in SCENARIOS.items():
        data_dir = tmp_path_factory.mktemp(name.replace(" ", "-")) / "data"
        scenario(data_dir)
        dirs[name] = data_dir
    return dirs


def copy_of(built: dict[str, Path], name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built[name], tmp_path / "data"))


def query(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


QUOTES_BY_RUN = "select run_id, count(*) from quotes group by run_id order by run_id"


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_rebuild_equals_the_warehouse_ingest_built(
    built: dict[str, Path], tmp_path: Path, name: str
) -> None:
    data_dir = copy_of(built, name, tmp_path)
    before = snapshot_checksums(data_dir, lineage=True)
    quotes = query(data_dir, QUOTES_BY_RUN)
    rebuild_from_raw(data_dir, OVERRIDES, rows_per_chunk=1_000_000)
    assert query(data_dir, QUOTES_BY_RUN) == quotes
    after = snapshot_checksums(data_dir, lineage=True)
    assert {t for t in before if after[t] != before[t]} == set()


def test_the_failed_sources_pages_stay_in_the_raw_zone_and_out_of_the_rebuild(
    built: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = copy_of(built, "failed source", tmp_path)
    assert list((data_dir / "raw").glob("source=coincap/*/*/*.parquet")), "its pages were kept"
    assert query(
        data_dir,
        "select status, inserted, updated, unchanged, "
        "(select count(*) from run_seen where source = 'coincap'), "
        "(select count(*) from run_files where source = 'coincap') "
        "from run_sources where source = 'coincap'",
    ) == [("failed", 0, 0, 0, 0, 0)], "the ledger claims nothing of a load that rolled back"
    rebuild_from_raw(data_dir, OVERRIDES)
    assert query(data_dir, "select count(*) from quotes where source = 'coincap'") == [(0,)]


def test_a_source_reported_failed_is_replayed_as_far_as_it_committed(
    built: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = copy_of(built, "failed but committed", tmp_path)
    assert query(data_dir, "select status from run_sources where source = 'csv'") == [("failed",)]
    rebuilt = rebuild_from_raw(data_dir, OVERRIDES)
    (csv,) = [b for b in rebuilt.replay.batches if b.source == "csv"]
    assert len(csv.files) == 2, "the demo's two files"
    assert [(b.source, len(b.files)) for b in rebuilt.replay.left_out] == [("csv", 1)]
    assert query(data_dir, "select count(*) > 0 from quotes where source = 'csv'") == [(True,)]


def test_the_repeated_delivery_keeps_its_lineage_at_the_first_load(
    built: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = copy_of(built, "repeated delivery", tmp_path)
    repeated = query(
        data_dir, f"select source from run_sources where repeat_of = '{FIRST}' order by source"
    )
    assert repeated == [("coincap",), ("coingecko",), ("coinpaprika",)]
    rebuild_from_raw(data_dir, OVERRIDES)
    assert query(data_dir, f"select count(*) from quotes where run_id = '{SECOND}'") == [(0,)]
    elsewhere = f"select count(*) from quotes where not contains(raw_file, '/run={FIRST}/')"
    assert query(data_dir, elsewhere) == [(0,)], "every quote points at the first run's files"


def test_decisions_are_applied_again_by_the_run_that_applied_them(
    built: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = copy_of(built, "operator decision", tmp_path)
    taken = "select outcome, applied_by_run, applied_at from resolution_decisions"
    (before,) = query(data_dir, taken)
    assert before[:2] == ("applied", SECOND)
    rebuild_from_raw(data_dir, OVERRIDES)
    assert query(data_dir, taken) == [before]
    assert query(
        data_dir,
        "select coin_id from coin_source_ids where source_asset_id = 'bitcoin' "
        "and source = 'coincap'",
    ) != [("btc-bitcoin",)], "the rejected link stays broken"


def test_recovering_loads_what_no_run_committed_and_says_so_in_the_ledger(
    built: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = copy_of(built, "failed source", tmp_path)
    rebuilt = rebuild_from_raw(data_dir, OVERRIDES, recover=True)
    assert [(b.run_id, b.source) for b in rebuilt.replay.recovered] == [(FIRST, "coincap")]
    assert query(data_dir, "select count(*) > 0 from quotes where source = 'coincap'") == [(True,)]
    ((status, warnings),) = query(
        data_dir, "select status, warnings from run_sources where source = 'coincap'"
    )
    assert status == "loaded"
    assert isinstance(warnings, list)
    assert any("recovered by `kasparro rebuild --from-raw --recover`" in w for w in warnings)
    listed = query(data_dir, "select count(*) from run_files where source = 'coincap'")
    assert listed == [(len(rebuilt.replay.recovered[0].files),)]
    # Recorded in the ledger, the recovered load is what the next rebuild replays.
    before = snapshot_checksums(data_dir, lineage=True)
    rebuild_from_raw(data_dir, OVERRIDES)
    assert snapshot_checksums(data_dir, lineage=True) == before


def test_a_raw_zone_without_its_warehouse_is_recovered_whole(
    built: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = copy_of(built, "repeated delivery", tmp_path)
    quotes = query(data_dir, "select count(*) from quotes")
    for lost in data_dir.glob("*.duckdb*"):  # the snapshot's layout, a directory, with them
        shutil.rmtree(lost) if lost.is_dir() else lost.unlink()
    rebuilt = rebuild_from_raw(data_dir, OVERRIDES, recover=True)
    assert len(rebuilt.replay.recovered) == 7, "both runs' sources, but the second's empty CSV"
    assert query(data_dir, "select count(*) from quotes") == quotes
    assert query(data_dir, "select distinct status from runs") == [("abandoned",)]


def test_loads_committed_before_the_ledger_listed_files_replay_their_runs_pages(
    built: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = copy_of(built, "history backfill", tmp_path)
    listed = snapshot_checksums(data_dir, lineage=True)
    with warehouse(data_dir / "warehouse.duckdb") as con:  # what migration 5 leaves
        con.execute("delete from run_files")
        con.execute(
            "insert into run_files select run_id, source, null from run_sources "
            "where status = 'loaded' and repeat_of is null"
        )
    rebuild_from_raw(data_dir, OVERRIDES)
    assert snapshot_checksums(data_dir, lineage=True) == listed, (
        "the same tables, and the rebuild lists the files those loads read"
    )


def test_a_raw_file_the_ledger_lists_but_the_zone_lacks_stops_the_rebuild(
    built: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = copy_of(built, "failed source", tmp_path)
    before = snapshot_checksums(data_dir, lineage=True)
    ((lost,),) = query(data_dir, "select min(raw_file) from run_files where source = 'coinpaprika'")
    (data_dir / "raw" / str(lost)).unlink()
    with pytest.raises(RebuildError, match=r"missing from the raw zone .* restore them"):
        rebuild_from_raw(data_dir, OVERRIDES)
    assert snapshot_checksums(data_dir, lineage=True) == before
    assert not (data_dir / "warehouse.rebuild.duckdb").exists()


def test_the_command_line_says_what_it_left_out(
    built: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = copy_of(built, "abandoned run", tmp_path)
    assert query(data_dir, "select run_id, status from runs order by run_id") == [
        (FIRST, "abandoned"),
        (SECOND, "completed"),
    ]
    monkeypatch.setenv("KASPARRO_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KASPARRO_OVERRIDES_FILE", str(REPO / "data" / "asset_overrides.csv"))
    get_store_settings.cache_clear()
    try:
        assert main(["rebuild", "--recover"]) == 2
        assert main(["rebuild", "--from-raw"]) == 0
    finally:
        get_store_settings.cache_clear()
    out = capsys.readouterr()
    assert "--recover needs --from-raw" in out.err
    assert "of 2 (run, source) loads the run ledger lists" in out.out
    # The dead run's CoinPaprika, CoinCap and CSV extracts.
    assert "of 3 (run, source) pair(s) that no committed load read" in out.out
