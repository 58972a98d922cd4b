"""One extracted batch, from its raw-zone files to validated quotes, quarantine rows and the
contract addresses its sources published."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from flows import raw_zone
from flows.faults import fault_point
from flows.transform.contracts import contracts_of
from flows.transform.quotes import Validated, validate
from flows.transform.staging import stage


def transform_raw_files(raw_root: Path, files: Iterable[str]) -> Validated:
    raw = raw_zone.read_raw(raw_root, files)
    staged = stage(raw)
    fault_point("mid_transform", source=raw["source"][0] if raw.height else None)
    return dataclasses.replace(validate(staged), contracts=contracts_of(raw))
