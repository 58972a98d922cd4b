"""Response schemas of the dashboard's endpoint (see :mod:`web.schemas` for the rest)."""

from __future__ import annotations

import msgspec

from web.schemas import ConsensusPrices


class CoinConsensus(ConsensusPrices, kw_only=True):
    market_cap_usd: str | None
    """The largest market cap a source states at its latest snapshot (exact decimal text)."""


class ConsensusPage(msgspec.Struct):
    items: list[CoinConsensus]
    total: int
    """Coins that some source lists now (coins with history rows only are left out)."""
    limit: int
    offset: int
