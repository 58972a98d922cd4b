"""One extracted batch, from its raw-zone files to validated quotes and quarantine rows."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from flows import raw_zone
from flows.transform.quotes import Validated, validate
from flows.transform.staging import stage


def transform_raw_files(raw_root: Path, files: Iterable[str]) -> Validated:
    return validate(stage(raw_zone.read_raw(raw_root, files)))
