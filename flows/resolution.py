"""Entity resolution: which canonical coin each source asset is, and why.

An asset already mapped keeps its coin (``sticky``; an operator's decision moves it, see
:mod:`store.decisions`). A new asset is decided by the strongest evidence available:

1. ``override``: the curated file ``data/asset_overrides.csv`` (``source,source_asset_id,
   coin_id,note``); ``operator``: an accepted review decision (it matters when a rebuild meets the
   asset again). Confidence 1.
2. ``contract``: the asset and an asset of another source publish the same contract address on
   the same chain (:mod:`flows.transform.contracts`, chains per :mod:`flows.sources.platforms`).
   Confidence 0.99; 0.7 (review) when the address belongs to several coins, 0.6 (review) when the
   prices contradict it by more than 50% (a stale listing, or a wrong address).
3. ``symbol_name_market`` / ``name_similarity_market``: an asset of another source has the same
   normalised symbol (the blocking key; a symbol alone never links) and a similar name, and their
   markets agree at the same time (:func:`compare_markets`):

   ==========================  =================  ================  =========  ===========
   names                       price, and mcap    price only        no market  price
                               or rank agree                                   disagrees
   ==========================  =================  ================  =========  ===========
   identical (normalised)      0.95 - 0.01/day    0.95 - 0.01/day   0.80       0.40
   similar (>= 0.75)           0.92 - 0.01/day    0.80              0.60       0.30
   different, symbol only      0.60               0                 0          0
   ==========================  =================  ================  =========  ===========

   ``/day``: days between the two observations compared. Contracts on the same chain that differ
   cap the confidence at 0.5 (bridged and wrapped tokens share symbols and prices, never
   addresses).
4. ``new``: a coin of its own.

A candidate with confidence >= :data:`LINK_THRESHOLD` links, unless another candidate comes
within :data:`AMBIGUITY_MARGIN` of it; candidates between :data:`REVIEW_THRESHOLD` and the link
threshold, and ambiguous ones, go to the review queue (``resolution_review``) while the asset
founds a coin of its own: a wrong merge corrupts history, a missed link only waits for review.

Name similarity (:func:`name_similarity`) is 1 for names equal after normalisation, else the
larger of the Jaccard index of their word sets (without the generic words in
:data:`GENERIC_WORDS`) and difflib's ratio of the words run together. Normalisation is NFKC (which
turns NBSP into a space), zero-width characters removed, whitespace collapsed and trimmed, then
casefolded.

``coin_id`` is a readable slug of the founding asset's symbol and name (``btc-bitcoin``), with a
hash of the asset's ``source:id`` appended when another coin (or an alias) holds the slug. A coin
holds at most one asset per source. Assets are decided in a fixed order (source order, then id)
against the stored state, so shuffling a batch gives the same coins, links and evidence.

Resolution works on the batch's distinct assets (thousands), not on its quotes (millions).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import polars as pl

from flows.sources import SOURCE_NAMES
from store.schema import ASSET_CONTRACTS, COIN_SOURCE_IDS, COINS, RESOLUTION_REVIEW, UTC_TIME

logger = logging.getLogger(__name__)

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_WORDS = re.compile(r"[^\W_]+")
_COIN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,95}$")
KEY_SEPARATOR = "\x1f"

LINK_THRESHOLD = 0.9
REVIEW_THRESHOLD = 0.3
AMBIGUITY_MARGIN = 0.05
NAME_SIMILAR = 0.75
GENERIC_WORDS = frozenset({"coin", "token", "network", "protocol", "the", "finance", "chain"})
MARKET_WINDOW_DAYS = 7.0
"""Observations further apart than this are no market evidence."""
SOURCE_ORDER = {name: i for i, name in enumerate(SOURCE_NAMES)}

Method = Literal[
    "sticky", "override", "operator", "contract", "symbol_name_market",
    "name_similarity_market", "new",
]  # fmt: skip


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    return _SPACES.sub(" ", text).strip().casefold()


def match_key(symbol: str, name: str) -> str:
    return normalise(symbol) + KEY_SEPARATOR + normalise(name)


def _name_words(name: str) -> list[str]:
    words = _WORDS.findall(normalise(name))
    return [w for w in words if w not in GENERIC_WORDS] or words


def name_similarity(a: str, b: str) -> float:
    """1 for equal normalised names, else max(Jaccard of word sets, difflib ratio of the words
    run together), generic words (``token``, ``network``...) left out of both."""
    if normalise(a) == normalise(b):
        return 1.0
    wa, wb = _name_words(a), _name_words(b)
    union = set(wa) | set(wb)
    jaccard = len(set(wa) & set(wb)) / len(union) if union else 0.0
    ratio = difflib.SequenceMatcher(None, "".join(wa), "".join(wb), autojunk=False).ratio()
    return round(max(jaccard, ratio), 4)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")[:40].strip("-")


def natural_coin_id(symbol: str, name: str) -> str:
    """The id an asset founds a coin under: ``btc-bitcoin``."""
    return "-".join(part for part in (_slug(symbol), _slug(name)) if part) or "asset"


def _digest(source: str, asset: str) -> str:
    return hashlib.sha256(f"{source}:{asset}".encode()).hexdigest()[:8]


# --- overrides -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    coin_id: str
    note: str
    line: int


class OverridesError(ValueError):
    pass


def read_overrides(path: Path) -> dict[tuple[str, str], Override]:
    """The curated overrides; a malformed file is an error naming the line, never half-read."""
    if not path.exists():
        return {}
    overrides: dict[tuple[str, str], Override] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        expected = {"source", "source_asset_id", "coin_id", "note"}
        if set(reader.fieldnames or ()) != expected:
            raise OverridesError(
                f"{path}: header must be source,source_asset_id,coin_id,note; "
                f"got {reader.fieldnames}"
            )
        for line, row in enumerate(reader, start=2):
            source, asset, coin = (
                row["source"].strip(),
                row["source_asset_id"].strip(),
                row["coin_id"].strip(),
            )
            if source not in SOURCE_NAMES:
                raise OverridesError(
                    f"{path}:{line}: unknown source {source!r}; one of {SOURCE_NAMES}"
                )
            if not asset:
                raise OverridesError(f"{path}:{line}: source_asset_id is empty")
            if not _COIN_ID.match(coin):
                raise OverridesError(
                    f"{path}:{line}: coin_id {coin!r} must be lowercase letters, digits and '-'"
                )
            if (source, asset) in overrides:
                raise OverridesError(
                    f"{path}:{line}: {source}/{asset} is already overridden on line "
                    f"{overrides[(source, asset)].line}"
                )
            overrides[(source, asset)] = Override(coin, row["note"].strip(), line)
    return overrides


# --- market agreement ----------------------------------------------------------------------------

MARKET_LOOKUP = pl.Schema(
    {
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "coin_id": pl.String(),
        "asked_at": UTC_TIME,
    }
)
"""What :data:`MarketLookup` is asked: the candidate coin's quote nearest to ``asked_at``."""
MARKET_FOUND = pl.Schema(
    {
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "coin_id": pl.String(),
        "quote_source": pl.String(),
        "observed_at": UTC_TIME,
        "price_usd": pl.Float64(),
        "market_cap_usd": pl.Float64(),
        "rank": pl.Int32(),
    }
)
MarketLookup = Callable[[pl.DataFrame], pl.DataFrame]
"""(:data:`MARKET_LOOKUP` rows) -> :data:`MARKET_FOUND` rows: for each, the stored quote of the
coin nearest in time (any other source); pairs without one are left out."""


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


# --- evidence and decisions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """What the warehouse knows that bears on a batch's new assets."""

    stored_mappings: pl.DataFrame
    """(source, source_asset_id, coin_id, symbol, name, match_key) of every mapped asset."""
    stored_coin_ids: frozenset[str]
    overrides: Mapping[tuple[str, str], Override] = field(default_factory=dict)
    contracts: pl.DataFrame = field(default_factory=ASSET_CONTRACTS.to_frame)
    """:data:`store.schema.ASSET_CONTRACTS` rows, stored and the batch's."""
    accepted: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    """(source, asset) -> (coin, decision id) an operator accepted."""
    rejected: frozenset[tuple[str, str, str]] = frozenset()
    """(source, asset, coin) an operator rejected: never linked again."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Merged coin id -> the coin it lives on as."""
    market: MarketLookup | None = None


@dataclass(frozen=True)
class Resolution:
    mappings: pl.DataFrame
    """:data:`store.schema.COIN_SOURCE_IDS` rows for every asset of the batch (stored ones carry
    their stored coin; the loader only widens their seen range)."""
    new_coins: pl.DataFrame
    """:data:`store.schema.COINS` rows for coins founded by this batch."""
    review: pl.DataFrame = field(default_factory=RESOLUTION_REVIEW.to_frame)
    """:data:`store.schema.RESOLUTION_REVIEW` rows: candidates left for an operator."""

    def decisions(self) -> dict[str, int]:
        counts = self.mappings.group_by("method").len()
        return dict(zip(counts["method"].to_list(), counts["len"].to_list(), strict=True))


@dataclass(frozen=True)
class Candidate:
    coin_id: str
    confidence: float
    method: Method
    evidence: dict[str, object]


@dataclass
class _Known:
    """Coins and who holds them, as the batch is decided asset by asset."""

    taken: set[str]
    aliases: Mapping[str, str]
    sources_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def canonical(self, coin: str) -> str:
        seen = set()
        while coin in self.aliases and coin not in seen:
            seen.add(coin)
            coin = self.aliases[coin]
        return coin

    def free_for(self, coin: str, source: str) -> bool:
        return coin in self.taken and source not in self.sources_of[coin]

    def found_id(self, natural: str, source: str, asset: str) -> str:
        if natural not in self.taken and natural not in self.aliases:
            return natural
        return f"{natural}-{_digest(source, asset)}"


_NAME_SCORES: dict[tuple[str, str], float] = {
    ("identical", "corroborated"): 0.95, ("identical", "agrees"): 0.95,
    ("identical", "unknown"): 0.80, ("identical", "disagrees"): 0.40,
    ("similar", "corroborated"): 0.92, ("similar", "agrees"): 0.80,
    ("similar", "unknown"): 0.60, ("similar", "disagrees"): 0.30,
    ("symbol_only", "corroborated"): 0.60,
}  # fmt: skip
"""(names, market) -> confidence, the table of the module docstring."""
_GAP_PENALTY = {("identical", "corroborated"), ("identical", "agrees"), ("similar", "corroborated")}


def _score_names(
    exact: bool, similarity: float, market: MarketComparison
) -> tuple[float, Method | None]:
    names = "identical" if exact else "similar" if similarity >= NAME_SIMILAR else "symbol_only"
    verdict = (
        "corroborated" if market.verdict == "agrees" and market.corroborated else market.verdict
    )
    confidence = _NAME_SCORES.get((names, verdict), 0.0)
    if (names, verdict) in _GAP_PENALTY:
        confidence -= 0.01 * market.gap_days
    if confidence <= 0:
        return 0.0, None
    return confidence, "symbol_name_market" if exact else "name_similarity_market"


def resolve(
    quotes: pl.DataFrame,
    evidence: Evidence,
    *,
    run_id: str,
    now: datetime | None = None,
) -> Resolution:
    """Decide a coin for every distinct (source, source_asset_id) in ``quotes``."""
    assets = _assets(quotes)
    link = ["source", "source_asset_id"]
    stored = evidence.stored_mappings.select(*link, "coin_id", "symbol", "name", "match_key")
    sticky = assets.join(stored.select(*link, "coin_id", "match_key"), on=link, how="inner")
    _warn_ignored_overrides(sticky, evidence.overrides)
    sticky_rows = sticky.select(
        *link,
        "coin_id",
        "symbol",
        "name",
        "match_key",
        method=pl.lit("sticky"),
        confidence=pl.lit(1.0),
        evidence=pl.lit("{}"),
        first_seen_at="first_seen_at",
        last_seen_at="last_seen_at",
        last_snapshot_at=pl.lit(None, UTC_TIME),
        decided_by_run=pl.lit(run_id),
    ).cast(COIN_SOURCE_IDS)
    fresh = assets.join(stored, on=link, how="anti").sort("_order", "source_asset_id")
    if fresh.is_empty():
        return Resolution(sticky_rows, COINS.to_frame())
    return _Decider(fresh, stored, evidence, run_id=run_id, now=now).decide(sticky_rows)


def _assets(quotes: pl.DataFrame) -> pl.DataFrame:
    """One row per asset: its latest name, when it was seen, and the observation its markets are
    compared with: the latest of its first run (a rebuild loading many runs at once then
    compares what the run that first met the asset compared)."""
    first_run = pl.col("run_id") == pl.col("run_id").min()
    return (
        quotes.sort("observed_at")
        .group_by("source", "source_asset_id")
        .agg(
            pl.col("symbol").last(),
            pl.col("name").last(),
            pl.col("observed_at").min().alias("first_seen_at"),
            pl.col("observed_at").max().alias("last_seen_at"),
            pl.col("run_id").min().alias("first_run"),
            pl.col("observed_at").filter(first_run).last().alias("compared_at"),
            pl.col("price_usd").filter(first_run).last().cast(pl.Float64).alias("price"),
            pl.col("market_cap_usd").filter(first_run).last().cast(pl.Float64).alias("market_cap"),
            pl.col("rank").filter(first_run).last(),
        )
        .with_columns(
            _order=pl.col("source").replace_strict(SOURCE_ORDER, default=len(SOURCE_ORDER))
        )
    )


class _Decider:
    def __init__(
        self,
        fresh: pl.DataFrame,
        stored: pl.DataFrame,
        evidence: Evidence,
        *,
        run_id: str,
        now: datetime | None,
    ) -> None:
        self.evidence = evidence
        self.run_id = run_id
        self.now = now
        self.fresh = fresh.with_columns(
            match_key=pl.struct("symbol", "name").map_elements(
                lambda a: match_key(a["symbol"], a["name"]), return_dtype=pl.String()
            ),
            natural=pl.struct("symbol", "name").map_elements(
                lambda a: natural_coin_id(a["symbol"], a["name"]), return_dtype=pl.String()
            ),
        ).with_columns(symbol_key=pl.col("match_key").str.split(KEY_SEPARATOR).list.first())
        twins = self.fresh.group_by("source", "match_key").len().filter(pl.col("len") > 1)
        self.twins = {(s, k) for s, k, _ in twins.iter_rows()}
        """(source, match key) of new assets a source lists twice: whichever came first would
        win a coin both match, so neither links on names."""
        self.known = _Known(taken=set(evidence.stored_coin_ids), aliases=evidence.aliases)
        for source, coin in stored.select("source", "coin_id").iter_rows():
            self.known.sources_of[coin].add(source)
        # Assets of other sources a new asset could be: same symbol, or same contract.
        symbol_keys = self.fresh["symbol_key"].unique().implode()
        self.by_symbol: dict[str, list[tuple[str, str, str, str, str]]] = defaultdict(list)
        for source, asset, coin, _, name, key in (
            stored.filter(
                pl.col("match_key").str.split(KEY_SEPARATOR).list.first().is_in(symbol_keys)
            )
            .sort("source", "source_asset_id")
            .iter_rows()
        ):
            self.by_symbol[key.split(KEY_SEPARATOR)[0]].append((source, asset, coin, name, key))
        self.coin_of = {
            (s, a): c
            for s, a, c in stored.select("source", "source_asset_id", "coin_id").iter_rows()
        }
        self.contracts_of: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        self.holders: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        for source, asset, chain, address in evidence.contracts.select(
            "source", "source_asset_id", "chain", "address"
        ).iter_rows():
            self.contracts_of[(source, asset)].add((chain, address))
            self.holders[(chain, address)].add((source, asset))
        self.market = self._market()
        self.batch_observations: dict[str, list[tuple[str, Observation]]] = defaultdict(list)
        """Coin -> (source, observation) of the batch's assets decided so far."""

    def _candidate_coins(self, row: dict[str, object]) -> set[str]:
        source, asset = str(row["source"]), str(row["source_asset_id"])
        coins = {
            self.known.canonical(coin)
            for other, _, coin, _, _ in self.by_symbol.get(str(row["symbol_key"]), ())
            if other != source
        }
        # The coin named after the asset's own symbol and name (an override may have founded it
        # from another source's asset): its id says the names are identical.
        if (natural := self.known.canonical(str(row["natural"]))) in self.known.taken:
            coins.add(natural)
        for contract in self.contracts_of.get((source, asset), ()):
            for holder in self.holders[contract]:
                if holder[0] != source and holder in self.coin_of:
                    coins.add(self.known.canonical(self.coin_of[holder]))
        return coins

    def _market(self) -> dict[tuple[str, str, str], Observation]:
        pairs = [
            (row["source"], row["source_asset_id"], coin, row["compared_at"])
            for row in self.fresh.iter_rows(named=True)
            for coin in sorted(self._candidate_coins(row))
        ]
        if not pairs or self.evidence.market is None:
            return {}
        found = self.evidence.market(pl.DataFrame(pairs, schema=MARKET_LOOKUP, orient="row"))
        return {
            (source, asset, coin): Observation(at, price, cap, rank)
            for source, asset, coin, _, at, price, cap, rank in found.iter_rows()
            if price is not None and price > 0
        }

    def _nearest(self, source: str, asset: str, coin: str, mine: Observation) -> Observation | None:
        """The candidate coin's observation nearest to ``mine``: stored, or of the batch."""
        seen = [o for s, o in self.batch_observations.get(coin, ()) if s != source]
        if stored := self.market.get((source, asset, coin)):
            seen.append(stored)
        return min(
            seen,
            key=lambda o: abs((o.observed_at - mine.observed_at).total_seconds()),
            default=None,
        )

    def _remember(self, row: dict[str, object], coin: str) -> None:
        """A decided asset is a candidate for the batch's assets of later sources."""
        source, asset = str(row["source"]), str(row["source_asset_id"])
        self.coin_of[(source, asset)] = coin
        entry = (source, asset, coin, str(row["name"]), str(row["match_key"]))
        self.by_symbol[str(row["symbol_key"])].append(entry)
        self.batch_observations[coin].append((source, _observation(row)))

    def _candidates(self, row: dict[str, object]) -> list[Candidate]:
        source, asset = str(row["source"]), str(row["source_asset_id"])
        mine = _observation(row)
        my_contracts = self.contracts_of.get((source, asset), set())
        coins_by_contract: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for contract in sorted(my_contracts):
            for holder in sorted(self.holders[contract]):
                if holder[0] != source and holder in self.coin_of:
                    coins_by_contract[self.known.canonical(self.coin_of[holder])].append(contract)
        out = []
        for coin in sorted(self._candidate_coins(row)):
            if (source, asset, coin) in self.evidence.rejected:
                continue
            market = compare_markets(mine, self._nearest(source, asset, coin, mine))
            details: dict[str, object] = {"candidate": coin, **market.detail}
            if coin in coins_by_contract:
                out.append(_contract_candidate(coin, coins_by_contract, market, details))
                continue
            best: tuple[float, Method | None, str] = (0.0, None, "")
            if coin == self.known.canonical(str(row["natural"])):
                confidence, method = _score_names(True, 1.0, market)
                best = (confidence, method, str(row["name"]))
                details |= {"name_similarity": 1.0, "named_after": coin}
            for other, _, held_by, name, key in self.by_symbol.get(str(row["symbol_key"]), ()):
                if other == source or self.known.canonical(held_by) != coin:
                    continue
                exact = key == row["match_key"]
                similarity = 1.0 if exact else name_similarity(str(row["name"]), name)
                confidence, method = _score_names(exact, similarity, market)
                if method and confidence > best[0]:
                    best = (confidence, method, name)
                    details |= {"name_similarity": similarity, "candidate_name": name}
            confidence, method, _ = best
            if method is None:
                continue
            theirs = {
                c for (s, a), cs in self.contracts_of.items() for c in cs
                if s != source and self.coin_of.get((s, a)) is not None
                and self.known.canonical(self.coin_of[(s, a)]) == coin
            }  # fmt: skip
            mine_chains = {chain for chain, _ in my_contracts}
            if any(chain in mine_chains for chain, _ in theirs):
                confidence = min(confidence, 0.5)
                details["contracts"] = "different addresses on the same chain"
            out.append(Candidate(coin, round(confidence, 4), method, details))
        return sorted(out, key=lambda c: (-c.confidence, c.coin_id))

    def decide(self, sticky_rows: pl.DataFrame) -> Resolution:
        mappings: list[dict[str, object]] = []
        new_coins: list[dict[str, object]] = []
        review: list[dict[str, object]] = []
        for row in self.fresh.iter_rows(named=True):
            source, asset = str(row["source"]), str(row["source_asset_id"])
            facts: dict[str, object] = {
                "symbol": row["symbol"], "name": row["name"], "match_key": row["match_key"]
            }  # fmt: skip
            coin, method, confidence, queued = self._decide_one(row, facts)
            decided_by = row["first_run"] or self.run_id
            if coin not in self.known.taken:
                new_coins.append(
                    {
                        "coin_id": coin,
                        "symbol": row["symbol"],
                        "name": row["name"],
                        "first_seen_at": row["first_seen_at"],
                        "created_by_run": decided_by,
                    }
                )
                self.known.taken.add(coin)
            self.known.sources_of[coin].add(source)
            self._remember(row, coin)
            for candidate in queued:
                review.append(
                    {
                        "source": source,
                        "source_asset_id": asset,
                        "candidate_coin_id": candidate.coin_id,
                        "coin_id": coin,
                        "method": candidate.method,
                        "confidence": candidate.confidence,
                        "evidence": json.dumps(candidate.evidence, sort_keys=True, default=str),
                        "status": "pending",
                        "proposed_by_run": decided_by,
                        "proposed_at": self.now or row["last_seen_at"],
                    }
                )
            mappings.append(
                {
                    "source": source,
                    "source_asset_id": asset,
                    "coin_id": coin,
                    "symbol": row["symbol"],
                    "name": row["name"],
                    "match_key": row["match_key"],
                    "method": method,
                    "confidence": confidence,
                    "evidence": json.dumps(facts, ensure_ascii=False, sort_keys=True, default=str),
                    "first_seen_at": row["first_seen_at"],
                    "last_seen_at": row["last_seen_at"],
                    "last_snapshot_at": None,
                    "decided_by_run": decided_by,
                }
            )
        decided = pl.DataFrame(mappings, schema=COIN_SOURCE_IDS)
        return Resolution(
            mappings=pl.concat([sticky_rows, decided]),
            new_coins=pl.DataFrame(new_coins, schema=COINS),
            review=pl.DataFrame(review, schema=RESOLUTION_REVIEW),
        )

    def _decide_one(
        self, row: dict[str, object], facts: dict[str, object]
    ) -> tuple[str, Method, float, list[Candidate]]:
        source, asset = str(row["source"]), str(row["source_asset_id"])
        if override := self.evidence.overrides.get((source, asset)):
            facts |= {"override_line": override.line, "note": override.note}
            return self.known.canonical(override.coin_id), "override", 1.0, []
        if accepted := self.evidence.accepted.get((source, asset)):
            facts["decision_id"] = accepted[1]
            return self.known.canonical(accepted[0]), "operator", 1.0, []
        candidates = [
            c for c in self._candidates(row)
            if c.confidence >= REVIEW_THRESHOLD and self.known.free_for(c.coin_id, source)
        ]  # fmt: skip
        facts["candidates"] = [
            {"coin_id": c.coin_id, "method": c.method, "confidence": c.confidence}
            for c in candidates[:5]
        ]
        best = candidates[0] if candidates else None
        # Only a rival of the same kind of evidence makes a link ambiguous: a contract outranks
        # names however similar.
        rivals = [c.confidence for c in candidates[1:] if best and c.method == best.method]
        runner_up = rivals[0] if rivals else 0.0
        twin = (source, row["match_key"]) in self.twins and best and best.method != "contract"
        if best and best.confidence >= LINK_THRESHOLD and not twin:
            if best.confidence - runner_up >= AMBIGUITY_MARGIN or runner_up < LINK_THRESHOLD:
                facts |= best.evidence
                return best.coin_id, best.method, best.confidence, []
            facts["ambiguous"] = True
        coin = self.known.found_id(str(row["natural"]), source, asset)
        confidence = round(1.0 - best.confidence, 4) if best else 1.0
        return coin, "new", confidence, candidates


def _observation(row: Mapping[str, object]) -> Observation:
    at, price, cap, rank = row["compared_at"], row["price"], row["market_cap"], row["rank"]
    assert isinstance(at, datetime)
    return Observation(
        at,
        float(price) if isinstance(price, float | int) else 0.0,
        float(cap) if isinstance(cap, float | int) else None,
        int(rank) if isinstance(rank, int) else None,
    )


def _contract_candidate(
    coin: str,
    coins_by_contract: Mapping[str, list[tuple[str, str]]],
    market: MarketComparison,
    details: dict[str, object],
) -> Candidate:
    chain, address = coins_by_contract[coin][0]
    price_difference = market.detail.get("price_difference")
    if len(coins_by_contract) > 1:
        confidence, why = 0.7, "the contract belongs to several coins"
    elif isinstance(price_difference, float) and price_difference > 0.5:
        confidence, why = 0.6, "same contract, but the prices differ by over 50%"
    else:
        confidence, why = 0.99, "same contract address on the same chain"
    return Candidate(
        coin, confidence, "contract", details | {"chain": chain, "address": address, "why": why}
    )


def _warn_ignored_overrides(
    sticky: pl.DataFrame, overrides: Mapping[tuple[str, str], Override]
) -> None:
    for source, asset, coin in sticky.select("source", "source_asset_id", "coin_id").iter_rows():
        override = overrides.get((source, asset))
        if override and override.coin_id != coin:
            logger.warning(
                "override %s/%s -> %s ignored: the asset is already mapped to %s and mappings "
                "are sticky", source, asset, override.coin_id, coin,
            )  # fmt: skip
