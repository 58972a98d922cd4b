"""A source that delivers exactly the payloads of its previous load is recorded without being
transformed or merged again: held here to what loading it again would have recorded."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import flows.delivery
import flows.load
from flows.rebuild import rebuild_from_raw
from flows.resolution import Override, read_overrides
from store.connection import open_read_only, warehouse
from tests.conftest import REPO
from tests.helpers import ingest_without_prefect, snapshot_checksums

OVERRIDES = read_overrides(REPO / "data" / "asset_overrides.csv")
APIS = ("coincap", "coingecko", "coinpaprika")


def ingest(replay: Path, data_dir: Path, run_id: str) -> None:
    ingest_without_prefect(replay, data_dir, run_id=run_id, overrides=OVERRIDES)


def ledger(data_dir: Path, run_id: str) -> list[tuple[object, ...]]:
    """What a run recorded per source, but the timings."""
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        return con.execute(
            """
            select source, status, requests, fetched, valid, quarantined, duplicates, inserted,
                updated, unchanged, error, warnings, delivery_sha256,
                (
                    select list((source_asset_id, coin_id, observed_at) order by source_asset_id)
                    from run_seen as s
                    where s.run_id = r.run_id and s.source = r.source
                ) as seen
            from run_sources as r
            where run_id = ?
            order by source
            """,
            [run_id],
        ).fetchall()
    finally:
        con.close()


def repeats(data_dir: Path, run_id: str) -> dict[str, tuple[str | None, bool]]:
    """Per source: the run it repeated, and whether it was transformed."""
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        rows = con.execute(
            "select source, repeat_of, transform_seconds is not null from run_sources "
            "where run_id = ?",
            [run_id],
        ).fetchall()
        return {source: (repeat_of, transformed) for source, repeat_of, transformed in rows}
    finally:
        con.close()


@pytest.fixture
def loaded(tmp_path: Path, demo_dir: Path) -> Path:
    """A data dir holding the demo's first load, run ``first``."""
    data_dir = tmp_path / "data"
    ingest(demo_dir, data_dir, "first")
    return data_dir


def rerun_after(demo_dir: Path, data_dir: Path, change: str) -> dict[str, tuple[str | None, bool]]:
    """Apply ``change`` to the warehouse (what some event leaves there), run again over the
    same demo, and say what the run repeated."""
    with warehouse(data_dir / "warehouse.duckdb") as con:
        con.execute(change)
    ingest(demo_dir, data_dir, "second")
    return repeats(data_dir, "second")


def test_a_repeated_delivery_records_what_loading_it_again_would(
    tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repeated, loaded = tmp_path / "repeated", tmp_path / "loaded"
    for data_dir in (repeated, loaded):
        ingest(demo_dir, data_dir, "first")
    first_tables = snapshot_checksums(repeated)

    ingest(demo_dir, repeated, "second")
    with monkeypatch.context() as patch:
        patch.setattr(flows.load, "record_repeat", lambda *_: False)
        ingest(demo_dir, loaded, "second")

    assert repeats(repeated, "second") == {
        **dict.fromkeys(APIS, ("first", False)),
        "csv": (None, False),  # every file already loaded: nothing delivered
    }
    assert repeats(loaded, "second") == {
        **dict.fromkeys(APIS, (None, True)),
        "csv": (None, True),
    }
    second = ledger(repeated, "second")
    assert all(row[-1] for row in second if row[0] in APIS), "every API delivered assets"
    assert second == ledger(loaded, "second")
    assert [row[7:9] for row in second] == [(0, 0)] * 4, "nothing inserted or updated"
    assert snapshot_checksums(repeated) == snapshot_checksums(loaded) == first_tables


def test_a_changed_page_is_loaded_in_full(tmp_path: Path, demo_dir: Path) -> None:
    replay, data_dir = tmp_path / "replay", tmp_path / "data"
    shutil.copytree(demo_dir, replay)
    ingest(replay, data_dir, "first")

    page = replay / "coingecko" / "coins_markets" / "page-0002.json"
    records = json.loads(page.read_bytes())
    seen_at = datetime.fromisoformat(records[0]["last_updated"]) + timedelta(hours=1)
    records[0]["last_updated"] = seen_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    page.write_text(json.dumps(records))
    ingest(replay, data_dir, "second")

    found = repeats(data_dir, "second")
    assert found["coingecko"] == (None, True)
    assert found["coinpaprika"] == found["coincap"] == ("first", False)
    row = {r[0]: r for r in ledger(data_dir, "second")}["coingecko"]
    assert row[7:9] == (1, 0), "the re-observed asset is a new quote"


def test_new_code_loads_the_same_payloads_in_full(
    loaded: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flows.delivery, "code_sha256", lambda: "a fixed validation rule")
    ingest(demo_dir, loaded, "second")
    assert {s: r for s, (r, _) in repeats(loaded, "second").items()} == dict.fromkeys(
        (*APIS, "csv")
    )


def test_a_delivery_is_repeated_only_after_a_load_that_committed(
    loaded: Path, demo_dir: Path
) -> None:
    # A later run whose coingecko load failed (rolled back): what is stored may no longer be
    # what the first run left, so the next run must not take its word for it.
    found = rerun_after(
        demo_dir,
        loaded,
        "insert into run_sources (run_id, source, status, finished_at, delivery_sha256) "
        "select 'broken', source, 'failed', now(), delivery_sha256 from run_sources "
        "where run_id = 'first' and source = 'coingecko'",
    )
    assert found["coingecko"] == (None, True)
    assert found["coincap"] == ("first", False)


def test_a_load_is_repeated_only_until_its_verdicts_may_turn(loaded: Path, demo_dir: Path) -> None:
    """The demo's CoinPaprika tickers hold a record observed on 2027-01-01, quarantined as in
    the future: read on or after 2026-12-31 23:55 (the clock-skew allowance), it is valid."""
    con = open_read_only(loaded / "serving.duckdb")
    try:
        query = "select source, repeatable_until from run_sources where run_id = 'first'"
        until = dict(con.execute(query).fetchall())
    finally:
        con.close()
    assert until["coinpaprika"] == datetime(2026, 12, 31, 23, 55, tzinfo=UTC)
    assert until["coingecko"] is None, "its quarantined records stay so whenever read"
    found = rerun_after(  # as if that moment had come
        demo_dir,
        loaded,
        "update run_sources set repeatable_until = now() - interval 1 minute "
        "where run_id = 'first' and source = 'coinpaprika'",
    )
    assert found["coinpaprika"] == (None, True)
    assert found["coingecko"] == ("first", False)


def test_no_delivery_is_repeated_across_an_operator_decision(loaded: Path, demo_dir: Path) -> None:
    # What store.resolution leaves of a decision it applied (at the start of the next run).
    found = rerun_after(
        demo_dir,
        loaded,
        """
        insert into resolution_decisions (decision_id, action, source, source_asset_id,
            coin_id, decided_by, decided_at, outcome, applied_at, applied_by_run)
        values ('d1', 'reject', 'coincap', 'bitcoin', 'btc-bitcoin', 'ops', now(),
            'applied', now(), 'second')
        """,
    )
    assert {s: r for s, (r, _) in found.items()} == dict.fromkeys((*APIS, "csv"))


def test_after_a_rebuild_the_next_run_loads_in_full_and_pointers_follow_the_links(
    loaded: Path, demo_dir: Path
) -> None:
    # Rebuilt with an override the first load did not have: CoinCap's bitcoin is another coin.
    moved = {**OVERRIDES, ("coincap", "bitcoin"): Override("btc-elsewhere", "test", 1)}
    rebuild_from_raw(loaded, moved)
    with warehouse(loaded / "warehouse.duckdb") as con:
        dangling = con.execute(
            """
            select s.source, s.source_asset_id
            from run_seen as s
            anti join quotes as q using (coin_id, source, observed_at)
            """
        ).fetchall()
        assert dangling == [], "every run's pointers lead to a stored quote"
        pointer = con.execute(
            "select coin_id from run_seen where source = 'coincap' and source_asset_id = 'bitcoin'"
        ).fetchall()
        assert pointer == [("btc-elsewhere",)]
    ingest_without_prefect(demo_dir, loaded, run_id="second", overrides=moved)
    assert {s: r for s, (r, _) in repeats(loaded, "second").items()} == dict.fromkeys(
        (*APIS, "csv")
    )
