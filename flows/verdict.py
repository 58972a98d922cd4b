"""Whether a source's load is ``loaded``, ``degraded`` or ``failed``, from what it delivered.

A source that delivered records but loaded none of them is failed: a run that quarantined a
whole listing (a renamed field, a payload in another shape) must not read as a success in the
ledger, the exit code, ``/health`` or ``/stats``. A source whose valid share falls below
``KASPARRO_MIN_VALID_SHARE`` is degraded: what was valid is loaded, and the run says so.
"""

from __future__ import annotations

from collections import Counter

import polars as pl

from store import runs


def judge(
    result: runs.SourceResult, quarantine_reasons: Counter[str], *, min_valid_share: float
) -> None:
    """Set ``result.status`` and ``result.error`` from its counts (filled in by the load).
    ``quarantine_reasons`` counts the reasons of this load's quarantined records, the most
    frequent of which the message names. A status already failed is kept."""
    if result.status == "failed":
        return
    good = result.valid + result.duplicates
    checked = good + result.quarantined
    if checked == 0:
        return
    share = good / checked
    reasons = ", ".join(f"{reason} ({n})" for reason, n in quarantine_reasons.most_common(3))
    if result.valid == 0:
        result.status = "failed"
        result.error = (
            f"{checked} records delivered, none valid (quarantined: {reasons}): nothing was "
            "loaded. The records and the reasons are in the quarantine table and the payloads "
            "in the raw zone; if the source changed its payload, see /api/v1/drift"
        )
    elif share < min_valid_share:
        result.status = "degraded"
        result.error = (
            f"only {good} of {checked} records valid ({share:.1%}, below the floor "
            f"{min_valid_share:.0%} of KASPARRO_MIN_VALID_SHARE; quarantined: {reasons}); the "
            "valid ones were loaded"
        )


def reasons_of(quarantine: pl.DataFrame) -> Counter[str]:
    """How many quarantined records gave each reason."""
    return Counter(
        {str(r): int(n) for r, n in quarantine.group_by("reason").len().iter_rows() if r}
    )
