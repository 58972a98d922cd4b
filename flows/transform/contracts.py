"""Raw-zone rows -> the contract addresses sources publish for their assets (identity evidence).

* CoinGecko ``coins/list?include_platform=true``: ``platforms`` maps a platform id to an address
  (``{}`` for a native coin, ``""`` where CoinGecko has no address);
* CoinPaprika ``contracts/{platform}``: ``[{address, id, type}]``, the platform in the request;
* CoinCap ``assets``: ``explorer``, a token page (``https://etherscan.io/token/0x...``) for a
  token and a chain's home page for a native coin (no address).

Platforms are translated to canonical chains by the crosswalk (:mod:`flows.sources.platforms`);
an address on a platform the crosswalk does not know is no evidence (it stays in the raw zone).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import polars as pl

from flows.sources.platforms import chain_of, normalise_address
from store.schema import ASSET_CONTRACTS, ASSET_CONTRACTS_KEY

_TOKEN_PAGE = re.compile(r"^https?://(?:www\.)?(?P<host>[^/]+)/(?:#/)?token/(?P<address>[^/?#]+)")


def _coingecko_coins_list(group: pl.DataFrame) -> Iterator[tuple[str, str, str, str]]:
    for run_id, text in group.select("run_id", "record").iter_rows():
        record = json.loads(text)
        asset, platforms = record.get("id"), record.get("platforms")
        if not isinstance(asset, str) or not asset or not isinstance(platforms, dict):
            continue  # not the documented shape: no evidence (the record stays in the raw zone)
        for platform, address in platforms.items():
            if platform and isinstance(address, str) and address.strip():
                yield asset, platform, address, run_id


def _coinpaprika_contracts(group: pl.DataFrame) -> Iterator[tuple[str, str, str, str]]:
    for run_id, text, subject in group.select("run_id", "record", "subject").iter_rows():
        record = json.loads(text)
        platform = json.loads(subject)["platform"] if subject else None
        address = record.get("address")
        if platform and isinstance(address, str) and address.strip() and record.get("id"):
            yield str(record["id"]), platform, address, run_id


_ID_AND_EXPLORER = pl.Struct({"id": pl.String(), "explorer": pl.String()})


def _id_and_explorer(records: pl.DataFrame) -> pl.DataFrame:
    """``run_id``, ``asset`` and ``explorer`` of CoinCap records; a field that is not a string
    reads as null (no evidence), so a malformed record costs only itself."""
    try:
        # One parse for both fields (json_path_match parses the record once per path).
        return records.select(
            "run_id",
            pl.col("record")
            .str.json_decode(_ID_AND_EXPLORER)
            .struct.rename_fields(["asset", "explorer"])
            .struct.unnest(),
        )
    except pl.exceptions.ComputeError:  # a field is an object or array: read record by record
        fields = [json.loads(text) for text in records["record"]]
        return pl.DataFrame(
            {
                "run_id": records["run_id"],
                **{
                    name: [v if isinstance(v := f.get(key), str) else None for f in fields]
                    for name, key in (("asset", "id"), ("explorer", "explorer"))
                },
            },
            schema={"run_id": pl.String(), "asset": pl.String(), "explorer": pl.String()},
        )


def _coincap_explorers(group: pl.DataFrame) -> Iterator[tuple[str, str, str, str]]:
    # Only a token page holds an address: records without one are ruled out by a substring
    # search before any JSON is parsed (every CoinCap record of every run comes through here).
    pages = (
        _id_and_explorer(group.filter(pl.col("record").str.contains("/token/", literal=True)))
        .filter(pl.col("explorer").str.contains("/token/", literal=True))
        # Every run lists the same pages again: the earliest run of each is the one kept.
        .group_by("asset", "explorer")
        .agg(pl.col("run_id").min())
        .select("run_id", "asset", "explorer")
    )
    for run_id, asset, explorer in pages.iter_rows():
        if asset and (match := _TOKEN_PAGE.match(explorer)):
            yield asset, match["host"].lower(), match["address"], run_id


_PARSERS: dict[tuple[str, str], Callable[[pl.DataFrame], Iterator[tuple[str, str, str, str]]]] = {
    ("coingecko", "coins_list"): _coingecko_coins_list,
    ("coinpaprika", "contracts"): _coinpaprika_contracts,
    ("coincap", "assets"): _coincap_explorers,
}


def contracts_of(raw: pl.DataFrame) -> pl.DataFrame:
    """:data:`store.schema.ASSET_CONTRACTS` rows of raw-zone rows of any sources, one per key
    (the earliest run that published it)."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    records = raw.filter(pl.col("record").is_not_null())
    for (source, endpoint), group in records.group_by("source", "endpoint"):
        parser = _PARSERS.get((str(source), str(endpoint)))
        if parser is None:
            continue
        for asset, platform, address, run_id in parser(group):
            chain = chain_of(str(source), platform)
            if chain is not None:
                rows.append(
                    (str(source), asset, chain.chain, normalise_address(chain, address),
                     platform, run_id)
                )  # fmt: skip
    return (
        pl.DataFrame(rows, schema=ASSET_CONTRACTS, orient="row")
        .sort("first_seen_run")
        .unique(subset=list(ASSET_CONTRACTS_KEY), keep="first")
        .sort(*ASSET_CONTRACTS_KEY)
    )
