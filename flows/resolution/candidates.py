"""The typed rows the decider works on: a batch's asset, a mapped asset it may be, the symbol blocks
that find those, and what points from an asset to each coin on its shortlist."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from flows.resolution.market import Observation
from flows.resolution.names import (
    KEY_SEPARATOR,
    IdRelation,
    _name_tokens,
    id_slugs,
    joined_slugs,
    match_key,
    natural_coin_id,
    shared_slug,
)
from flows.resolution.scoring import NameRelation
from flows.sources import ID_STYLES
from store.schema import suffixed_coin_id

SYMBOL_ONLY_MAX = 3
"""A symbol shared by more coins than this proposes none of them on the symbol alone."""
_SMALL_BLOCK = 4 * SYMBOL_ONLY_MAX


@dataclass(frozen=True, slots=True)
class AssetRow:
    """One asset of a batch, as the decider sees it."""

    source: str
    asset: str
    symbol: str
    name: str
    key: str
    """:func:`flows.resolution.names.match_key`: normalised symbol and name."""
    first_seen_at: datetime
    last_seen_at: datetime
    decided_by: str | None
    """The run that first met the asset in this batch."""
    observation: Observation
    """What its markets are compared with (see ``flows.resolution.decider.asset_rows``)."""

    @property
    def symbol_key(self) -> str:
        return self.key.split(KEY_SEPARATOR, 1)[0]

    @property
    def natural(self) -> str:
        return natural_coin_id(self.symbol, self.name)

    @property
    def slugs(self) -> frozenset[str]:
        return id_slugs(self.asset, self.symbol, ID_STYLES.get(self.source, "name_slug"))

    @classmethod
    def of(cls, row: Mapping[str, object]) -> AssetRow:
        at, price, cap, rank = row["compared_at"], row["price"], row["market_cap"], row["rank"]
        first, last, run = row["first_seen_at"], row["last_seen_at"], row["first_run"]
        assert isinstance(at, datetime)
        assert isinstance(first, datetime)
        assert isinstance(last, datetime)
        symbol, name = str(row["symbol"]), str(row["name"])
        return cls(
            source=str(row["source"]),
            asset=str(row["source_asset_id"]),
            symbol=symbol,
            name=name,
            key=match_key(symbol, name),
            first_seen_at=first,
            last_seen_at=last,
            decided_by=str(run) if run is not None else None,
            observation=Observation(
                at,
                float(price) if isinstance(price, float | int) else 0.0,
                float(cap) if isinstance(cap, float | int) else None,
                int(rank) if isinstance(rank, int) else None,
            ),
        )


class Entry(NamedTuple):
    """A mapped asset (stored, or decided earlier in the batch)."""

    source: str
    asset: str
    coin: str
    name: str
    key: str
    slugs: frozenset[str]


@dataclass
class Block:
    """The mapped assets sharing a normalised symbol, indexed by name and id: a similar name
    shares a word or its first four letters (words run together) with the name it resembles;
    related ids share a slug once separators are dropped."""

    entries: list[Entry] = field(default_factory=list)
    index: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, entry: Entry) -> None:
        for token in {*_name_tokens(entry.name), *_id_tokens(entry.slugs)}:
            self.index[token].append(len(self.entries))
        self.entries.append(entry)

    def near(self, name: str, slugs: frozenset[str]) -> list[Entry]:
        """Every entry of a small block (a renamed asset may share no word with its old name);
        of a large one, those sharing a name token or an id token."""
        if len(self.entries) <= _SMALL_BLOCK:
            return self.entries
        tokens = {*_name_tokens(name), *_id_tokens(slugs)}
        found = {i for token in tokens for i in self.index.get(token, ())}
        return [self.entries[i] for i in sorted(found)]


def _id_tokens(slugs: frozenset[str]) -> set[str]:
    return {"#" + s for s in joined_slugs(slugs)}


_ID_RANK: dict[IdRelation | None, int] = {None: 0, "joined": 1, "exact": 2}


@dataclass
class Lead:
    """Why a coin is on an asset's shortlist: the strongest relation any of its assets has to
    the asset, by kind."""

    contracts: list[tuple[str, str]] = field(default_factory=list)
    """(chain, address) the asset shares with the coin."""
    names: NameRelation | None = None
    similarity: float = 0.0
    name: str | None = None
    """The most similar name among the coin's assets."""
    ids: IdRelation | None = None
    slug: str | None = None
    """The name slug the ids share."""
    symbol_differs: bool = False
    """Found through its ids alone: no coin of the asset's symbol relates to it."""
    near_symbol: bool = False
    """... and one of the two symbols holds the other (``names.near_symbols``)."""
    renamed: bool = False
    """... and the slug the ids share is one asset's name and not the other's: that one was
    renamed since its source minted its id (``zcoin``, now named Firo, and Zcoin's
    ``xzc-zcoin``), which explains a ticker that changed with it."""
    listed_as: bool = False
    """... and one asset's id records the other's symbol as the ticker it was listed under
    (CoinPaprika's ``rndr-render-token``, RENDER today, and CoinGecko's ``render-token``, RNDR
    then): the ticker changed, and its own source says so (``names.listed_ticker``)."""
    distinct_name: bool = False
    """... and the two names are identical, a name no other asset of either source bears
    (``names.bears_name``): a ticker that changed under a name of its own, not a name that
    several projects share (HLM's Helium beside HNT's, Helium IOT and Helium Mobile)."""
    reminted: bool = False
    """One of the two assets has an id its source re-minted at a migration
    (``names.reminted_from``): the id and the name were the old token's too."""
    namesake: str | None = None
    """The coin's asset is a later namesake: its id is the asset's slug with a numeric suffix,
    and its source still lists the unsuffixed id (``ethos-3`` beside ``ethos``)."""

    def relate(
        self,
        entry: Entry,
        names: NameRelation | None,
        similarity: float,
        ids: IdRelation | None,
        self_slugs: frozenset[str] = frozenset(),
    ) -> None:
        """Keep the strongest relation of each kind; of equal ones, the first name slug (so the
        evidence does not depend on which sources' assets the coin holds yet)."""
        stronger = names == "identical" and self.names != "identical"
        tied = names == self.names and similarity == self.similarity
        if names and (
            stronger
            or similarity > self.similarity
            or (tied and self.name is not None and entry.name < self.name)
        ):
            self.names, self.similarity, self.name = names, similarity, entry.name
        if ids is None:
            return
        slug = shared_slug(self_slugs, entry.slugs)
        if _ID_RANK[ids] > _ID_RANK[self.ids] or (
            ids == self.ids and slug is not None and (self.slug is None or slug < self.slug)
        ):
            self.ids, self.slug = ids, slug

    @property
    def related(self) -> bool:
        """Names or ids point to the coin (not the symbol alone)."""
        return self.names is not None or self.ids is not None


@dataclass
class Known:
    """Coins and who holds them, as the batch is decided asset by asset."""

    taken: set[str]
    aliases: dict[str, str]
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
