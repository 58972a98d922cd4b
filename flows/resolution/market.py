"""Market agreement: do two observations of (maybe) one asset agree, and the lookup that finds
a candidate coin's stored quote nearest in time (see :mod:`flows.resolution`)."""

from __future__ import annotations

import math
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


Verdict = Literal["agrees", "contradicts", "unknown"]


@dataclass(frozen=True)
class MarketComparison:
    verdict: Verdict
    """``agrees``: the prices are within what the time between the observations allows;
    ``contradicts``: further apart than the gap can explain; ``unknown``: no quote of the
    candidate near in time, or prices in between. Missing evidence is not contrary evidence:
    only ``contradicts`` lowers a confidence."""
    corroborated: bool
    """Market cap or rank agree too."""
    gap_days: float
    detail: dict[str, object]
    rank_close: bool = False
    """Both ranks known and within max(5, 25%) of each other."""


PRICE_AGREES = 0.05
PRICE_AGREES_PER_DAY = 0.03
"""Prices agree within 5% + 3% per day between the observations (relative to the larger)."""
CONTRADICTION_RATIO = 1.5
"""Prices contradict when one is over 1.5 x sqrt(1 + days apart) times the other: 1.5x at the same
moment, 2.1x a day apart, 4.2x a week apart. Crypto prices move that much, so the bar widens
with the gap; beyond the market window no quote is compared at all."""


def contradiction_ratio(gap_days: float) -> float:
    return CONTRADICTION_RATIO * math.sqrt(1.0 + gap_days)


def _relative_difference(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b))


def compare_markets(mine: Observation, theirs: Observation | None) -> MarketComparison:
    """Do two observations of (maybe) one asset agree, contradict, or neither? Tolerances widen
    with the time between them: price 5% + 3%/day to agree, :func:`contradiction_ratio` to
    contradict; market cap 30% + 3%/day (sources count circulating supply differently) and rank
    within max(5, 25%) corroborate an agreeing price."""
    if theirs is None or mine.price <= 0 or theirs.price <= 0:
        detail: dict[str, object] = {
            "market": f"no quote of the candidate within {MARKET_WINDOW_DAYS:g} days: "
            "neither confirms nor refutes"
        }
        return MarketComparison("unknown", False, 0.0, detail)
    gap = abs((mine.observed_at - theirs.observed_at).total_seconds()) / 86400
    detail = {"gap_days": round(gap, 3), "price": mine.price, "candidate_price": theirs.price}
    if gap > MARKET_WINDOW_DAYS:
        detail["market"] = (
            f"nearest candidate quote is {gap:.1f} days away: neither confirms nor refutes"
        )
        return MarketComparison("unknown", False, gap, detail)
    price_difference = _relative_difference(mine.price, theirs.price)
    detail["price_difference"] = round(price_difference, 4)
    corroborated = rank_close = False
    if mine.market_cap and theirs.market_cap:
        cap_difference = _relative_difference(mine.market_cap, theirs.market_cap)
        detail["market_cap_difference"] = round(cap_difference, 4)
        corroborated |= cap_difference <= 0.30 + 0.03 * gap
    if mine.rank is not None and theirs.rank is not None:
        detail["rank"], detail["candidate_rank"] = mine.rank, theirs.rank
        rank_close = abs(mine.rank - theirs.rank) <= max(5, 0.25 * min(mine.rank, theirs.rank))
        corroborated |= rank_close
    if price_difference <= PRICE_AGREES + PRICE_AGREES_PER_DAY * gap:
        return MarketComparison("agrees", corroborated, gap, detail, rank_close)
    ratio = max(mine.price, theirs.price) / min(mine.price, theirs.price)
    if ratio > contradiction_ratio(gap):
        allowed = contradiction_ratio(gap)
        detail["market"] = (
            f"prices {ratio:.2f}x apart, over the {allowed:.2f}x {gap:.1f} days allow"
        )
        return MarketComparison("contradicts", False, gap, detail, rank_close)
    detail["market"] = "prices neither agree nor contradict"
    return MarketComparison("unknown", False, gap, detail, rank_close)
