"""Market agreement: do two observations of (maybe) one asset agree, and the lookup that finds
a candidate coin's stored quote nearest in time (see :mod:`flows.resolution`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import polars as pl

from store.resolution import MARKET_WINDOW

# The store owns the window (its nearest-quote query filters by it); compare_markets reads it
# in days.
MARKET_WINDOW_DAYS = MARKET_WINDOW / timedelta(days=1)
"""Observations further apart than this are no market evidence."""

MarketLookup = Callable[[pl.DataFrame], pl.DataFrame]
"""(:data:`store.resolution.MARKET_LOOKUP` rows) -> :data:`store.resolution.MARKET_FOUND` rows:
for each, the stored quote of the coin nearest in time from a source other than the asking
asset's; pairs without one are left out."""


@dataclass(frozen=True)
class Observation:
    observed_at: datetime
    price: float
    market_cap: float | None
    rank: int | None


@dataclass(frozen=True)
class MarketComparison:
    verdict: Literal["agrees", "disagrees", "unknown"]
    corroborated: bool
    """Market cap or rank agree too."""
    gap_days: float
    detail: dict[str, object]


def _relative_difference(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b))


def compare_markets(mine: Observation, theirs: Observation | None) -> MarketComparison:
    """Do two observations of (maybe) one asset agree? Tolerances widen with the time between
    them: price 5% + 3%/day, market cap 30% + 3%/day (sources count circulating supply
    differently), rank within max(5, 25%)."""
    if theirs is None or mine.price <= 0 or theirs.price <= 0:
        return MarketComparison("unknown", False, 0.0, {"market": "no quote of the candidate"})
    gap = abs((mine.observed_at - theirs.observed_at).total_seconds()) / 86400
    detail: dict[str, object] = {
        "gap_days": round(gap, 3),
        "price": mine.price,
        "candidate_price": theirs.price,
    }
    if gap > MARKET_WINDOW_DAYS:
        detail["market"] = f"nearest candidate quote is {gap:.1f} days away"
        return MarketComparison("unknown", False, gap, detail)
    price_difference = _relative_difference(mine.price, theirs.price)
    detail["price_difference"] = round(price_difference, 4)
    corroborated = False
    if mine.market_cap and theirs.market_cap:
        cap_difference = _relative_difference(mine.market_cap, theirs.market_cap)
        detail["market_cap_difference"] = round(cap_difference, 4)
        corroborated |= cap_difference <= 0.30 + 0.03 * gap
    if mine.rank is not None and theirs.rank is not None:
        detail["rank"], detail["candidate_rank"] = mine.rank, theirs.rank
        corroborated |= abs(mine.rank - theirs.rank) <= max(5, 0.25 * min(mine.rank, theirs.rank))
    verdict: Literal["agrees", "disagrees"] = (
        "agrees" if price_difference <= 0.05 + 0.03 * gap else "disagrees"
    )
    return MarketComparison(verdict, corroborated, gap, detail)
