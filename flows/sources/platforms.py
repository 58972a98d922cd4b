"""The platform crosswalk: how each source names a chain, kept as data in ``platforms.csv``.

A contract address identifies an asset only together with its chain, and every source names
chains its own way (CoinGecko ``ethereum``, CoinPaprika ``eth-ethereum``, CoinCap an explorer
host, ``etherscan.io``). Resolution compares ``(chain, address)`` in the canonical chain ids of
the first column. A platform missing from the file gives no evidence (its addresses stay in the
raw zone); adding a row is all it takes to use it.

``address_format`` ``evm``: addresses are lowercased (their case is only a checksum); others
(base58) are case-sensitive and kept as served.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

AddressFormat = Literal["evm", "base58"]


@dataclass(frozen=True)
class Platform:
    chain: str
    address_format: AddressFormat
    coingecko: str
    coinpaprika: str
    coincap_explorer: str


@cache
def platforms() -> tuple[Platform, ...]:
    text = resources.files("flows.sources").joinpath("platforms.csv").read_text("utf-8")
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        fmt = row["address_format"]
        if fmt not in ("evm", "base58"):
            raise ValueError(f"platforms.csv: chain {row['chain']}: unknown address_format {fmt}")
        rows.append(
            Platform(
                chain=row["chain"],
                address_format="evm" if fmt == "evm" else "base58",
                coingecko=row["coingecko"],
                coinpaprika=row["coinpaprika"],
                coincap_explorer=row["coincap_explorer"],
            )
        )
    return tuple(rows)


def chain_of(source: str, platform: str) -> Platform | None:
    """The chain a source's platform id (CoinCap: an explorer host) names, if the crosswalk
    knows it."""
    for known in platforms():
        named = {
            "coingecko": known.coingecko,
            "coinpaprika": known.coinpaprika,
            "coincap": known.coincap_explorer,
        }.get(source)
        if named == platform:
            return known
    return None


def normalise_address(platform: Platform, address: str) -> str:
    address = address.strip()
    return address.lower() if platform.address_format == "evm" else address
