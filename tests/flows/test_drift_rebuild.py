"""After a contract update (a rename mapped), `kasparro rebuild --from-raw --recover` re-derives
the rows a drifted run could not load, from the payloads the raw zone kept."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from flows.drift import get_drift_settings
from flows.rebuild import rebuild_from_raw
from store.connection import open_read_only
from tests.conftest import DEMO_DIR
from tests.drifted import chained, drifted_coingecko, later, renamed
from tests.helpers import ingest_without_prefect


def test_a_mapped_rename_then_rebuild_loads_the_drifted_run_with_the_right_prices(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    get_drift_settings.cache_clear()
    replay = drifted_coingecko(tmp_path / "replay", lambda n, r: r)
    ingest_without_prefect(
        replay, data_dir, run_id="20261124T120000Z-aaaaaa", sources=("coingecko",)
    )
    drifted_coingecko(tmp_path / "replay", chained(later(5), renamed("current_price", "price")))
    drifted_run = "20261124T130000Z-bbbbbb"
    result = ingest_without_prefect(replay, data_dir, run_id=drifted_run, sources=("coingecko",))
    assert result["coingecko"].status == "failed"

    monkeypatch.setenv("KASPARRO_DRIFT_RENAMES", '{"coingecko": {"price": "current_price"}}')
    get_drift_settings.cache_clear()
    try:
        rebuild_from_raw(data_dir, {}, recover=True)
    finally:
        get_drift_settings.cache_clear()

    expected: dict[str, set[Decimal]] = {}
    for page in sorted((DEMO_DIR / "coingecko" / "coins_markets").glob("page-*.json")):
        for record in json.loads(page.read_text()):
            if isinstance(record.get("current_price"), int | float) and record["current_price"] > 0:
                expected.setdefault(record["id"], set()).add(Decimal(str(record["current_price"])))
    con = open_read_only(data_dir / "warehouse.duckdb")
    try:
        rows = con.execute(
            "select source_asset_id, price_usd from quotes where run_id = ?",
            [drifted_run],
        ).fetchall()
        events = con.execute(
            "select count(*) from drift_events where run_id = ?", [drifted_run]
        ).fetchall()
    finally:
        con.close()
    assert len(rows) > 250, "the drifted run's records are loaded now"
    wrong = [(asset, price) for asset, price in rows if price not in expected[asset]]
    assert not wrong, "every price is the one the demo served under current_price"
    assert events[0][0] > 0, "the drift events survive the rebuild"
