"""Measuring entity resolution: precision, recall and F1 of cross-source links against labels.

A labels file is a CSV with the header ``source_a,id_a,source_b,id_b,same`` and, optionally,
``category`` and ``note`` columns; ``same`` is ``true`` or ``false``. Each row states a fact about
two source assets: whether they are the same real-world asset.

The resolver predicts *same* for a pair when both assets are mapped to one ``coin_id`` in
``coin_source_ids``. An asset the warehouse does not hold predicts *not same*, and is listed as
``missing`` as well, so that a typo in the labels (or an asset quarantined or never ingested)
shows instead of hiding among the negatives.

Metrics, with the 0/0 cases defined:

* precision = tp / (tp + fp), 1.0 when nothing labelled was linked (no wrong merge was made);
* recall = tp / (tp + fn), 1.0 when no pair is labelled same (there was nothing to find);
* F1 = 2 * precision * recall / (precision + recall), 0.0 when both are 0.

Errors (a :class:`flows.errors.CuratedFileError`):

    LabelsError   the labels file is missing, unreadable or invalid (every problem, file:line)
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from flows.errors import CuratedFileError
from flows.sources import SOURCE_NAMES

REQUIRED_COLUMNS = ("source_a", "id_a", "source_b", "id_b", "same")
OPTIONAL_COLUMNS = ("category", "note")
UNCATEGORISED = "uncategorised"
_BOOLEANS = {"true": True, "false": False}

Outcome = Literal["tp", "fp", "fn", "tn"]


class LabelsError(CuratedFileError):
    """The labels file cannot be used; ``problems`` lists each one as ``file:line: what``."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        listed = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(
            f"{path}: {len(problems)} problem(s) in the labels file:\n{listed}\n"
            f"expected the header {','.join(REQUIRED_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}], "
            f"sources among {', '.join(SOURCE_NAMES)}, same = true or false, each pair once"
        )
        self.path = path
        self.problems = list(problems)


@dataclass(frozen=True, slots=True, order=True)
class AssetRef:
    source: str
    source_asset_id: str

    def __str__(self) -> str:
        return f"{self.source}/{self.source_asset_id}"


@dataclass(frozen=True, slots=True)
class LabelledPair:
    a: AssetRef
    b: AssetRef
    same: bool
    category: str = UNCATEGORISED
    note: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class AssetLink:
    """One row of ``coin_source_ids``: the coin a source asset was mapped to, and how."""

    source: str
    source_asset_id: str
    coin_id: str
    method: str
    confidence: float

    @property
    def ref(self) -> AssetRef:
        return AssetRef(self.source, self.source_asset_id)


@dataclass(frozen=True, slots=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def pairs(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        linked = self.tp + self.fp
        return self.tp / linked if linked else 1.0

    @property
    def recall(self) -> float:
        same = self.tp + self.fn
        return self.tp / same if same else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class PairResult:
    pair: LabelledPair
    outcome: Outcome
    link_a: AssetLink | None
    link_b: AssetLink | None

    @property
    def error(self) -> str | None:
        """``false merge`` (labelled different, linked), ``missed link`` (labelled same, not
        linked) or None."""
        return {"fp": "false merge", "fn": "missed link"}.get(self.outcome)


@dataclass(frozen=True, slots=True)
class MissingAsset:
    asset: AssetRef
    lines: tuple[int, ...]


@dataclass(frozen=True)
class Report:
    results: tuple[PairResult, ...]
    counts: Counts
    by_category: Mapping[str, Counts]
    missing: tuple[MissingAsset, ...]
    mapped_assets: int
    """How many source assets the evaluated warehouse maps (labelled or not)."""

    @property
    def errors(self) -> tuple[PairResult, ...]:
        return tuple(r for r in self.results if r.error is not None)


def read_labels(path: Path) -> list[LabelledPair]:
    """The labelled pairs of ``path``, validated; every problem is reported at once."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelsError(path, [f"{path}: cannot read it ({exc})"]) from exc
    rows = [(line, row) for line, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise LabelsError(path, [f"{path}: the file is empty"])
    header_line, header = rows[0]
    columns = [cell.strip() for cell in header]
    problems = _header_problems(columns)
    if problems:
        raise LabelsError(path, [f"{path}:{header_line}: {p}" for p in problems])
    pairs: list[LabelledPair] = []
    first_seen: dict[frozenset[AssetRef], int] = {}
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        if len(row) != len(columns):
            problems.append(f"{where}: expected {len(columns)} fields, found {len(row)}")
            continue
        cells = dict(zip(columns, (cell.strip() for cell in row), strict=True))
        pair, row_problems = _pair(cells, line)
        problems += [f"{where}: {p}" for p in row_problems]
        if pair is None:
            continue
        key = frozenset((pair.a, pair.b))
        if key in first_seen:
            problems.append(
                f"{where}: the pair {pair.a} / {pair.b} is already labelled on line "
                f"{first_seen[key]} (a pair and its reverse are the same pair)"
            )
            continue
        first_seen[key] = line
        pairs.append(pair)
    if not pairs and not problems:
        problems.append(f"{path}: no labelled pairs below the header")
    if problems:
        raise LabelsError(path, problems)
    return pairs


def _header_problems(columns: list[str]) -> list[str]:
    problems = []
    if missing := [c for c in REQUIRED_COLUMNS if c not in columns]:
        problems.append(f"header lacks column(s) {', '.join(missing)} (found {','.join(columns)})")
    if unknown := [c for c in columns if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if repeated := sorted(c for c, n in Counter(columns).items() if n > 1):
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    return problems


def _pair(cells: dict[str, str], line: int) -> tuple[LabelledPair | None, list[str]]:
    problems = []
    for side in ("a", "b"):
        source, asset_id = cells[f"source_{side}"], cells[f"id_{side}"]
        if source not in SOURCE_NAMES:
            problems.append(
                f"source_{side} {source!r} is not a source (one of {', '.join(SOURCE_NAMES)})"
            )
        if not asset_id:
            problems.append(f"id_{side} is empty")
    same = _BOOLEANS.get(cells["same"].lower())
    if same is None:
        problems.append(f"same is {cells['same']!r}, not true or false")
    if problems or same is None:
        return None, problems
    a = AssetRef(cells["source_a"], cells["id_a"])
    b = AssetRef(cells["source_b"], cells["id_b"])
    if a == b:
        return None, [f"both sides are {a}: a pair needs two different assets"]
    if a.source == b.source and same:
        return None, [
            f"{a} and {b} are both {a.source} assets labelled same: a source lists an asset "
            "once, so a same-source pair can only be false"
        ]
    category = cells.get("category") or UNCATEGORISED
    return LabelledPair(a, b, same, category, cells.get("note", ""), line), []


def read_links(con: duckdb.DuckDBPyConnection) -> list[AssetLink]:
    """Every mapping in ``coin_source_ids`` of the warehouse or snapshot ``con`` is open on."""
    rows = con.execute(
        """
        select
            source,
            source_asset_id,
            coin_id,
            method,
            confidence
        from coin_source_ids
        """
    ).fetchall()
    return [AssetLink(*row) for row in rows]


def evaluate(labels: Sequence[LabelledPair], links: Iterable[AssetLink]) -> Report:
    """Score ``links`` against ``labels`` (pure: no I/O)."""
    by_asset = {link.ref: link for link in links}
    total: Counter[Outcome] = Counter()
    per_category: defaultdict[str, Counter[Outcome]] = defaultdict(Counter)
    missing_lines: defaultdict[AssetRef, list[int]] = defaultdict(list)
    results = []
    for pair in labels:
        link_a, link_b = by_asset.get(pair.a), by_asset.get(pair.b)
        for ref, link in ((pair.a, link_a), (pair.b, link_b)):
            if link is None:
                missing_lines[ref].append(pair.line)
        predicted = link_a is not None and link_b is not None and link_a.coin_id == link_b.coin_id
        outcome: Outcome = (
            ("tp" if predicted else "fn") if pair.same else ("fp" if predicted else "tn")
        )
        total[outcome] += 1
        per_category[pair.category][outcome] += 1
        results.append(PairResult(pair, outcome, link_a, link_b))
    return Report(
        results=tuple(results),
        counts=_counts(total),
        by_category={name: _counts(per_category[name]) for name in sorted(per_category)},
        missing=tuple(
            MissingAsset(ref, tuple(lines)) for ref, lines in sorted(missing_lines.items())
        ),
        mapped_assets=len(by_asset),
    )


def _counts(outcomes: Counter[Outcome]) -> Counts:
    return Counts(tp=outcomes["tp"], fp=outcomes["fp"], fn=outcomes["fn"], tn=outcomes["tn"])


def format_report(report: Report, *, labels: Path, snapshot: Path) -> str:
    """The report as the command prints it: metrics, per-category counts, every error."""
    out = [
        f"entity resolution: {report.counts.pairs} labelled pairs ({labels}) against "
        f"{report.mapped_assets} mapped assets ({snapshot})",
        "",
        f"{'':<18} {'pairs':>6} {'tp':>5} {'fp':>5} {'fn':>5} {'tn':>5} "
        f"{'precision':>9} {'recall':>7} {'f1':>7}",
        _counts_row("all", report.counts),
        *(_counts_row(f"  {name}", counts) for name, counts in report.by_category.items()),
        "",
        "precision = tp/(tp+fp) (1 when no labelled pair was linked), recall = tp/(tp+fn)",
        "(1 when no pair is labelled same), F1 = 2PR/(P+R) (0 when both are 0)",
        "",
    ]
    errors = report.errors
    out.append(f"errors: {len(errors)}" + ("" if errors else " (none)"))
    for result in errors:
        pair = result.pair
        out.append(
            f"  line {pair.line}: {result.error} [{pair.category}] labelled "
            f"{'same' if pair.same else 'different'}" + (f" ({pair.note})" if pair.note else "")
        )
        out.append(f"    {_side(pair.a, result.link_a)}")
        out.append(f"    {_side(pair.b, result.link_b)}")
    out.append("")
    out.append(f"missing assets: {len(report.missing)}" + ("" if report.missing else " (none)"))
    if report.missing:
        out.append(
            "  (not in coin_source_ids, so counted as not linked: a typo in the labels, or an "
            "asset quarantined or not ingested)"
        )
    for missing in report.missing:
        lines = ", ".join(str(line) for line in missing.lines)
        out.append(f"  {missing.asset} (line{'s' if len(missing.lines) > 1 else ''} {lines})")
    return "\n".join(out)


def _counts_row(label: str, c: Counts) -> str:
    return (
        f"{label:<18} {c.pairs:>6} {c.tp:>5} {c.fp:>5} {c.fn:>5} {c.tn:>5} "
        f"{c.precision:>9.4f} {c.recall:>7.4f} {c.f1:>7.4f}"
    )


def _side(ref: AssetRef, link: AssetLink | None) -> str:
    if link is None:
        return f"{ref}: missing from the warehouse"
    return f"{ref}: coin {link.coin_id} ({link.method}, confidence {link.confidence:.2f})"
