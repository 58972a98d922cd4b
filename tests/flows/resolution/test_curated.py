"""The curated files: overrides and the crosswalk are read whole and validated, naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.errors import CuratedFileError, IngestError
from flows.resolution import (
    CrosswalkError,
    Override,
    OverridesError,
    read_crosswalk,
    read_overrides,
)


def test_overrides_file_is_read_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "overrides.csv"
    path.write_text(
        "source,source_asset_id,coin_id,note\ncoinpaprika,hav-havven,snx-synthetix-network,old id\n"
    )
    assert read_overrides(path) == {
        ("coinpaprika", "hav-havven"): Override("snx-synthetix-network", "old id", 2)
    }
    assert read_overrides(tmp_path / "absent.csv") == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("source,asset,coin\n", "header must be"),
        ("source,source_asset_id,coin_id,note\nbinance,x,y-z,\n", ":2: unknown source"),
        ("source,source_asset_id,coin_id,note\ncoincap,x,Not An Id,\n", "must be lowercase"),
        (
            "source,source_asset_id,coin_id,note\ncoincap,x,a-b,\ncoincap,x,c-d,\n",
            ":3: coincap/x is already overridden on line 2",
        ),
    ],
)
def test_a_malformed_overrides_file_names_the_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "overrides.csv"
    path.write_text(body)
    with pytest.raises(OverridesError, match=message):
        read_overrides(path)


def test_the_crosswalk_file_is_read_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "crosswalk.csv"
    path.write_text("coingecko,coinpaprika,coincap\nhavven,hav-havven,synthetix-network-token\n")
    crosswalk = read_crosswalk(path)
    assert crosswalk[("coinpaprika", "hav-havven")] == {
        ("coingecko", "havven"),
        ("coincap", "synthetix-network-token"),
    }
    for body, message in [
        ("coingecko,binance\nx,y\n", "header must name two or more"),
        ("coingecko,coinpaprika\nhavven,\n", ":2: a row must name the asset in two sources"),
        ("coingecko,coinpaprika\na,b\na,c\n", ":3: coingecko/a is already on line 2"),
    ]:
        path.write_text(body)
        with pytest.raises(OverridesError, match=message):
            read_crosswalk(path)


def test_a_malformed_curated_file_is_an_ingest_error_that_says_what_to_do(tmp_path: Path) -> None:
    files = {
        "overrides": "source,source_asset_id,coin_id,note\ncoincap,,a-b,\n",
        "crosswalk": "a\n",
    }
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    with pytest.raises(OverridesError, match=r":2: source_asset_id is empty; fix the overrides"):
        read_overrides(tmp_path / "overrides")
    with pytest.raises(CrosswalkError, match="unset KASPARRO_CROSSWALK_FILE") as raised:
        read_crosswalk(tmp_path / "crosswalk")
    assert isinstance(raised.value, CuratedFileError)
    assert isinstance(raised.value, IngestError)
