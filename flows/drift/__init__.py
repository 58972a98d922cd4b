"""Schema drift: each source's contract (:mod:`.contract`), the observation of each run's
payload (:mod:`.observe`), the events their comparison finds (:mod:`.compare`), and what the
source's policy does about each (:mod:`.check`, which the load imports directly: staging reads
the contract, and the check reads validated batches)."""

from flows.drift.contract import Contract, contract_of, renamed_spec
from flows.drift.settings import DriftSettings, get_drift_settings

__all__ = ["Contract", "DriftSettings", "contract_of", "get_drift_settings", "renamed_spec"]
