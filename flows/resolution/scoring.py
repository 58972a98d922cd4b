"""What each kind of evidence weighs, and the confidence a candidate link gets from it.

A candidate (a new asset, and a coin holding an asset of another source with the same normalised
symbol) collects evidence. Its confidence is the sum of the weights, at most 0.99; a contradiction
caps it. The symbol is the blocking key, not evidence: it weighs nothing on its own.

=======================================  ======  =============================================
evidence                                 weight  holds across time?
=======================================  ======  =============================================
names identical (normalised)             +0.60   yes
names similar (>= ``NAME_SIMILAR``)      +0.40   yes
ids share a name slug (``id_slugs``)     +0.60   yes: a source mints an id from the name it
                                                 lists an asset under and keeps it
ids share a slug but for separators      +0.60   yes (``binance-coin`` / ``binancecoin``)
key unique                               +0.30   yes: the coin is the only one of the other
                                                 sources with this symbol that the names (the
                                                 identical ones, if any) or ids point to, and
                                                 the asset's own source lists no twin
key unique, similar names only           +0.20   as above
market corroborated (price and market    +0.50   no: only quotes within the market window;
cap or rank agree)                               less 0.01 per day between them
market agrees (price only)               +0.35   as above
rank close (no price agreement)          +0.10   as above
the candidate is a later namesake        -0.40   yes: its id is the asset's slug with a numeric
(``ethos-3``, its source still lists                     suffix, which a source adds when a later
``ethos``)                                               asset takes a listed name
market contradicts                       cap     the prices are further apart than the time
                                         0.40    between them explains
=======================================  ======  =============================================

So identical names and one id slug link (1.2, capped 0.99) whatever the time between the sources'
captures; identical names, or the ids, link on their own only where the key is unique (0.9);
similar names need the ids or the market; the symbol with a market that corroborates only
proposes a review. Names are identical once normalised, generic words (``token``, ``network``)
and the spaces between words dropped.

An asset whose symbol no related coin shares (a ticker that changed: GNT and GLM, MIOTA and
IOTA) is also weighed against the coins whose ids share a slug with its id, whatever their
symbol; the same weights apply, and the decider caps such a link for review unless something
explains the ticker (``flows.resolution.decider.SYMBOL_DIFFERS_CAP``). A missing market quote weighs
nothing either way: missing evidence is not contrary evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flows.resolution.market import MarketComparison
from flows.resolution.names import IdRelation

NameRelation = Literal["identical", "similar"]
Kind = Literal[
    "names_identical", "names_similar", "ids_exact", "ids_joined", "key_unique",
    "market_corroborated", "market_agrees", "rank_close", "later_namesake",
]  # fmt: skip

WEIGHTS: dict[Kind, float] = {
    "names_identical": 0.60,
    "names_similar": 0.40,
    "ids_exact": 0.60,
    "ids_joined": 0.60,
    "key_unique": 0.30,
    "market_corroborated": 0.50,
    "market_agrees": 0.35,
    "rank_close": 0.10,
    "later_namesake": -0.40,
}
KEY_UNIQUE_SIMILAR = 0.20
"""``key_unique`` when only similar names (no identical name, no id) point to the coin."""
MARKET_GAP_PENALTY = 0.01
"""Per day between the observations, off a market's weight."""
CAP = 0.99
CONTRADICTED_CAP = 0.40

ScoredMethod = Literal["symbol_name_market", "name_similarity_market", "names_ids", "symbol_market"]
"""``symbol_name_market`` / ``name_similarity_market``: the market agreed as well;
``names_ids``: names, ids and uniqueness, with no market to confirm (a link a later
contradicting market sends back to review); ``symbol_market``: the symbol and a corroborating
market, nothing else (a review at most)."""
_NAMES: dict[NameRelation, Kind] = {"identical": "names_identical", "similar": "names_similar"}
_IDS: dict[IdRelation, Kind] = {
    "exact": "ids_exact", "joined": "ids_joined"
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Weighed:
    kind: Kind
    weight: float


@dataclass(frozen=True, slots=True)
class Score:
    confidence: float
    method: ScoredMethod
    weighed: tuple[Weighed, ...]
    contradicted: bool

    def explained(self) -> dict[str, object]:
        return {
            "weights": {w.kind: round(w.weight, 4) for w in self.weighed},
            **({"contradicted": True} if self.contradicted else {}),
        }


def score(
    *,
    names: NameRelation | None,
    ids: IdRelation | None,
    unique: bool,
    market: MarketComparison,
    namesake: bool = False,
) -> Score | None:
    """The confidence of one candidate from its evidence (the table above); None when nothing
    but the symbol points to it and the market does not corroborate."""
    weighed: list[Weighed] = []
    if names:
        weighed.append(Weighed(_NAMES[names], WEIGHTS[_NAMES[names]]))
    if ids:
        weighed.append(Weighed(_IDS[ids], WEIGHTS[_IDS[ids]]))
    related = names is not None or ids is not None
    if related and unique:
        similar_only = names == "similar" and ids is None
        weighed.append(
            Weighed("key_unique", KEY_UNIQUE_SIMILAR if similar_only else WEIGHTS["key_unique"])
        )
    if namesake:
        weighed.append(Weighed("later_namesake", WEIGHTS["later_namesake"]))
    agrees = market.verdict == "agrees"
    if agrees:
        kind: Kind = "market_corroborated" if market.corroborated else "market_agrees"
        weight = WEIGHTS[kind] - MARKET_GAP_PENALTY * market.gap_days
        weighed.append(Weighed(kind, weight))
    elif market.rank_close:
        weighed.append(Weighed("rank_close", WEIGHTS["rank_close"]))
    if not related and not (agrees and market.corroborated):
        return None
    contradicted = market.verdict == "contradicts"
    total = sum(w.weight for w in weighed)
    confidence = min(total, CONTRADICTED_CAP if contradicted else CAP)
    if confidence <= 0:
        return None
    method: ScoredMethod
    if not related:
        method = "symbol_market"
    elif not agrees or names is None:
        method = "names_ids"
    else:
        method = "symbol_name_market" if names == "identical" else "name_similarity_market"
    return Score(round(confidence, 4), method, tuple(weighed), contradicted)
