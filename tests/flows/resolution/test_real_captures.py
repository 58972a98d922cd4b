"""Resolution on whole real captures taken years apart (``../shared/realdata``), against the hand
labels of ``data/resolution_labels_real.csv``, with no overrides and no crosswalk: what the
product promises where sources are not captured together."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.realcaptures import SHARED_ENV, shared_dir
from bench.resolution_eval import REAL_LABELS, evaluate_real
from flows.resolution.evaluation import read_labels
from tests.conftest import REPO


@pytest.mark.slow
def test_real_captures_years_apart_link_without_wrong_merges_in_crowds() -> None:
    realdata = shared_dir() / "realdata"
    if not realdata.is_dir():
        pytest.skip(f"no real captures at {realdata}: set {SHARED_ENV} (CI has ../shared)")
    outcome, _ = evaluate_real(read_labels(REPO / REAL_LABELS), realdata)
    counts = outcome.report.counts
    # Precision first: at most one wrong merge in 200 (the bar), and none among the
    # shared-symbol crowds and wrapped or bridged tokens, where a careless rule merges most.
    assert counts.precision >= 0.995, outcome.report.errors
    wrong = Counter(r.pair.category for r in outcome.report.results if r.outcome == "fp")
    assert wrong["shared_symbol"] == wrong["wrapped_bridged"] == 0, wrong
    # 97 in 100 true pairs link on evidence alone (the bar; before it: none did).
    assert counts.recall >= 0.97, outcome.report.errors
    # The review queue holds what is left, not every asset two sources share (1,195 before).
    assert outcome.review_assets < 250
