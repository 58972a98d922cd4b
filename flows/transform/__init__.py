"""polars transforms: raw-zone rows -> staged text -> validated, typed quotes."""

from flows.transform.batch import transform_raw_files, transformed
from flows.transform.quotes import VALIDATED, Validated, validate
from flows.transform.staging import STAGED, Staged, stage

__all__ = [
    "STAGED",
    "VALIDATED",
    "Staged",
    "Validated",
    "stage",
    "transform_raw_files",
    "transformed",
    "validate",
]
