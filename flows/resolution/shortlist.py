"""What points from an asset to the coins it may be: the mapped assets indexed by symbol, by the
name slugs of their ids and by contract, as a batch is decided asset by asset (the decider's
shortlist, see :mod:`flows.resolution.decider`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import polars as pl

from flows.resolution.candidates import SYMBOL_ONLY_MAX, AssetRow, Block, Entry, Known, Lead
from flows.resolution.names import (
    KEY_SEPARATOR,
    _similar,
    bears_name,
    compare_ids,
    disambiguated,
    id_slugs,
    joined_slugs,
    listed_ticker,
    name_similarity,
    name_words,
    names_slug,
    near_symbols,
    normalise,
    reminted_from,
    same_name,
    shared_slug,
    symbol_slug,
)
from flows.resolution.scoring import NameRelation
from flows.sources import ID_STYLES


class Shortlist:
    """The mapped assets (stored, then the batch's as they are decided) and the coins that hold
    them, indexed for :meth:`leads`; the decider builds on it."""

    def __init__(
        self,
        subjects: list[AssetRow],
        stored: pl.DataFrame,
        *,
        coin_ids: frozenset[str],
        aliases: Mapping[str, str],
        contracts: pl.DataFrame,
    ) -> None:
        mapped = _keys(stored)
        fresh = [row for row in subjects if (row.source, row.asset) not in mapped]
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for row in fresh:
            counts[(row.source, row.key)] += 1
        self.twins = {key for key, n in counts.items() if n > 1}
        """(source, match key) of new assets a source lists twice: whichever came first would
        win a coin both match, so neither links on names alone."""
        self.known = Known(taken=set(coin_ids), aliases=dict(aliases))
        for source, coin in stored.select("source", "coin_id").iter_rows():
            self.known.sources_of[coin].add(source)
        # Assets of other sources a subject could be: same symbol, or same contract.
        symbol_keys = pl.Series([row.symbol_key for row in subjects], dtype=pl.String).unique()
        self.by_symbol: dict[str, Block] = defaultdict(Block)
        for source, asset, coin, symbol, name, key in (
            stored.with_columns(
                _symbol_key=pl.col("match_key").str.split(KEY_SEPARATOR).list.first()
            )
            .filter(pl.col("_symbol_key").is_in(symbol_keys.implode()))
            .sort("source", "source_asset_id")
            .select("source", "source_asset_id", "coin_id", "symbol", "name", "match_key")
            .iter_rows()
        ):
            entry = Entry(source, asset, coin, name, key, _id_slugs(source, asset, symbol))
            self.by_symbol[key.split(KEY_SEPARATOR)[0]].add(entry)
        self._stored = stored
        self._subjects = subjects
        self._by_slug: dict[str, list[Entry]] | None = None
        self._by_word: dict[str, set[tuple[str, str, str]]] | None = None
        self.coin_of = {
            (s, a): c
            for s, a, c in stored.select("source", "source_asset_id", "coin_id").iter_rows()
        }
        self.contracts_of: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        self.holders: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        for source, asset, chain, address in contracts.select(
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
        self._batch_entries: list[Entry] = []
        listed = [
            *stored.filter(pl.col("source_asset_id").str.to_lowercase().str.ends_with("-old"))
            .select("source", "source_asset_id", "name")
            .iter_rows(),
            *((row.source, row.asset, row.name) for row in subjects),
        ]
        self.reminted = {
            (source, base)
            for source, asset, name in listed
            if (base := reminted_from(asset, name)) is not None
        }
        """(source, id) of new listings that took a migrated token's id (its old listing
        re-minted as ``<id>-old``): the id is no evidence of which token another source's
        asset is."""

    # --- what points where ---------------------------------------------------------------------

    def leads(self, row: AssetRow) -> dict[str, Lead]:
        """The coins worth weighing, with what points to each: a shared contract, identical or
        similar names (the coin named after the asset counts as identical), related ids, or the
        symbol alone when at most :data:`SYMBOL_ONLY_MAX` coins share it (a renamed asset)."""
        leads = self._contract_leads(row)
        symbol_only: set[str] = set()
        namesakes: dict[str, list[str | None]] = defaultdict(list)
        block = self.by_symbol.get(row.symbol_key)
        slugs = row.slugs
        for entry in block.near(row.name, slugs) if block else ():
            if entry.source == row.source:
                continue
            coin = self.known.canonical(entry.coin)
            names = _names(row, entry)
            ids = compare_ids(slugs, entry.slugs)
            if names is None and ids is None:
                symbol_only.add(coin)
                continue
            similarity = 1.0 if names == "identical" else name_similarity(row.name, entry.name)
            lead = leads.setdefault(coin, Lead())
            lead.relate(entry, names, similarity, ids, slugs)
            lead.reminted |= self._reminted(row, entry)
            if ids is None:
                namesakes[coin].append(self._later_namesake(row, entry))
        for coin, found in namesakes.items():
            # Only when every asset of the coin the names point to is a later namesake.
            if None not in found and leads[coin].ids is None:
                leads[coin].namesake = min(n for n in found if n is not None)
        if not any(lead.related for lead in leads.values()):
            self._ticker_leads(row, leads)
        natural = self.known.canonical(row.natural)
        # The coin named after the asset (founded by an override, say) counts as identical, when
        # the slug keeps the whole name: it drops every letter that is not ASCII.
        if natural in self.known.taken and normalise(row.name).isascii():
            lead = leads.setdefault(natural, Lead())
            lead.names, lead.similarity, lead.name = "identical", 1.0, row.name
        symbol_only -= {coin for coin, lead in leads.items() if lead.related or lead.contracts}
        if len(symbol_only) > SYMBOL_ONLY_MAX:
            for coin in symbol_only:
                leads.pop(coin, None)
        else:
            for coin in symbol_only:
                leads.setdefault(coin, Lead())
        return leads

    def _ticker_leads(self, row: AssetRow, leads: dict[str, Lead]) -> None:
        """No coin of the asset's symbol relates to it: a ticker that changed (GNT and GLM) may
        still be named by the ids, under any symbol."""
        for entry in self._same_ids(row):
            coin = self.known.canonical(entry.coin)
            names = _names(row, entry)
            lead = leads.setdefault(coin, Lead(symbol_differs=True))
            their_symbol = entry.key.split(KEY_SEPARATOR)[0]
            lead.near_symbol |= near_symbols(row.symbol, their_symbol)
            lead.listed_as |= _listed_as(row, entry, their_symbol)
            slug = shared_slug(row.slugs, entry.slugs)
            lead.renamed |= slug is not None and (
                names_slug(slug, row.name) != names_slug(slug, entry.name)
            )
            similarity = 1.0 if names == "identical" else name_similarity(row.name, entry.name)
            lead.relate(entry, names, similarity, compare_ids(row.slugs, entry.slugs), row.slugs)
            lead.reminted |= self._reminted(row, entry)
            lead.distinct_name |= names == "identical" and self._name_is_theirs_alone(row, entry)

    def _name_is_theirs_alone(self, row: AssetRow, entry: Entry) -> bool:
        """No asset of the two sources, the two aside, bears either's name (stored or in the
        batch: one listed once may be listed again). Only the assets bearing the name's rarest
        word are read, so that a word many names share costs nothing."""
        pair = {(row.source, row.asset), (entry.source, entry.asset)}
        for name in {row.name, entry.name}:
            words = name_words(name)
            if not words:
                return False
            rarest = min((self.by_word.get(w, set()) for w in words), key=len)
            if any(
                source in (row.source, entry.source)
                and (source, asset) not in pair
                and bears_name(other, name)
                for source, asset, other in rarest
            ):
                return False
        return True

    @property
    def by_word(self) -> dict[str, set[tuple[str, str, str]]]:
        """(source, asset, name) of every asset, stored or in the batch, by each word of its
        name, built the first time a changed ticker needs it."""
        if self._by_word is None:
            self._by_word = defaultdict(set)
            named = [
                *self._stored.select("source", "source_asset_id", "name").iter_rows(),
                *((row.source, row.asset, row.name) for row in self._subjects),
            ]
            for source, asset, name in named:
                for word in set(name_words(name)):
                    self._by_word[word].add((source, asset, name))
        return self._by_word

    def _reminted(self, row: AssetRow, entry: Entry) -> bool:
        return (row.source, row.asset) in self.reminted or (
            (entry.source, entry.asset) in self.reminted
        )

    def _contract_leads(self, row: AssetRow) -> dict[str, Lead]:
        leads: dict[str, Lead] = {}
        for contract in sorted(self.contracts_of.get((row.source, row.asset), ())):
            for holder in sorted(self.holders[contract]):
                if holder[0] != row.source and holder in self.coin_of:
                    coin = self.known.canonical(self.coin_of[holder])
                    leads.setdefault(coin, Lead()).contracts.append(contract)
        return leads

    def _unique(self, row: AssetRow, leads: Mapping[str, Lead], lead: Lead) -> bool:
        """The key is unique: no twin of the asset in its own source (same symbol and name), and
        no other coin the names point to as closely (the identical names, if any) or, failing
        names, the ids."""
        if not lead.related or (row.source, row.key) in self.twins:
            return False
        block = self.by_symbol.get(row.symbol_key)
        for entry in block.near(row.name, row.slugs) if block else ():
            if (
                entry.source == row.source
                and entry.asset != row.asset
                and _names(row, entry) == "identical"
            ):
                return False
        rivals = [
            other for other in leads.values()
            if other is not lead and other.related and _as_close(other, lead)
        ]  # fmt: skip
        return not rivals

    def _later_namesake(self, row: AssetRow, entry: Entry) -> str | None:
        """The id one of the two was set apart from, when it is the other's slug and the first
        one's source still lists it: that one is a later asset that took the name."""
        for mine, source, theirs in (
            (entry.slugs, entry.source, row.slugs),
            (row.slugs, row.source, entry.slugs),
        ):
            for slug in mine:
                base = disambiguated(slug)
                if base is not None and base in theirs and self._lists(source, base):
                    return f"{source}/{base}"
        return None

    def _lists(self, source: str, slug: str) -> bool:
        return any(
            other.source == source and slug in other.slugs
            for other in self.by_slug.get(slug.replace("-", ""), ())
        )

    @property
    def by_slug(self) -> dict[str, list[Entry]]:
        """Every mapped asset by the joined slugs of its id (a ticker may have changed), built
        the first time it is needed: a run over known assets never is."""
        if self._by_slug is None:
            self._by_slug = defaultdict(list)
            stored = self._stored.select(
                "source", "source_asset_id", "coin_id", "symbol", "name", "match_key"
            ).iter_rows()
            entries = [
                Entry(source, asset, coin, name, key, _id_slugs(source, asset, symbol))
                for source, asset, coin, symbol, name, key in stored
            ]
            for entry in [*entries, *self._batch_entries]:
                for slug in joined_slugs(entry.slugs):
                    self._by_slug[slug].append(entry)
        return self._by_slug

    def _same_ids(self, row: AssetRow) -> list[Entry]:
        """Entries of other sources whose ids share a slug with the asset's, any symbol."""
        found = {
            entry
            for slug in joined_slugs(row.slugs)
            for entry in self.by_slug.get(slug, ())
            if entry.source != row.source
        }
        return sorted(found)

    def remember(self, row: AssetRow, coin: str) -> None:
        """A decided asset is a candidate for the batch's assets of later sources."""
        self.coin_of[(row.source, row.asset)] = coin
        entry = Entry(row.source, row.asset, coin, row.name, row.key, row.slugs)
        self.by_symbol[row.symbol_key].add(entry)
        self._batch_entries.append(entry)
        if self._by_slug is not None:
            for slug in joined_slugs(entry.slugs):
                self._by_slug[slug].append(entry)
        self.coin_contracts[coin] |= self.contracts_of.get((row.source, row.asset), set())


def _id_slugs(source: str, asset: str, symbol: str) -> frozenset[str]:
    return id_slugs(asset, symbol, ID_STYLES.get(source, "name_slug"))


def _listed_as(row: AssetRow, entry: Entry, their_symbol: str) -> bool:
    """Whether one asset's id records the other's symbol as the ticker it was listed under."""
    mine = listed_ticker(row.asset, row.symbol, ID_STYLES.get(row.source, "name_slug"))
    theirs = listed_ticker(entry.asset, their_symbol, ID_STYLES.get(entry.source, "name_slug"))
    return (mine is not None and mine == symbol_slug(their_symbol)) or (
        theirs is not None and theirs == symbol_slug(row.symbol)
    )


def _names(row: AssetRow, entry: Entry) -> NameRelation | None:
    if entry.key == row.key or same_name(row.name, entry.name):
        return "identical"
    return "similar" if _similar(row.name, entry.name) else None


def _as_close(other: Lead, lead: Lead) -> bool:
    """Whether ``other`` is pointed to as closely as ``lead``: by identical names when the lead
    has them, by names when it has only similar ones, by anything when it has only ids."""
    if lead.names == "identical":
        return other.names == "identical"
    if lead.names == "similar":
        return other.names is not None
    return True


def _keys(stored: pl.DataFrame) -> set[tuple[str, str]]:
    return set(stored.select("source", "source_asset_id").iter_rows())
