"""Entity resolution: which canonical coin each source asset is.

Decisions, strongest first, each recorded in ``coin_source_ids`` with its method and evidence:

1. ``sticky``: an asset already mapped keeps its coin, whatever else changes;
2. ``override``: the curated file ``data/asset_overrides.csv`` (``source,source_asset_id,
   coin_id,note``) names the coin;
3. ``symbol_name``: the asset joins the coin holding an asset with the same normalised (symbol,
   name), or the coin its own symbol and name name (an override may have founded it from another
   source), or founds that coin. A coin takes at most one asset per source (a source never lists
   one asset twice), so a second same-source asset with the same symbol and name founds
4. ``symbol_name_disambiguated``: a coin of its own, its id suffixed with a hash of its id.

Methods and evidence describe the link, not the order assets happened to arrive in, so a run
that crashed and resumed, or whose sources loaded in another order, records the same decisions.

A symbol alone never merges two assets. Normalisation is NFKC (which turns NBSP into a space),
zero-width characters removed, whitespace collapsed and trimmed, then casefolded.

``coin_id`` is a readable slug of the founding asset's symbol and name (``btc-bitcoin``), with a
hash of the asset's ``source:id`` appended only when another asset of the same source holds the
slug. Assets are decided in a fixed order (source order, then id), and a coin's id does not depend
on which of its sources arrived first, so the same inputs give the same coins and links on every
run, whatever crashed, failed or was retried before.

Resolution works on the batch's distinct assets (thousands), not on its quotes (millions).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from flows.sources import SOURCE_NAMES
from store.schema import COIN_SOURCE_IDS, COINS, UTC_TIME

logger = logging.getLogger(__name__)

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_COIN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,95}$")
KEY_SEPARATOR = "\x1f"

CONFIDENCE = {"override": 1.0, "symbol_name": 0.9, "symbol_name_disambiguated": 0.9}
SOURCE_ORDER = {name: i for i, name in enumerate(SOURCE_NAMES)}


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    return _SPACES.sub(" ", text).strip().casefold()


def match_key(symbol: str, name: str) -> str:
    return normalise(symbol) + KEY_SEPARATOR + normalise(name)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")[:40].strip("-")


def natural_coin_id(symbol: str, name: str) -> str:
    """The id an asset founds a coin under: ``btc-bitcoin``."""
    return "-".join(part for part in (_slug(symbol), _slug(name)) if part) or "asset"


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


@dataclass(frozen=True)
class Resolution:
    mappings: pl.DataFrame
    """:data:`store.schema.COIN_SOURCE_IDS` rows for every asset of the batch (stored ones carry
    their stored coin; the loader only widens their seen range)."""
    new_coins: pl.DataFrame
    """:data:`store.schema.COINS` rows for coins founded by this batch."""

    def decisions(self) -> dict[str, int]:
        counts = self.mappings.group_by("method").len()
        return dict(zip(counts["method"].to_list(), counts["len"].to_list(), strict=True))


@dataclass
class _Known:
    """What the resolver knows while it decides a batch, asset by asset."""

    taken: set[str]
    sources_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    coins_of_key: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, coin: str, source: str, key: str) -> None:
        self.taken.add(coin)
        self.sources_of[coin].add(source)
        self.coins_of_key[key].add(coin)

    def free_for(self, coin: str, source: str) -> bool:
        return coin in self.taken and source not in self.sources_of[coin]


def _decide(
    known: _Known, *, source: str, asset: str, symbol: str, name: str, key: str
) -> tuple[str, str, dict[str, object]]:
    """Coin, method and evidence for an asset that has no stored mapping and no override."""
    same_key = sorted(c for c in known.coins_of_key.get(key, ()) if known.free_for(c, source))
    if same_key:
        return same_key[0], "symbol_name", {}
    natural = natural_coin_id(symbol, name)
    # Joining the coin this asset would found, when it exists already (an override founded it
    # from another source's asset), keeps ids independent of which source loaded first.
    if natural not in known.taken or known.free_for(natural, source):
        return natural, "symbol_name", {}
    digest = hashlib.sha256(f"{source}:{asset}".encode()).hexdigest()[:8]
    return f"{natural}-{digest}", "symbol_name_disambiguated", {"disambiguated_from": natural}


def resolve(
    quotes: pl.DataFrame,
    *,
    stored_mappings: pl.DataFrame,
    stored_coin_ids: list[str],
    overrides: dict[tuple[str, str], Override],
    run_id: str,
) -> Resolution:
    """Decide a coin for every distinct (source, source_asset_id) in ``quotes``.

    ``stored_mappings`` has (source, source_asset_id, coin_id, match_key).
    """
    assets = (
        quotes.sort("observed_at")
        .group_by("source", "source_asset_id")
        .agg(
            pl.col("symbol").last(),
            pl.col("name").last(),
            pl.col("observed_at").min().alias("first_seen_at"),
            pl.col("observed_at").max().alias("last_seen_at"),
            pl.col("run_id").min().alias("first_run"),
        )
        .with_columns(
            _order=pl.col("source").replace_strict(SOURCE_ORDER, default=len(SOURCE_ORDER))
        )
        .sort("_order", "source_asset_id")
    )
    link = ["source", "source_asset_id"]
    stored = stored_mappings.select(*link, "coin_id", "match_key")
    # Known assets keep their coin: decided as a join, which is all a re-run ever needs.
    sticky = assets.join(stored, on=link, how="inner")
    _warn_ignored_overrides(sticky, overrides)
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
    )
    fresh = assets.join(stored, on=link, how="anti").sort("_order", "source_asset_id")
    if fresh.is_empty():
        return Resolution(sticky_rows.cast(COIN_SOURCE_IDS), COINS.to_frame())

    fresh = fresh.with_columns(
        match_key=pl.struct("symbol", "name").map_elements(
            lambda a: match_key(a["symbol"], a["name"]), return_dtype=pl.String()
        ),
        natural=pl.struct("symbol", "name").map_elements(
            lambda a: natural_coin_id(a["symbol"], a["name"]), return_dtype=pl.String()
        ),
    )
    # Only stored links that can bear on these assets: same keys, or coins they could join.
    candidates = {*fresh["natural"].to_list(), *(o.coin_id for o in overrides.values())}
    relevant = stored.filter(
        pl.col("match_key").is_in(fresh["match_key"].unique().implode())
        | pl.col("coin_id").is_in(pl.Series(list(candidates), dtype=pl.String()).implode())
    )
    known = _Known(taken=set(stored_coin_ids))
    for source, _, coin, key in relevant.iter_rows():
        known.add(coin, source, key)

    mappings: list[dict[str, object]] = []
    new_coins: list[dict[str, object]] = []
    for row in fresh.iter_rows(named=True):
        source, asset, symbol, name, key = (
            row["source"], row["source_asset_id"], row["symbol"], row["name"], row["match_key"]
        )  # fmt: skip
        evidence: dict[str, object] = {"symbol": symbol, "name": name, "match_key": key}
        override = overrides.get((source, asset))
        if override:
            coin, method = override.coin_id, "override"
            evidence |= {"override_line": override.line, "note": override.note}
        else:
            coin, method, found = _decide(
                known, source=source, asset=asset, symbol=symbol, name=name, key=key
            )
            evidence |= found
        if coin not in known.taken:
            new_coins.append(
                {
                    "coin_id": coin,
                    "symbol": symbol,
                    "name": name,
                    "first_seen_at": row["first_seen_at"],
                    "created_by_run": row["first_run"] or run_id,
                }
            )
        known.add(coin, source, key)
        mappings.append(
            {
                "source": source,
                "source_asset_id": asset,
                "coin_id": coin,
                "symbol": symbol,
                "name": name,
                "match_key": key,
                "method": method,
                "confidence": CONFIDENCE.get(method, 1.0),
                "evidence": json.dumps(evidence, ensure_ascii=False, sort_keys=True),
                "first_seen_at": row["first_seen_at"],
                "last_seen_at": row["last_seen_at"],
                "last_snapshot_at": None,
                "decided_by_run": row["first_run"] or run_id,
            }
        )
    decided = pl.DataFrame(mappings, schema=COIN_SOURCE_IDS)
    return Resolution(
        mappings=pl.concat([sticky_rows.cast(COIN_SOURCE_IDS), decided]),
        new_coins=pl.DataFrame(new_coins, schema=COINS),
    )


def _warn_ignored_overrides(
    sticky: pl.DataFrame, overrides: dict[tuple[str, str], Override]
) -> None:
    for source, asset, coin in sticky.select("source", "source_asset_id", "coin_id").iter_rows():
        override = overrides.get((source, asset))
        if override and override.coin_id != coin:
            logger.warning(
                "override %s/%s -> %s ignored: the asset is already mapped to %s and mappings "
                "are sticky", source, asset, override.coin_id, coin,
            )  # fmt: skip
