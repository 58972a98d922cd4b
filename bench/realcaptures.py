"""The real third-party captures of ``../shared/realdata`` as the frames entity resolution reads.

Each capture becomes one run: one row per asset with ``source``, ``source_asset_id``, ``symbol``,
``name``, ``observed_at``, ``run_id`` and ``price_usd`` / ``market_cap_usd`` / ``rank`` where the
capture states them (null otherwise). The captures hold no clock of their own except CoinCap's
envelope and CoinGecko's markets, so the moment of the others is the date the folder's README gives
(:data:`CAPTURES`), at 00:00 UTC.

Values are taken as the capture states them: the CoinGecko markets capture asked for USD and got
EUR (USDT 0.949), and it is fed as USD, as a warehouse would receive it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from store.schema import MONEY, UTC_TIME

SHARED_ENV = "KASPARRO_SHARED_DIR"
"""Where ``shared/`` is when it is not beside the clone (e.g. from a git worktree)."""

FRAME = pl.Schema(
    {
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "symbol": pl.String(),
        "name": pl.String(),
        "observed_at": UTC_TIME,
        "run_id": pl.String(),
        "price_usd": MONEY,
        "market_cap_usd": MONEY,
        "rank": pl.Int32(),
    }
)


@dataclass(frozen=True)
class CaptureFile:
    source: str
    path: str
    """Relative to ``realdata/``."""
    captured: datetime | None
    """The capture's moment when the file does not state one (see the module docstring)."""


CAPTURES = (
    CaptureFile("coincap", "coincap/assets_2019-01-21.json", None),
    CaptureFile(
        "coinpaprika", "coinpaprika/coins_2020-05-07.json", datetime(2020, 5, 7, tzinfo=UTC)
    ),
    CaptureFile("coingecko", "coingecko/coins_list_2024-02.json", datetime(2024, 2, 1, tzinfo=UTC)),
    CaptureFile(
        "coinpaprika", "coinpaprika/website_top100_2024-09.json", datetime(2024, 9, 28, tzinfo=UTC)
    ),
    CaptureFile("coingecko", "coingecko/coins_markets_2025-03-04.json", None),
    CaptureFile(
        "coingecko", "coingecko/coins_list_2025-07-05.json", datetime(2025, 7, 5, tzinfo=UTC)
    ),
)
"""Every capture that names assets, in chronological order."""


@dataclass(frozen=True)
class Capture:
    file: CaptureFile
    run_id: str
    frame: pl.DataFrame
    """:data:`FRAME` rows."""

    @property
    def observed_at(self) -> datetime:
        first = self.frame["observed_at"].min()
        assert isinstance(first, datetime)
        return first


def shared_dir() -> Path:
    """``KASPARRO_SHARED_DIR``, else ``shared/`` beside the clone."""
    if configured := os.environ.get(SHARED_ENV):
        return Path(configured).resolve()  # tests link files to it from elsewhere
    return Path(__file__).resolve().parents[1] / ".." / "shared"


def read_captures(realdata: Path) -> list[Capture]:
    """Every capture of :data:`CAPTURES` as a frame, in order; a missing file is an error."""
    captures = []
    for file in CAPTURES:
        path = realdata / file.path
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: real capture not found; point {SHARED_ENV} at the folder holding "
                "realdata/ (see its README.md)"
            )
        payload = json.loads(path.read_text(encoding="utf-8"))
        run_id = "real-" + Path(file.path).stem
        rows = list(_rows(file, payload, run_id))
        captures.append(Capture(file, run_id, pl.DataFrame(rows, schema=FRAME, orient="row")))
    return captures


def source_ids(realdata: Path) -> dict[str, set[str]]:
    """source -> every asset id its captures hold (to check a labels file against)."""
    ids: dict[str, set[str]] = {}
    for capture in read_captures(realdata):
        ids.setdefault(capture.file.source, set()).update(capture.frame["source_asset_id"])
    return ids


_Row = tuple[str, str, str, str, datetime, str, Decimal | None, Decimal | None, int | None]


def _rows(file: CaptureFile, payload: Any, run_id: str) -> Iterator[_Row]:
    source = file.source
    if file.path.startswith("coincap/"):
        at = datetime.fromtimestamp(payload["timestamp"] / 1000, tz=UTC)
        for r in payload["data"]:
            yield (
                source, r["id"], r["symbol"], r["name"], at, run_id,
                _money(r["priceUsd"]), _money(r["marketCapUsd"]), int(r["rank"]),
            )  # fmt: skip
    elif "coins_markets" in file.path:
        for r in payload:
            at = datetime.fromisoformat(r["last_updated"])
            yield (
                source, r["id"], r["symbol"], r["name"], at, run_id,
                _money(r["current_price"]), _money(r["market_cap"]), r["market_cap_rank"],
            )  # fmt: skip
    elif "website_top100" in file.path:
        assert file.captured is not None
        for r in payload["data"]:
            usd: Mapping[str, Any] = r["price_stats"]["usd"]
            yield (
                source, r["api_id"], r["symbol"], r["name"], file.captured, run_id,
                _money(usd["price"]), _money(usd["market_cap"]), r["rank"],
            )  # fmt: skip
    else:
        # Coin lists: no market. CoinPaprika's rank 0 means unranked.
        assert file.captured is not None
        for r in payload:
            rank = r.get("rank") or None
            yield (source, r["id"], r["symbol"], r["name"], file.captured, run_id, None, None, rank)


def _money(value: object) -> Decimal | None:
    """The stated number exactly (JSON floats through their shortest repr)."""
    if value is None:
        return None
    return Decimal(str(value))
