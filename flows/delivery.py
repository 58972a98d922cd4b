"""A source's delivery: the payloads one extract kept in the raw zone, identified by their bytes
and by the code that derives rows from them.

Two runs whose deliveries have the same identity would load the same rows: a run whose source
delivered exactly what the source's previous load did is recorded without transforming or
merging anything again (flows.load.record_repeat). The code is part of the identity because a
fixed validation rule or a new column mapping changes what the same bytes load as: after an
upgrade, the next run of each source loads in full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import flows
import store

CODE_PACKAGES = (flows, store)
"""Everything from the HTTP split to the MERGE lives in these (specs, rules, resolution, SQL)."""
CODE_SUFFIXES = frozenset({".py", ".sql", ".csv"})
LIBRARIES = ("polars", "duckdb", "msgspec")
"""They parse the numbers and times: a new version may read the same text differently."""


def _code_sha256() -> str:
    digest = hashlib.sha256()
    for library in LIBRARIES:
        digest.update(f"{library}=={metadata.version(library)}\n".encode())
    for package in CODE_PACKAGES:
        root = Path(package.__path__[0])
        for path in sorted(p for p in root.rglob("*") if p.suffix in CODE_SUFFIXES):
            digest.update(f"{package.__name__}/{path.relative_to(root)}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# Read when the code is imported, not at the first load: a long-lived worker may see its files
# replaced on disk while it keeps running what it imported.
_CODE_SHA256 = _code_sha256()


def code_sha256() -> str:
    """The identity of the code and libraries this process runs."""
    return _CODE_SHA256


def delivery_sha256(payloads: Sequence[str]) -> str:
    """The identity of a delivery: ``payloads`` (each page or file as what it answered and its
    sha256, in fetch order; see flows.extract.Extracted) read by this code."""
    digest = hashlib.sha256(code_sha256().encode())
    for payload in payloads:
        digest.update(f"\n{payload}".encode())
    return digest.hexdigest()
