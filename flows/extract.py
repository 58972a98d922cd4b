"""Extract: fetch a source's pages (or read its CSV files) into the raw zone.

Each page is written to the raw zone as soon as it arrives, before anything parses it further, so
a payload that later fails validation, or a run that dies mid-way, still leaves every response
received. A page whose body is not the documented shape is stored, then fails the source.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flows import raw_zone
from flows.errors import ContractError
from flows.sources import API_SOURCES, ApiSource, csv_files
from flows.sources.csv_files import inspect_csv_file, list_csv_files
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
    drift: list[str] = field(default_factory=list)
    """Schema-drift notes: mapped fields absent from every record of a page."""
    problems: list[str] = field(default_factory=list)
    """Inputs kept in the raw zone but not loadable (a CSV file with an unknown header): the
    source loads the rest and is reported failed with these messages."""
    checkpoints: dict[str, str] = field(default_factory=dict)
    """Per-input checkpoint positions to commit with the data (CSV: file name -> sha256)."""


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
    expected = {p.split(".")[0] for p in spec.columns.values() if not p.startswith("@")}
    out = Extracted(spec.name)
    try:
        for page in source.pages(http, settings):
            raw = raw_zone.write_page(raw_root, run_id, started_at, page)
            out.raw_files.append(raw.relative)
            out.records += raw.records
            if page.shape_error:
                raise ContractError(
                    spec.name,
                    f"{page.shape_error}; the payload is kept in the raw zone at {raw.relative}. "
                    "The API may have changed: compare it with the documented shape, then update "
                    f"flows/sources/{spec.name}.py",
                    url=page.url,
                )
            if page.split and page.records:
                for missing in sorted(expected - page.split.keys):
                    note = (
                        f"{page.endpoint.name} page {page.page or 1}: field {missing!r} is "
                        "absent from every record"
                    )
                    out.drift.append(note)
                    logger.warning("%s schema drift: %s", spec.name, note)
    finally:
        out.requests = http.requests
        out.seconds = time.perf_counter() - clock
        http.client.close()
    return out


def extract(
    source: str, *, raw_root: Path, run_id: str, started_at: datetime, replay_dir: Path | None
) -> Extracted:
    """Extract one source by name: live, or from ``replay_dir`` in the replay layout."""
    if source == csv_files.SOURCE_NAME:
        csv_dir = replay_dir / "csv" if replay_dir else CsvSettings().dir
        return extract_csv(csv_dir, raw_root=raw_root, run_id=run_id, started_at=started_at)
    api = API_SOURCES[source]
    return extract_api(
        api,
        api.settings_type(),
        raw_root=raw_root,
        run_id=run_id,
        started_at=started_at,
        replay_dir=replay_dir,
    )


def extract_csv(csv_dir: Path, *, raw_root: Path, run_id: str, started_at: datetime) -> Extracted:
    clock = time.perf_counter()
    out = Extracted("csv")
    files = list_csv_files(csv_dir)
    if not files:
        logger.info("csv: no *.csv files in %s; nothing to load", csv_dir)
    for path in files:
        file = inspect_csv_file(path)
        raw = raw_zone.write_csv(raw_root, run_id, started_at, file)
        out.records += raw.records
        if file.problem:
            out.problems.append(f"{file.problem} (kept in the raw zone at {raw.relative})")
            logger.error("csv: %s", out.problems[-1])
            continue
        out.raw_files.append(raw.relative)
        out.checkpoints[f"file:{path.name}"] = file.sha256
    out.seconds = time.perf_counter() - clock
    return out
