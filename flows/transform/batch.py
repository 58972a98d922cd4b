"""One extracted batch, from its raw-zone files to validated quotes and quarantine rows."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from flows import raw_zone
from flows.faults import fault_point
from flows.transform.quotes import Validated, validate
from flows.transform.staging import stage


def transform_raw_files(raw_root: Path, files: Iterable[str]) -> Validated:
    raw = raw_zone.read_raw(raw_root, files)
    staged = stage(raw)
    fault_point("mid_transform", source=raw["source"][0] if raw.height else None)
    return validate(staged)
