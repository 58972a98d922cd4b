"""Deciding the coin of each of a batch's assets from the evidence (see :mod:`flows.resolution`
for the rules)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import polars as pl

from flows.resolution.curated import Crosswalk, Override
from flows.resolution.market import (
    MarketComparison,
    MarketLookup,
    Observation,
    compare_markets,
)
from flows.resolution.names import (
    KEY_SEPARATOR,
    NAME_SIMILAR,
    _name_tokens,
    _similar,
    match_key,
    name_similarity,
    natural_coin_id,
)
from flows.sources import SOURCE_NAMES
from store.resolution import MARKET_LOOKUP
from store.schema import (
    ASSET_CONTRACTS,
    COIN_SOURCE_IDS,
    COINS,
    RESOLUTION_REVIEW,
    UTC_TIME,
    suffixed_coin_id,
)

logger = logging.getLogger(__name__)

LINK_THRESHOLD = 0.9
REVIEW_THRESHOLD = 0.3
AMBIGUITY_MARGIN = 0.05
SYMBOL_ONLY_MAX = 3
"""A symbol shared by more coins than this proposes none of them on the symbol alone."""
SOURCE_ORDER = {name: i for i, name in enumerate(SOURCE_NAMES)}

Method = Literal[
    "sticky", "override", "operator", "crosswalk", "contract", "symbol_name_market",
    "name_similarity_market", "new",
]  # fmt: skip


@dataclass(frozen=True)
class Evidence:
    """What the warehouse knows that bears on a batch's new assets."""

    stored_mappings: pl.DataFrame
    """(source, source_asset_id, coin_id, symbol, name, match_key) of every mapped asset."""
    stored_coin_ids: frozenset[str]
    """Read only when the batch holds a new asset (nothing else needs them)."""
    overrides: Mapping[tuple[str, str], Override] = field(default_factory=dict)
    crosswalk: Crosswalk = field(default_factory=dict)
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
class _Lead:
    """Why a coin is on an asset's shortlist."""

    contracts: list[tuple[str, str]]
    """(chain, address) the asset shares with the coin."""
    identical: bool = False
    similarity: float = 0.0
    name: str | None = None
    """The most similar name among the coin's assets."""


_SMALL_BLOCK = 4 * SYMBOL_ONLY_MAX
_Entry = tuple[str, str, str, str, str]
"""(source, source_asset_id, coin_id, name, match_key) of a mapped asset."""


@dataclass
class _Block:
    """The mapped assets sharing a normalised symbol, indexed by name: a similar name shares a
    word or its first four letters (words run together) with the name it resembles."""

    entries: list[_Entry] = field(default_factory=list)
    index: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, entry: _Entry) -> None:
        for token in _name_tokens(entry[3]):
            self.index[token].append(len(self.entries))
        self.entries.append(entry)

    def near(self, name: str) -> list[_Entry]:
        """Every entry of a small block (a renamed asset may share no word with its old name);
        of a large one, those sharing a name token."""
        if len(self.entries) <= _SMALL_BLOCK:
            return self.entries
        found = {i for token in _name_tokens(name) for i in self.index.get(token, ())}
        return [self.entries[i] for i in sorted(found)]


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
        return suffixed_coin_id(natural, source, asset)


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
    # A known asset keeps its coin; its match key follows its current symbol and name, so a
    # renamed ticker still finds the coin by its new symbol.
    sticky = assets.join(stored.select(*link, "coin_id"), on=link, how="inner")
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
            match_key=pl.struct("symbol", "name").map_elements(
                lambda a: match_key(a["symbol"], a["name"]), return_dtype=pl.String()
            ),
            _order=pl.col("source").replace_strict(SOURCE_ORDER, default=len(SOURCE_ORDER)),
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
            natural=pl.struct("symbol", "name").map_elements(
                lambda a: natural_coin_id(a["symbol"], a["name"]), return_dtype=pl.String()
            ),
            symbol_key=pl.col("match_key").str.split(KEY_SEPARATOR).list.first(),
        )
        twins = self.fresh.group_by("source", "match_key").len().filter(pl.col("len") > 1)
        self.twins = {(s, k) for s, k, _ in twins.iter_rows()}
        """(source, match key) of new assets a source lists twice: whichever came first would
        win a coin both match, so neither links on names."""
        self.known = _Known(taken=set(evidence.stored_coin_ids), aliases=evidence.aliases)
        for source, coin in stored.select("source", "coin_id").iter_rows():
            self.known.sources_of[coin].add(source)
        # Assets of other sources a new asset could be: same symbol, or same contract.
        symbol_keys = self.fresh["symbol_key"].unique().implode()
        self.by_symbol: dict[str, _Block] = defaultdict(_Block)
        for source, asset, coin, _, name, key in (
            stored.filter(
                pl.col("match_key").str.split(KEY_SEPARATOR).list.first().is_in(symbol_keys)
            )
            .sort("source", "source_asset_id")
            .iter_rows()
        ):
            self.by_symbol[key.split(KEY_SEPARATOR)[0]].add((source, asset, coin, name, key))
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
        self.shared = {
            contract
            for contract, holders in self.holders.items()
            if len(holders) > len({source for source, _ in holders})
        }
        """Addresses one source publishes for two of its assets (listed or not): no proof."""
        self.coin_contracts: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for (source, asset), coin in self.coin_of.items():
            self.coin_contracts[self.known.canonical(coin)] |= self.contracts_of.get(
                (source, asset), set()
            )
        self.market = self._market()
        self.batch_observations: dict[str, list[tuple[str, Observation]]] = defaultdict(list)
        """Coin -> (source, observation) of the batch's assets decided so far."""

    def _shortlist(self, row: Mapping[str, object]) -> dict[str, _Lead]:
        """The coins worth a market comparison, with what points to each: a shared contract,
        identical or similar names (the coin named after the asset counts as identical), or the
        symbol alone when at most :data:`SYMBOL_ONLY_MAX` coins share it (a renamed asset)."""
        source, asset = str(row["source"]), str(row["source_asset_id"])
        name, key = str(row["name"]), str(row["match_key"])
        leads: dict[str, _Lead] = {}
        for contract in sorted(self.contracts_of.get((source, asset), ())):
            for holder in sorted(self.holders[contract]):
                if holder[0] != source and holder in self.coin_of:
                    coin = self.known.canonical(self.coin_of[holder])
                    lead = leads.setdefault(coin, _Lead(contracts=[]))
                    lead.contracts.append(contract)
        symbol_only: set[str] = set()
        block = self.by_symbol.get(str(row["symbol_key"]))
        for other, _, held_by, their_name, their_key in block.near(name) if block else ():
            if other == source:
                continue
            coin = self.known.canonical(held_by)
            if their_key != key and not _similar(name, their_name):
                symbol_only.add(coin)
                continue
            similarity = 1.0 if their_key == key else name_similarity(name, their_name)
            lead = leads.setdefault(coin, _Lead(contracts=[]))
            if similarity > lead.similarity or (their_key == key and not lead.identical):
                lead.similarity, lead.identical, lead.name = (
                    similarity,
                    their_key == key,
                    their_name,
                )
        if (natural := self.known.canonical(str(row["natural"]))) in self.known.taken:
            lead = leads.setdefault(natural, _Lead(contracts=[]))
            lead.similarity, lead.identical, lead.name = 1.0, True, name
        symbol_only -= leads.keys()
        if len(symbol_only) <= SYMBOL_ONLY_MAX:
            for coin in symbol_only:
                leads[coin] = _Lead(contracts=[])
        return leads

    def _market(self) -> dict[tuple[str, str, str], Observation]:
        pairs = [
            (row["source"], row["source_asset_id"], coin, row["compared_at"])
            for row in self.fresh.iter_rows(named=True)
            for coin in sorted(self._shortlist(row).keys() | self._crosswalk_coins(row))
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
        self.by_symbol[str(row["symbol_key"])].add(entry)
        self.batch_observations[coin].append((source, _observation(row)))
        self.coin_contracts[coin] |= self.contracts_of.get((source, asset), set())

    def _crosswalk_coins(self, row: Mapping[str, object]) -> set[str]:
        named = self.evidence.crosswalk.get((str(row["source"]), str(row["source_asset_id"])), ())
        return {
            self.known.canonical(self.coin_of[other]) for other in named if other in self.coin_of
        }

    def _crosswalk(self, row: dict[str, object]) -> Candidate | None:
        """The coin the crosswalk names for the asset, when it names exactly one it may join."""
        source, asset = str(row["source"]), str(row["source_asset_id"])
        named = self.evidence.crosswalk.get((source, asset), frozenset())
        coins = self._crosswalk_coins(row)
        if len(coins) != 1:
            return None
        (coin,) = coins
        if not self.known.free_for(coin, source) or (source, asset, coin) in self.evidence.rejected:
            return None
        mine = _observation(row)
        market = compare_markets(mine, self._nearest(source, asset, coin, mine))
        difference = market.detail.get("price_difference")
        confidence = 0.6 if isinstance(difference, float) and difference > 0.5 else 0.98
        ids = [f"{s}/{a}" for s, a in sorted(named)]
        return Candidate(coin, confidence, "crosswalk", {"crosswalk": ids, **market.detail})

    def _candidates(self, row: dict[str, object]) -> list[Candidate]:
        source, asset = str(row["source"]), str(row["source_asset_id"])
        mine = _observation(row)
        my_contracts = self.contracts_of.get((source, asset), set())
        my_chains = {chain for chain, _ in my_contracts}
        leads = self._shortlist(row)
        by_contract = sorted(coin for coin, lead in leads.items() if lead.contracts)
        out = []
        for coin, lead in sorted(leads.items()):
            if (source, asset, coin) in self.evidence.rejected:
                continue
            market = compare_markets(mine, self._nearest(source, asset, coin, mine))
            details: dict[str, object] = {"candidate": coin, **market.detail}
            by_address: Candidate | None = None
            if lead.contracts:
                ambiguous = len(by_contract) > 1 or any(c in self.shared for c in lead.contracts)
                by_address = _contract_candidate(
                    coin, lead.contracts[0], ambiguous, market, details
                )
            confidence, method = _score_names(lead.identical, lead.similarity, market)
            if by_address and (method is None or by_address.confidence >= confidence):
                # An address shared by several coins proves nothing: the names may still.
                out.append(by_address)
                continue
            if method is None:
                continue
            if lead.name is not None:
                details |= {"name_similarity": lead.similarity, "candidate_name": lead.name}
            theirs = self.coin_contracts.get(coin, set())
            if any(
                chain in my_chains and (chain, address) not in my_contracts
                for chain, address in theirs
            ) and not (theirs & my_contracts):
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
        crossed = self._crosswalk(row)
        if crossed and crossed.confidence >= LINK_THRESHOLD:
            facts |= crossed.evidence
            return crossed.coin_id, "crosswalk", crossed.confidence, []
        candidates = sorted(
            [
                c for c in self._candidates(row)
                if c.confidence >= REVIEW_THRESHOLD and self.known.free_for(c.coin_id, source)
            ] + ([crossed] if crossed else []),
            key=lambda c: (-c.confidence, c.coin_id),
        )  # fmt: skip
        facts["candidates"] = [
            {"coin_id": c.coin_id, "method": c.method, "confidence": c.confidence}
            for c in candidates[:5]
        ]
        best = candidates[0] if candidates else None
        if best and best.confidence >= LINK_THRESHOLD:
            # A rival with the same kind of evidence (a contract outranks names however
            # similar) within the margin, or a twin of this asset in its source, is ambiguous.
            kind = best.method == "contract"
            rival = any(
                (c.method == "contract") == kind
                and best.confidence - c.confidence < AMBIGUITY_MARGIN
                for c in candidates[1:]
            )
            twin = not kind and (source, row["match_key"]) in self.twins
            if not rival and not twin:
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
    contract: tuple[str, str],
    ambiguous: bool,
    market: MarketComparison,
    details: dict[str, object],
) -> Candidate:
    chain, address = contract
    price_difference = market.detail.get("price_difference")
    if ambiguous:
        confidence, why = 0.7, "the address belongs to several coins or assets"
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
    keys = pl.DataFrame(
        list(overrides),
        schema={"source": pl.String(), "source_asset_id": pl.String()},
        orient="row",
    )
    overridden = sticky.join(keys, on=["source", "source_asset_id"], how="semi")
    for source, asset, coin in overridden.select(
        "source", "source_asset_id", "coin_id"
    ).iter_rows():
        override = overrides.get((source, asset))
        if override and override.coin_id != coin:
            logger.warning(
                "override %s/%s -> %s ignored: the asset is already mapped to %s and mappings "
                "are sticky", source, asset, override.coin_id, coin,
            )  # fmt: skip
