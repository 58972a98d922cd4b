"""Extract: fetch a source's pages (or read its CSV files) into the raw zone.

Each page is written to the raw zone as soon as it arrives, before anything parses it further, so
a payload that later fails validation, or a run that dies mid-way, still leaves every response
received. A page whose body is not the documented shape is stored, then fails the source; a contract
listing whose body is not costs only that evidence: it is stored, and the run ledger warns.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flows import raw_zone
from flows.errors import ContractError, SourceError, TransientSourceError
from flows.faults import fault_point
from flows.sources import API_SOURCES, ApiSource, csv_files
from flows.sources.csv_files import (
    CsvProgress,
    inspect_csv_file,
    list_csv_files,
    unreadable_entries,
)
from flows.sources.http import Page
from flows.sources.replay import replay_transport
from flows.sources.settings import CsvSettings, HttpSourceSettings

logger = logging.getLogger(__name__)


@dataclass
class Extracted:
    source: str
    raw_files: list[str] = field(default_factory=list)
    records: int = 0
    requests: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    """Worth an operator's look, kept in the run ledger: schema drift (a mapped field absent from
    every record of a page), a CSV file that changed since it was loaded."""
    problems: list[str] = field(default_factory=list)
    """Inputs kept in the raw zone but not loadable (a CSV file with an unknown header): the
    source loads the rest and is reported failed with these messages."""
    checkpoints: dict[str, str] = field(default_factory=dict)
    """Per-input checkpoint positions to commit with the data (CSV: ``file:<name>`` ->
    :class:`CsvProgress` position)."""
    contract_records: int = 0
    """Records of contract listings (identity evidence), not counted in ``records``."""
    reused_pages: int = 0
    """Pages a resumed run took from its own raw zone instead of fetching them again."""
    payloads: list[str] = field(default_factory=list)
    """Each page or file kept, in fetch order, as what it answered and its sha256: the
    delivery's identity (flows.delivery)."""

    def keep(self, raw: raw_zone.RawFile, page: Page) -> None:
        """Count a page that is in the raw zone as part of this extract."""
        self.raw_files.append(raw.relative)
        self.payloads.append(f"{page.endpoint.name} {page.page} {page.subject} {page.sha256}")
        if page.endpoint.role == "quotes":
            self.records += raw.records
        else:
            self.contract_records += raw.records


def extract_api(
    source: ApiSource[Any],
    settings: HttpSourceSettings,
    *,
    raw_root: Path,
    run_id: str,
    started_at: datetime,
    replay_dir: Path | None = None,
) -> Extracted:
    spec = source.spec
    clock = time.perf_counter()
    transport = replay_transport(replay_dir, spec) if replay_dir else None
    http = source.open(
        settings, transport=transport, replay=replay_dir is not None, rate_limit=replay_dir is None
    )
    # A resumed run (a retry, or the next run after a crash) takes the pages it already holds.
    http.reuse = raw_zone.StoredPages(raw_root, spec.name, run_id, started_at)
    expected = {p.split(".")[0] for p in spec.columns.values() if not p.startswith("@")}
    out = Extracted(spec.name)
    try:
        for page in source.pages(http, settings):
            if page.reused_from:
                raw = raw_zone.RawFile(page.reused_from, len(page.records))
                out.reused_pages += 1
            else:
                raw = raw_zone.write_page(raw_root, run_id, started_at, page)
                fault_point("after_page", source=spec.name, page=page.page or 1)
            out.keep(raw, page)
            if page.endpoint.role == "contracts":
                if note := listing_problem(page):
                    out.warnings.append(
                        f"{note}; the payload is kept in the raw zone at {raw.relative}: this "
                        "run's new assets were resolved without its contract addresses"
                    )
                    logger.warning("%s: %s", spec.name, out.warnings[-1])
                continue
            if page.shape_error:
                raise page_failure(page, raw.relative)
            if page.split and page.records and page.endpoint.role == "quotes":
                for missing in sorted(expected - page.split.keys):
                    note = (
                        f"{page.endpoint.name} page {page.page or 1}: field {missing!r} is "
                        "absent from every record"
                    )
                    out.warnings.append(f"schema drift: {note}")
                    logger.warning("%s schema drift: %s", spec.name, note)
    finally:
        out.requests = http.requests
        out.warnings.extend(http.warnings)
        out.seconds = time.perf_counter() - clock
        http.client.close()
    fault_point("after_raw", source=spec.name)
    return out


def page_failure(page: Page, kept_at: str) -> SourceError:
    """Why a stored page with a shape error fails its source: a broken delivery is transient (the
    run may be retried), well-formed JSON of the wrong shape means the API changed."""
    if page.broken:
        return TransientSourceError(
            page.source,
            f"HTTP 200 but {page.shape_error}; the last body is kept in the raw zone at {kept_at}. "
            "A proxy, captive portal or the source's bot protection may have answered instead of "
            "the API: retry the run later",
            url=page.url,
        )
    return ContractError(
        page.source,
        f"{page.shape_error}; the payload is kept in the raw zone at {kept_at}. The API may have "
        "changed: compare it with the documented shape, then update "
        f"flows/sources/{page.source}.py",
        url=page.url,
    )


def listing_problem(page: Page) -> str | None:
    """What makes a contract listing no evidence, if anything: a body that is not its documented
    shape, or no record where the endpoint always lists some (CoinGecko's list of every coin;
    CoinPaprika's ``[]`` for a platform just means it lists no contract there)."""
    of = f" of {json.loads(page.subject)[page.endpoint.subject_key]}" if page.subject else ""
    if page.shape_error:
        return f"contract listing{of} unusable ({page.url}: {page.shape_error})"
    if not page.records:
        return None if page.endpoint.may_be_empty else f"contract listing{of} is empty ({page.url})"
    assert page.split is not None  # records come from a split
    if missing := sorted(set(page.endpoint.fields) - page.split.keys):
        return f"contract listing{of} has no {missing} in any record ({page.url})"
    return None


def extract(
    source: str,
    *,
    raw_root: Path,
    run_id: str,
    started_at: datetime,
    replay_dir: Path | None,
    csv_loaded: Mapping[str, str] | None = None,
) -> Extracted:
    """Extract one source by name: live, or from ``replay_dir`` in the replay layout.
    ``csv_loaded`` holds the CSV checkpoints (``file:<name>`` -> position) already committed."""
    if source == csv_files.SOURCE_NAME:
        csv_dir = replay_dir / "csv" if replay_dir else CsvSettings().dir
        loaded = {
            stream.removeprefix("file:"): CsvProgress.from_position(position)
            for stream, position in (csv_loaded or {}).items()
        }
        return extract_csv(
            csv_dir, raw_root=raw_root, run_id=run_id, started_at=started_at, loaded=loaded
        )
    api = API_SOURCES[source]
    return extract_api(
        api,
        api.settings_type(),
        raw_root=raw_root,
        run_id=run_id,
        started_at=started_at,
        replay_dir=replay_dir,
    )


def extract_csv(
    csv_dir: Path,
    *,
    raw_root: Path,
    run_id: str,
    started_at: datetime,
    loaded: Mapping[str, CsvProgress] | None = None,
) -> Extracted:
    """Read the CSV files not loaded yet into the raw zone: a file loaded before with the same
    bytes is skipped, a grown file contributes only its new lines, a changed one is loaded again
    as a new version (with a warning)."""
    clock = time.perf_counter()
    out = Extracted("csv")
    files = list_csv_files(csv_dir)
    for problem in unreadable_entries(csv_dir):
        out.problems.append(problem)
        logger.error("csv: %s", problem)
    if not files and not out.problems:
        logger.info("csv: no *.csv files in %s; nothing to load", csv_dir)
    for path in files:
        file = inspect_csv_file(path, (loaded or {}).get(path.name))
        if file.change == "unchanged":
            logger.info("csv: %s is already loaded (same sha256); skipped", path.name)
            continue
        raw = raw_zone.write_csv(raw_root, run_id, started_at, file)
        out.records += raw.records
        if file.problem:
            out.problems.append(f"{file.problem} (kept in the raw zone at {raw.relative})")
            logger.error("csv: %s", out.problems[-1])
            continue
        if file.change == "grown":
            logger.info("csv: %s grew; loading its %d new lines", path.name, file.line_count)
        if file.change == "changed":
            out.warnings.append(
                f"{path.name} changed since it was loaded: loaded again as a new version "
                f"({raw.relative}); rows for the same asset and date take the new values"
            )
            logger.warning("csv: %s", out.warnings[-1])
        out.raw_files.append(raw.relative)
        out.payloads.append(f"csv {path.name} {file.first_line} {file.sha256}")
        assert file.progress is not None
        out.checkpoints[f"file:{path.name}"] = file.progress.position()
    out.seconds = time.perf_counter() - clock
    fault_point("after_raw", source=csv_files.SOURCE_NAME)
    return out
