"""`kasparro resolution-eval`: metrics against labels, label validation, the shipped labelled set
and the command over the demo snapshot."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from flows.errors import CuratedFileError
from flows.resolution import read_overrides
from flows.resolution.evaluation import (
    AssetLink,
    AssetRef,
    Counts,
    LabelledPair,
    LabelsError,
    evaluate,
    format_report,
    read_labels,
)
from kasparro.cli import main
from tests.conftest import DEMO_DIR, REPO
from tests.helpers import ingest_without_prefect

LABELS = REPO / "data" / "resolution_labels.csv"
HEADER = "source_a,id_a,source_b,id_b,same,category,note\n"
API_SOURCES = {"coingecko", "coinpaprika", "coincap"}


def pair(a: str, b: str, same: bool, category: str = "easy", line: int = 2) -> LabelledPair:
    """``pair("coingecko/bitcoin", "coincap/bitcoin", True)``."""
    return LabelledPair(AssetRef(*a.split("/")), AssetRef(*b.split("/")), same, category, "", line)


def link(
    asset: str, coin_id: str, method: str = "symbol_name", confidence: float = 0.9
) -> AssetLink:
    source, asset_id = asset.split("/")
    return AssetLink(source, asset_id, coin_id, method, confidence)


LINKS = [
    link("coingecko/bitcoin", "btc"),
    link("coinpaprika/btc-bitcoin", "btc"),
    link("coincap/bitcoin", "btc"),
    link("coingecko/uniswap", "uni"),
    link("coincap/universe-token", "universe"),
    link("coingecko/binancecoin", "bnb"),
    link("coinpaprika/bnb-binance-coin", "bnb-binance-coin"),
]


def test_a_correct_resolution_scores_one_everywhere() -> None:
    labels = [
        pair("coingecko/bitcoin", "coinpaprika/btc-bitcoin", True, line=2),
        pair("coingecko/bitcoin", "coincap/bitcoin", True, line=3),
        pair("coingecko/uniswap", "coincap/universe-token", False, "shared_symbol", line=4),
    ]
    report = evaluate(labels, LINKS)
    assert report.counts == Counts(tp=2, fp=0, fn=0, tn=1)
    assert (report.counts.precision, report.counts.recall, report.counts.f1) == (1.0, 1.0, 1.0)
    assert report.errors == ()
    assert report.missing == ()


def test_a_false_merge_lowers_precision_and_is_listed_with_both_coins() -> None:
    merged = [*LINKS[:4], link("coincap/universe-token", "uni", "contract", 0.75)]
    labels = [
        pair("coingecko/bitcoin", "coincap/bitcoin", True, line=2),
        pair("coingecko/uniswap", "coincap/universe-token", False, "shared_symbol", line=3),
    ]
    report = evaluate(labels, merged)
    assert report.counts == Counts(tp=1, fp=1, fn=0, tn=0)
    assert report.counts.precision == 0.5
    assert report.counts.recall == 1.0
    assert report.counts.f1 == pytest.approx(2 / 3)
    (error,) = report.errors
    assert error.error == "false merge"
    assert (error.link_a, error.link_b) == (merged[3], merged[4])
    text = format_report(report, labels=Path("labels.csv"), snapshot=Path("serving.duckdb"))
    assert "line 3: false merge [shared_symbol] labelled different" in text
    assert "coingecko/uniswap: coin uni (symbol_name, confidence 0.90)" in text
    assert "coincap/universe-token: coin uni (contract, confidence 0.75)" in text


def test_a_missed_link_lowers_recall_and_is_listed_with_both_coins() -> None:
    labels = [
        pair("coingecko/bitcoin", "coincap/bitcoin", True, line=2),
        pair("coingecko/binancecoin", "coinpaprika/bnb-binance-coin", True, "renamed", line=3),
    ]
    report = evaluate(labels, LINKS)
    assert report.counts == Counts(tp=1, fp=0, fn=1, tn=0)
    assert (report.counts.precision, report.counts.recall) == (1.0, 0.5)
    (error,) = report.errors
    assert error.error == "missed link"
    text = format_report(report, labels=Path("labels.csv"), snapshot=Path("serving.duckdb"))
    assert "line 3: missed link [renamed] labelled same" in text
    assert "coinpaprika/bnb-binance-coin: coin bnb-binance-coin (symbol_name" in text


def test_an_asset_absent_from_the_warehouse_predicts_not_same_and_is_reported_missing() -> None:
    labels = [
        pair("coingecko/bitcoin", "coincap/bitcoinn", True, line=2),  # a typo in the labels
        pair("coingecko/uniswap", "coinpaprika/uni-universe-token", False, line=3),
        pair("coingecko/ethereum", "coincap/bitcoinn", False, line=4),
    ]
    report = evaluate(labels, LINKS)
    assert report.counts == Counts(tp=0, fp=0, fn=1, tn=2)
    assert [(str(m.asset), m.lines) for m in report.missing] == [
        ("coincap/bitcoinn", (2, 4)),
        ("coingecko/ethereum", (4,)),
        ("coinpaprika/uni-universe-token", (3,)),
    ]
    text = format_report(report, labels=Path("labels.csv"), snapshot=Path("serving.duckdb"))
    assert "missing assets: 3" in text
    assert "coincap/bitcoinn (lines 2, 4)" in text
    assert "coincap/bitcoinn: missing from the warehouse" in text


def test_metrics_define_the_zero_over_zero_cases() -> None:
    # Nothing linked, nothing labelled same: no wrong merge, nothing to find.
    assert (Counts(tn=3).precision, Counts(tn=3).recall, Counts(tn=3).f1) == (1.0, 1.0, 1.0)
    # Nothing linked although pairs are labelled same: precision 1, recall 0, F1 0.
    assert (Counts(fn=2).precision, Counts(fn=2).recall, Counts(fn=2).f1) == (1.0, 0.0, 0.0)
    # Only wrong links: precision 0 and recall 0 give F1 0, not a division by zero.
    assert Counts(fp=1, fn=1).f1 == 0.0


def test_counts_are_reported_per_category() -> None:
    labels = [
        pair("coingecko/bitcoin", "coincap/bitcoin", True, "easy", line=2),
        pair("coingecko/binancecoin", "coinpaprika/bnb-binance-coin", True, "renamed", line=3),
        pair("coingecko/uniswap", "coincap/universe-token", False, "shared_symbol", line=4),
    ]
    report = evaluate(labels, LINKS)
    assert report.by_category == {
        "easy": Counts(tp=1),
        "renamed": Counts(fn=1),
        "shared_symbol": Counts(tn=1),
    }


# --- validation --------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("coingecko,bitcoin,binance,btc,true,,\n", r"labels\.csv:2: source_b 'binance' is not"),
        ("coingecko,bitcoin,coincap,bitcoin,yes,,\n", r"labels\.csv:2: same is 'yes', not true"),
        ("coingecko,bitcoin,coincap,,true,,\n", r"labels\.csv:2: id_b is empty"),
        ("coingecko,bitcoin,coincap,bitcoin,true\n", r"labels\.csv:2: expected 7 fields, found 5"),
        (
            "coingecko,weth,coingecko,arbitrum-bridged-weth,true,,\n",
            r"labels\.csv:2: .*both coingecko assets labelled same",
        ),
        ("coingecko,bitcoin,coingecko,bitcoin,false,,\n", r"labels\.csv:2: both sides are"),
        (
            "coingecko,bitcoin,coincap,bitcoin,true,,\ncoincap,bitcoin,coingecko,bitcoin,true,,\n",
            r"labels\.csv:3: the pair coincap/bitcoin / coingecko/bitcoin is already labelled "
            r"on line 2",
        ),
        ("", r"labels\.csv: no labelled pairs below the header"),
    ],
    ids=[
        "unknown-source",
        "bad-boolean",
        "empty-id",
        "field-count",
        "same-source-same",
        "self-pair",
        "duplicated-reversed",
        "no-rows",
    ],
)
def test_invalid_labels_are_refused_naming_file_and_line(
    tmp_path: Path, rows: str, expected: str
) -> None:
    path = write(tmp_path, HEADER + rows)
    with pytest.raises(LabelsError, match=expected):
        read_labels(path)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("source_a,id_a,source_b,same\n", r"labels\.csv:1: header lacks column\(s\) id_b"),
        (
            "source_a,id_a,source_b,id_b,same,comment\n",
            r"labels\.csv:1: unknown column\(s\) comment",
        ),
        (
            "source_a,id_a,source_b,id_b,same,note,note\n",
            r"labels\.csv:1: repeated column\(s\) note",
        ),
    ],
    ids=["missing-column", "unknown-column", "repeated-column"],
)
def test_a_bad_header_is_refused(tmp_path: Path, header: str, expected: str) -> None:
    path = write(tmp_path, header + "coingecko,bitcoin,coincap,bitcoin,true\n")
    with pytest.raises(LabelsError, match=expected):
        read_labels(path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "coingecko,bitcoin,coincap,bitcoin,true,,\n"
        + "coingecko,ethereum,kraken,eth,true,,\n"
        + "coingecko,tether,coincap,tether,maybe,,\n",
    )
    with pytest.raises(LabelsError) as raised:
        read_labels(path)
    assert [p.split(": ")[0] for p in raised.value.problems] == [f"{path}:3", f"{path}:4"]


def test_missing_or_empty_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match="cannot read it"):
        read_labels(tmp_path / "absent.csv")
    with pytest.raises(LabelsError, match="the file is empty"):
        read_labels(write(tmp_path, "\n"))


def test_a_bad_labels_file_is_a_curated_file_error(tmp_path: Path) -> None:
    """It sits in the flows error tree beside the overrides and the crosswalk."""
    with pytest.raises(CuratedFileError, match="cannot read it"):
        read_labels(tmp_path / "absent.csv")


def test_minimal_columns_a_spreadsheet_bom_and_same_source_negatives_are_accepted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "\ufeffsource_a,id_a,source_b,id_b,same\n"
        "coingecko,uniswap,coingecko,universe-token,FALSE\n"
        "coingecko, bitcoin ,coincap,bitcoin,True\n",
        encoding="utf-8",
    )
    labels = read_labels(path)
    assert labels == [
        pair("coingecko/uniswap", "coingecko/universe-token", False, "uncategorised", line=2),
        pair("coingecko/bitcoin", "coincap/bitcoin", True, "uncategorised", line=3),
    ]


# --- the shipped labelled set --------------------------------------------------------------------


def demo_assets() -> set[AssetRef]:
    """Every asset id the bundled demo recording lists, read from its files."""
    refs = set()
    for page in sorted((DEMO_DIR / "coingecko" / "coins_markets").glob("page-*.json")):
        refs |= {AssetRef("coingecko", r["id"]) for r in json.loads(page.read_text())}
    tickers = json.loads((DEMO_DIR / "coinpaprika" / "tickers.json").read_text())
    refs |= {AssetRef("coinpaprika", r["id"]) for r in tickers}
    for page in sorted((DEMO_DIR / "coincap" / "assets").glob("page-*.json")):
        refs |= {AssetRef("coincap", r["id"]) for r in json.loads(page.read_text())["data"]}
    with (DEMO_DIR / "csv" / "legacy_daily_history.csv").open(newline="") as handle:
        refs |= {AssetRef("csv", f"{r['Symbol']}:{r['Name']}") for r in csv.DictReader(handle)}
    with (DEMO_DIR / "csv" / "kasparro_canonical.csv").open(newline="") as handle:
        refs |= {AssetRef("csv", r["asset_id"]) for r in csv.DictReader(handle)}
    return refs


def test_the_shipped_labels_are_valid_and_cover_the_hard_cases() -> None:
    labels = read_labels(LABELS)
    across_apis = [p for p in labels if {p.a.source, p.b.source} <= API_SOURCES]
    assert len(across_apis) >= 150
    assert {s for p in across_apis for s in (p.a.source, p.b.source)} == API_SOURCES
    assert sum(p.category != "easy" for p in labels) >= 30
    categories = {p.category for p in labels}
    assert {"different_ids", "renamed", "shared_symbol", "wrapped_bridged", "unicode"} <= categories
    assert any(p.same for p in labels)
    assert any(not p.same and p.a.source != p.b.source for p in labels)


def test_the_shipped_labels_only_name_assets_of_the_demo_recording() -> None:
    listed = demo_assets()
    unknown = {ref for p in read_labels(LABELS) for ref in (p.a, p.b)} - listed
    assert unknown == set()


# --- the command over the demo snapshot ----------------------------------------------------------


@pytest.fixture(scope="module")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose serving snapshot holds one ingest of the demo recording."""
    data_dir = tmp_path_factory.mktemp("resolution-eval") / "data"
    overrides = read_overrides(REPO / "data" / "asset_overrides.csv")
    ingest_without_prefect(
        DEMO_DIR, data_dir, run_id="20261124T120000Z-eval00", overrides=overrides
    )
    assert (data_dir / "serving.duckdb").is_file()
    return data_dir


_ROW = re.compile(
    r"^(?P<label>\S+)\s+(?P<pairs>\d+)\s+(?P<tp>\d+)\s+(?P<fp>\d+)\s+(?P<fn>\d+)\s+(?P<tn>\d+)"
    r"\s+(?P<precision>[\d.]+)\s+(?P<recall>[\d.]+)\s+(?P<f1>[\d.]+)$"
)


def metric_rows(text: str) -> dict[str, dict[str, str]]:
    rows = {}
    for line in text.splitlines():
        if match := _ROW.match(line.strip()):
            rows[match["label"]] = match.groupdict()
    return rows


def test_the_command_scores_the_shipped_labels_on_the_demo(
    demo_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["resolution-eval", str(LABELS), "--data-dir", str(demo_data_dir)])
    out = capsys.readouterr().out
    assert code == 0
    rows = metric_rows(out)
    overall = rows.pop("all")
    tp, fp, fn, tn = (int(overall[k]) for k in ("tp", "fp", "fn", "tn"))
    labels = read_labels(LABELS)
    assert tp + fp + fn + tn == int(overall["pairs"]) == len(labels)
    assert tp + fn == sum(p.same for p in labels)
    assert float(overall["precision"]) == pytest.approx(
        tp / (tp + fp) if tp + fp else 1.0, abs=1e-4
    )
    assert float(overall["recall"]) == pytest.approx(tp / (tp + fn), abs=1e-4)
    assert set(rows) == {p.category for p in labels}
    assert sum(int(r["pairs"]) for r in rows.values()) == len(labels)
    assert f"errors: {fp + fn}" in out
    assert out.count("false merge [") == fp
    assert out.count("missed link [") == fn
    # Every labelled asset is a valid record of the demo, so none is missing from the snapshot.
    assert "missing assets: 0 (none)" in out


def test_a_missed_threshold_exits_1(
    demo_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Bitcoin and Ethereum are never one asset: a label claiming so is a missed link for any
    # sane resolver, so recall is below 1.
    labels = write(tmp_path, HEADER + "coingecko,bitcoin,coincap,ethereum,true,,\n")
    argv = ["resolution-eval", str(labels), "--data-dir", str(demo_data_dir)]
    assert main(argv) == 0
    assert main([*argv, "--min-recall", "1"]) == 1
    assert "recall 0.0000 is below --min-recall 1.0" in capsys.readouterr().err


def test_a_typo_in_the_labels_is_reported_as_a_missing_asset(
    demo_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = write(tmp_path, HEADER + "coingecko,bitcoin,coincap,bitcoinn,true,,\n")
    assert main(["resolution-eval", str(labels), "--data-dir", str(demo_data_dir)]) == 0
    out = capsys.readouterr().out
    assert "missing assets: 1" in out
    assert "coincap/bitcoinn (line 2)" in out


def test_bad_labels_exit_2_naming_the_line(
    demo_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = write(tmp_path, HEADER + "coingecko,bitcoin,coincap,bitcoin,maybe,,\n")
    assert main(["resolution-eval", str(labels), "--data-dir", str(demo_data_dir)]) == 2
    assert f"{labels}:2: same is 'maybe'" in capsys.readouterr().err


def test_no_snapshot_exits_2_saying_how_to_publish_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["resolution-eval", str(LABELS), "--data-dir", str(tmp_path / "empty")])
    assert code == 2
    err = capsys.readouterr().err
    assert "no serving snapshot" in err
    assert "kasparro ingest --replay data/demo" in err


def test_a_threshold_outside_0_1_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["resolution-eval", str(LABELS), "--min-precision", "1.5"])
    assert raised.value.code == 2
    assert "'1.5' is not a number between 0 and 1" in capsys.readouterr().err
