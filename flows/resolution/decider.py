"""Deciding the coin of each of a batch's assets from the evidence (see :mod:`flows.resolution`
for the rules and :mod:`flows.resolution.scoring` for the weights).

Besides the batch's new assets, the decider looks again at two kinds of mapped assets the batch
brings back: one waiting in review (the evidence may now clear the bar: the asset's coin is
merged into the candidate, a :class:`store.resolution.ResolverMerge`), and one linked on names
and ids alone (a market that now contradicts the link sends it back to review; it is never split
silently).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import polars as pl

from flows.resolution.candidates import AssetRow, Lead
from flows.resolution.curated import Crosswalk, Override
from flows.resolution.market import (
    MarketComparison,
    MarketLookup,
    Observation,
    compare_markets,
)
from flows.resolution.names import (
    match_key,
)
from flows.resolution.scoring import score
from flows.resolution.shortlist import Shortlist
from flows.sources import SOURCE_NAMES
from store.resolution import CONTRADICTED, MARKET_LOOKUP, PENDING_REVIEW, ResolverMerge
from store.schema import (
    ASSET_CONTRACTS,
    COIN_SOURCE_IDS,
    COINS,
    RESOLUTION_REVIEW,
    UTC_TIME,
)

logger = logging.getLogger(__name__)

LINK_THRESHOLD = 0.9
REVIEW_THRESHOLD = 0.3
AMBIGUITY_MARGIN = 0.05
SYMBOL_DIFFERS_CAP = 0.8
"""A coin found through the ids alone, under an unrelated symbol (not one holding the other),
waits for review unless the market agrees, one asset's id records the other's ticker
(``names.listed_ticker``), the ids show a rename, or the identical names are borne by no other
asset of either source: names reused by another project under another ticker (HLM's Helium and
HNT's, beside Helium IOT and Helium Mobile) look exactly like a ticker that changed (GNT and
GLM's Golem). The same cap holds a link through an id its source re-minted at a
migration (``names.reminted_from``) without a market that agrees."""
SOURCE_ORDER = {name: i for i, name in enumerate(SOURCE_NAMES)}

Method = Literal[
    "sticky", "override", "operator", "crosswalk", "contract", "symbol_name_market",
    "name_similarity_market", "names_ids", "symbol_market", "new",
]  # fmt: skip
WEAK_METHODS = frozenset({"names_ids"})
"""Links no market confirmed: a market that later contradicts one sends it back to review."""


@dataclass(frozen=True)
class Evidence:
    """What the warehouse knows that bears on a batch's assets."""

    stored_mappings: pl.DataFrame
    """(source, source_asset_id, coin_id, symbol, name, match_key, method) of every mapped
    asset (``method`` may be left out: then no stored link counts as weak)."""
    stored_coin_ids: frozenset[str]
    """Read only when the batch holds an asset to decide (nothing else needs them)."""
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
    pending_review: pl.DataFrame = field(default_factory=PENDING_REVIEW.to_frame)
    """:data:`store.resolution.PENDING_REVIEW` rows of the batch's mapped assets: looked at
    again."""


@dataclass(frozen=True)
class Candidate:
    coin_id: str
    confidence: float
    method: Method
    evidence: dict[str, object]


@dataclass(frozen=True)
class Resolution:
    mappings: pl.DataFrame
    """:data:`store.schema.COIN_SOURCE_IDS` rows for every asset of the batch (stored ones carry
    their stored coin, or the coin a relink merged it into; the loader only widens their seen
    range)."""
    new_coins: pl.DataFrame
    """:data:`store.schema.COINS` rows for coins founded by this batch."""
    review: pl.DataFrame = field(default_factory=RESOLUTION_REVIEW.to_frame)
    """:data:`store.schema.RESOLUTION_REVIEW` rows: candidates left for an operator."""
    relinks: tuple[ResolverMerge, ...] = ()
    """Mapped assets waiting in review whose evidence now clears the bar: their coins merge
    into the candidates (the loader applies them first)."""
    reopened: pl.DataFrame = field(default_factory=RESOLUTION_REVIEW.to_frame)
    """Review rows for weak links a market now contradicts (candidate = the asset's coin)."""

    def decisions(self) -> dict[str, int]:
        counts = self.mappings.group_by("method").len()
        return dict(zip(counts["method"].to_list(), counts["len"].to_list(), strict=True))


def resolve(
    quotes: pl.DataFrame,
    evidence: Evidence,
    *,
    run_id: str,
    now: datetime | None = None,
) -> Resolution:
    """Decide a coin for every distinct (source, source_asset_id) in ``quotes``."""
    return resolve_assets(asset_rows(quotes), evidence, run_id=run_id, now=now)


def resolve_assets(
    assets: pl.DataFrame,
    evidence: Evidence,
    *,
    run_id: str,
    now: datetime | None = None,
) -> Resolution:
    """:func:`resolve` over the :func:`asset_rows` of the quotes: a batch loaded in parts
    gathers each part's, as every row of an asset is in one part."""
    link = ["source", "source_asset_id"]
    stored = evidence.stored_mappings
    if "method" not in stored.columns:
        stored = stored.with_columns(method=pl.lit("sticky"))
    stored = stored.select(*link, "coin_id", "symbol", "name", "match_key", "method")
    # A known asset keeps its coin; its match key follows its current symbol and name, so a
    # renamed ticker still finds the coin by its new symbol.
    sticky = assets.join(stored.select(*link, "coin_id", "method"), on=link, how="inner")
    _warn_ignored_overrides(sticky, evidence.overrides)
    fresh = assets.join(stored, on=link, how="anti").sort("_order", "source_asset_id")
    pending = sticky.join(evidence.pending_review.select(link).unique(), on=link, how="semi")
    weak = sticky.filter(pl.col("method").is_in(WEAK_METHODS)).join(pending, on=link, how="anti")
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
    if fresh.is_empty() and pending.is_empty() and (weak.is_empty() or evidence.market is None):
        return Resolution(sticky_rows, COINS.to_frame())
    fresh_rows, pending_rows, weak_rows = (
        [AssetRow.of(r) for r in frame.sort("_order", "source_asset_id").iter_rows(named=True)]
        for frame in (fresh, pending, weak)
    )
    decider = _Decider(
        [*fresh_rows, *pending_rows, *weak_rows], stored, evidence, run_id=run_id, now=now
    )
    relinks = decider.reexamine(pending_rows)
    reopened = decider.recheck(weak_rows)
    if relinks:
        sticky_rows = sticky_rows.with_columns(
            coin_id=pl.col("coin_id").map_elements(
                decider.known.canonical, return_dtype=pl.String()
            )
        )
    decided = decider.decide(fresh_rows)
    return Resolution(
        mappings=pl.concat([sticky_rows, decided.mappings]),
        new_coins=decided.new_coins,
        review=decided.review,
        relinks=tuple(relinks),
        reopened=reopened,
    )


def asset_rows(quotes: pl.DataFrame) -> pl.DataFrame:
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


@dataclass(frozen=True)
class _Decided:
    mappings: pl.DataFrame
    new_coins: pl.DataFrame
    review: pl.DataFrame


class _Decider(Shortlist):
    def __init__(
        self,
        subjects: list[AssetRow],
        stored: pl.DataFrame,
        evidence: Evidence,
        *,
        run_id: str,
        now: datetime | None,
    ) -> None:
        super().__init__(
            subjects,
            stored,
            coin_ids=evidence.stored_coin_ids,
            aliases=evidence.aliases,
            contracts=evidence.contracts,
        )
        self.evidence = evidence
        self.run_id = run_id
        self.now = now
        self.pending = set(evidence.pending_review.select("source", "source_asset_id").iter_rows())
        self.market = self._market(subjects)
        self.batch_observations: dict[str, list[tuple[str, Observation]]] = defaultdict(list)
        """Coin -> (source, observation) of the batch's assets decided so far."""

    def _market(self, subjects: Iterable[AssetRow]) -> dict[tuple[str, str, str], Observation]:
        pairs = [
            (row.source, row.asset, coin, row.observation.observed_at)
            for row in subjects
            for coin in sorted(self._lookups(row))
        ]
        if not pairs or self.evidence.market is None:
            return {}
        found = self.evidence.market(pl.DataFrame(pairs, schema=MARKET_LOOKUP, orient="row"))
        return {
            (source, asset, coin): Observation(at, price, cap, rank)
            for source, asset, coin, _, at, price, cap, rank in found.iter_rows()
            if price is not None and price > 0
        }

    def _lookups(self, row: AssetRow) -> set[str]:
        """The coins whose quotes bear on the asset: its shortlist and what a crosswalk names;
        for a weak link, only its own coin (it is checked against nothing else)."""
        key = (row.source, row.asset)
        if key in self.coin_of and key not in self.pending:
            return {self.known.canonical(self.coin_of[key])}
        return self.leads(row).keys() | self._crosswalk_coins(row)

    def _nearest(self, row: AssetRow, coin: str) -> Observation | None:
        """The candidate coin's observation nearest to the asset's: stored, or of the batch."""
        mine = row.observation
        seen = [o for s, o in self.batch_observations.get(coin, ()) if s != row.source]
        if stored := self.market.get((row.source, row.asset, coin)):
            seen.append(stored)
        return min(
            seen,
            key=lambda o: abs((o.observed_at - mine.observed_at).total_seconds()),
            default=None,
        )

    def _remember(self, row: AssetRow, coin: str) -> None:
        """A decided asset is a candidate for the batch's assets of later sources."""
        self.remember(row, coin)
        self.batch_observations[coin].append((row.source, row.observation))

    def _crosswalk_coins(self, row: AssetRow) -> set[str]:
        named = self.evidence.crosswalk.get((row.source, row.asset), ())
        return {
            self.known.canonical(self.coin_of[other]) for other in named if other in self.coin_of
        }

    def _crosswalk(self, row: AssetRow) -> Candidate | None:
        """The coin the crosswalk names for the asset, when it names exactly one it may join."""
        named = self.evidence.crosswalk.get((row.source, row.asset), frozenset())
        coins = self._crosswalk_coins(row)
        if len(coins) != 1:
            return None
        (coin,) = coins
        if (
            not self.known.free_for(coin, row.source)
            or (row.source, row.asset, coin) in self.evidence.rejected
        ):
            return None
        market = compare_markets(row.observation, self._nearest(row, coin))
        confidence = 0.6 if market.verdict == "contradicts" else 0.98
        ids = [f"{s}/{a}" for s, a in sorted(named)]
        return Candidate(coin, confidence, "crosswalk", {"crosswalk": ids, **market.detail})

    # --- weighing ------------------------------------------------------------------------------

    def _candidates(self, row: AssetRow, *, exclude: str | None = None) -> list[Candidate]:
        my_contracts = self.contracts_of.get((row.source, row.asset), set())
        my_chains = {chain for chain, _ in my_contracts}
        leads = self.leads(row)
        by_contract = sorted(coin for coin, lead in leads.items() if lead.contracts)
        out = []
        for coin, lead in sorted(leads.items()):
            if coin == exclude or (row.source, row.asset, coin) in self.evidence.rejected:
                continue
            market = compare_markets(row.observation, self._nearest(row, coin))
            details: dict[str, object] = {"candidate": coin, **market.detail}
            by_address: Candidate | None = None
            if lead.contracts:
                ambiguous = len(by_contract) > 1 or any(c in self.shared for c in lead.contracts)
                by_address = _contract_candidate(
                    coin, lead.contracts[0], ambiguous, market, details
                )
            scored = score(
                names=lead.names,
                ids=lead.ids,
                unique=self._unique(row, leads, lead),
                market=market,
                namesake=lead.namesake is not None and lead.ids is None,
            )
            if by_address and (scored is None or by_address.confidence >= scored.confidence):
                # An address shared by several coins proves nothing: the names may still.
                out.append(by_address)
                continue
            if scored is None:
                continue
            details |= scored.explained()
            if lead.name is not None:
                details |= {"name_similarity": lead.similarity, "candidate_name": lead.name}
            if lead.ids is not None:
                details |= {"ids": lead.ids, "shared_slug": lead.slug}
            elif lead.namesake is not None:
                details["later_namesake_of"] = lead.namesake
            confidence = scored.confidence
            if lead.symbol_differs or lead.renamed or lead.listed_as:
                capped, details["symbol"] = _symbol_differs(lead, market)
                if capped:
                    confidence = min(confidence, SYMBOL_DIFFERS_CAP)
            if lead.reminted and market.verdict != "agrees":
                # The source moved the id (and name) to a migrated token's new listing: an
                # asset another source listed under them may be the old token or the new.
                confidence = min(confidence, SYMBOL_DIFFERS_CAP)
                details["migration"] = "the id was re-minted for a new token: no market to tell"
            theirs = self.coin_contracts.get(coin, set())
            if any(
                chain in my_chains and (chain, address) not in my_contracts
                for chain, address in theirs
            ) and not (theirs & my_contracts):
                confidence = min(confidence, 0.5)
                details["contracts"] = "different addresses on the same chain"
            out.append(Candidate(coin, round(confidence, 4), scored.method, details))
        return sorted(out, key=lambda c: (-c.confidence, c.coin_id))

    def _choose(self, row: AssetRow, candidates: list[Candidate]) -> Candidate | None:
        """The best candidate, if it clears the bar alone: no rival with the same kind of
        evidence (a contract outranks names however similar) within the margin, and no twin of
        the asset in its source unless the ids tell the twins apart."""
        best = candidates[0] if candidates else None
        if best is None or best.confidence < LINK_THRESHOLD:
            return None
        kind = best.method == "contract"
        rival = any(
            (c.method == "contract") == kind and best.confidence - c.confidence < AMBIGUITY_MARGIN
            for c in candidates[1:]
        )
        twin = (
            not kind
            and (row.source, row.key) in self.twins
            and best.evidence.get("ids") not in ("exact", "joined")
        )
        return None if rival or twin else best

    # --- deciding ------------------------------------------------------------------------------

    def reexamine(self, rows: list[AssetRow]) -> list[ResolverMerge]:
        """Mapped assets waiting in review whose evidence now clears the bar: their coin merges
        into the candidate, when no source holds an asset in both."""
        relinks = []
        pending: dict[tuple[str, str], set[str]] = defaultdict(set)
        for source, asset, candidate in self.evidence.pending_review.iter_rows():
            pending[(source, asset)].add(self.known.canonical(candidate))
        for row in rows:
            current = self.known.canonical(self.coin_of[(row.source, row.asset)])
            candidates = [
                c
                for c in self._candidates(row, exclude=current)
                if c.confidence >= REVIEW_THRESHOLD and self.known.free_for(c.coin_id, row.source)
            ]
            best = self._choose(row, candidates)
            if (
                best is None
                or best.coin_id not in pending[(row.source, row.asset)]
                or self.known.sources_of[current] & self.known.sources_of[best.coin_id]
            ):
                continue
            facts = {
                "relinked_from": current,
                "why": "the evidence now clears the bar",
                **best.evidence,
            }
            relinks.append(
                ResolverMerge(
                    source=row.source,
                    source_asset_id=row.asset,
                    coin_id=best.coin_id,
                    other_coin_id=current,
                    method=best.method,
                    confidence=best.confidence,
                    evidence=json.dumps(facts, ensure_ascii=False, sort_keys=True, default=str),
                )
            )
            self.known.aliases[current] = best.coin_id
            self.known.sources_of[best.coin_id] |= self.known.sources_of.pop(current, set())
            self.coin_contracts[best.coin_id] |= self.coin_contracts.pop(current, set())
        return relinks

    def recheck(self, rows: list[AssetRow]) -> pl.DataFrame:
        """Weak links (:data:`WEAK_METHODS`) a market now contradicts: back to review."""
        reopened = []
        for row in rows:
            coin = self.known.canonical(self.coin_of[(row.source, row.asset)])
            market = compare_markets(row.observation, self._nearest(row, coin))
            if market.verdict != "contradicts":
                continue
            reopened.append(
                {
                    "source": row.source,
                    "source_asset_id": row.asset,
                    "candidate_coin_id": coin,
                    "coin_id": coin,
                    "method": CONTRADICTED,
                    "confidence": 0.4,
                    "evidence": json.dumps(
                        {"why": "a market now contradicts this link", **market.detail},
                        sort_keys=True,
                        default=str,
                    ),
                    "status": "pending",
                    "proposed_by_run": self.run_id,
                    "proposed_at": self.now or row.last_seen_at,
                }
            )
        return pl.DataFrame(reopened, schema=RESOLUTION_REVIEW)

    def decide(self, rows: list[AssetRow]) -> _Decided:
        mappings: list[dict[str, object]] = []
        new_coins: list[dict[str, object]] = []
        review: list[dict[str, object]] = []
        for row in rows:
            facts: dict[str, object] = {
                "symbol": row.symbol,
                "name": row.name,
                "match_key": row.key,
            }
            coin, method, confidence, queued = self._decide_one(row, facts)
            decided_by = row.decided_by or self.run_id
            if coin not in self.known.taken:
                new_coins.append(
                    {
                        "coin_id": coin,
                        "symbol": row.symbol,
                        "name": row.name,
                        "first_seen_at": row.first_seen_at,
                        "created_by_run": decided_by,
                    }
                )
                self.known.taken.add(coin)
            self.known.sources_of[coin].add(row.source)
            self._remember(row, coin)
            review.extend(
                {
                    "source": row.source,
                    "source_asset_id": row.asset,
                    "candidate_coin_id": candidate.coin_id,
                    "coin_id": coin,
                    "method": candidate.method,
                    "confidence": candidate.confidence,
                    "evidence": json.dumps(candidate.evidence, sort_keys=True, default=str),
                    "status": "pending",
                    "proposed_by_run": decided_by,
                    "proposed_at": self.now or row.last_seen_at,
                }
                for candidate in queued
            )
            mappings.append(
                {
                    "source": row.source,
                    "source_asset_id": row.asset,
                    "coin_id": coin,
                    "symbol": row.symbol,
                    "name": row.name,
                    "match_key": row.key,
                    "method": method,
                    "confidence": confidence,
                    "evidence": json.dumps(facts, ensure_ascii=False, sort_keys=True, default=str),
                    "first_seen_at": row.first_seen_at,
                    "last_seen_at": row.last_seen_at,
                    "last_snapshot_at": None,
                    "decided_by_run": decided_by,
                }
            )
        return _Decided(
            mappings=pl.DataFrame(mappings, schema=COIN_SOURCE_IDS),
            new_coins=pl.DataFrame(new_coins, schema=COINS),
            review=pl.DataFrame(review, schema=RESOLUTION_REVIEW),
        )

    def _decide_one(
        self, row: AssetRow, facts: dict[str, object]
    ) -> tuple[str, Method, float, list[Candidate]]:
        if override := self.evidence.overrides.get((row.source, row.asset)):
            facts |= {"override_line": override.line, "note": override.note}
            return self.known.canonical(override.coin_id), "override", 1.0, []
        if accepted := self.evidence.accepted.get((row.source, row.asset)):
            facts["decision_id"] = accepted[1]
            return self.known.canonical(accepted[0]), "operator", 1.0, []
        crossed = self._crosswalk(row)
        if crossed and crossed.confidence >= LINK_THRESHOLD:
            facts |= crossed.evidence
            return crossed.coin_id, "crosswalk", crossed.confidence, []
        candidates = _best_per_coin(
            [
                c for c in self._candidates(row)
                if c.confidence >= REVIEW_THRESHOLD and self.known.free_for(c.coin_id, row.source)
            ] + ([crossed] if crossed else [])
        )  # fmt: skip
        facts["candidates"] = [
            {"coin_id": c.coin_id, "method": c.method, "confidence": c.confidence}
            for c in candidates[:5]
        ]
        if best := self._choose(row, candidates):
            facts |= best.evidence
            return best.coin_id, best.method, best.confidence, []
        if candidates and candidates[0].confidence >= LINK_THRESHOLD:
            facts["ambiguous"] = True
        best = candidates[0] if candidates else None
        coin = self.known.found_id(row.natural, row.source, row.asset)
        confidence = round(1.0 - best.confidence, 4) if best else 1.0
        return coin, "new", confidence, candidates


def _symbol_differs(lead: Lead, market: MarketComparison) -> tuple[bool, str]:
    """Whether a coin found through the ids under another symbol is capped for review, and why:
    names reused under an unrelated ticker look exactly like a ticker that was replaced, unless
    a market at the same moment, a ticker holding the other, an id recording the other's ticker
    or a rebrand the ids name explains it, or the name is the two assets' alone (a name several
    assets bear is the kind another project reuses)."""
    if lead.renamed:
        return False, "differs: the ids name one asset's earlier name (a rebrand)"
    if lead.listed_as:
        return False, "differs: one asset's id records the other's ticker"
    if not lead.symbol_differs or lead.near_symbol or market.verdict == "agrees":
        return False, "differs: found through the ids"
    if lead.distinct_name:
        return False, "differs: the ids agree on a name no other asset of either source bears"
    return True, "differs: found through the ids, no market to confirm"


def _best_per_coin(candidates: list[Candidate]) -> list[Candidate]:
    """The strongest candidate of each coin (a crosswalk and the names may both name one),
    strongest first."""
    best: dict[str, Candidate] = {}
    for c in sorted(candidates, key=lambda c: (-c.confidence, c.coin_id, c.method)):
        best.setdefault(c.coin_id, c)
    return list(best.values())


def _contract_candidate(
    coin: str,
    contract: tuple[str, str],
    ambiguous: bool,
    market: MarketComparison,
    details: dict[str, object],
) -> Candidate:
    chain, address = contract
    if ambiguous:
        confidence, why = 0.7, "the address belongs to several coins or assets"
    elif market.verdict == "contradicts":
        confidence, why = 0.6, "same contract, but the market contradicts it"
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
