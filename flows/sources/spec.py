"""How a source is declared: its endpoints, natural key, checkpoint field and column mapping.

Every source module (``coingecko``, ``coinpaprika``, ``coincap``, ``csv_files``) declares one
:class:`SourceSpec`; the extract, replay, raw zone and staging code read these declarations
instead of knowing any source by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

TimeFormat = Literal["iso8601", "epoch_ms", "csv_datetime"]
RecordFormat = Literal["json", "csv", "series"]
"""``json``: records are objects; ``csv``: records are lines; ``series``: records are
``[epoch_ms, value]`` pairs, with more series of the same timestamps in the envelope (CoinGecko's
market charts)."""
Kind = Literal["snapshot", "history"]
IdStyle = Literal["name_slug", "symbol_name_slug", "symbol_colon_name"]
"""How a source mints its asset ids, which entity resolution reads as evidence: ``name_slug``
(CoinGecko, CoinCap: ``bitcoin-cash``), ``symbol_name_slug`` (CoinPaprika: ``bch-bitcoin-cash``,
the symbol at listing time first), ``symbol_colon_name`` (the legacy CSV: ``BCH:Bitcoin Cash``;
an id without a colon is read as a name slug)."""
Role = Literal["quotes", "contracts"]
"""What an endpoint's records are: quotes (staged into the warehouse's quotes) or contract
addresses of assets (identity evidence for entity resolution, see flows.transform.contracts)."""

# Canonical quote columns a source maps its fields to (see flows.transform.quotes).
CANONICAL_FIELDS = (
    "source_asset_id",
    "symbol",
    "name",
    "price_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "pct_change_24h",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "rank",
    "observed_at",
)

ENVELOPE_PREFIX = "@"
"""A mapped path starting with ``@`` is read from the response envelope, not the record
(CoinCap puts the observation time in the envelope's ``timestamp``)."""
SUBJECT_PREFIX = "^"
"""A mapped path starting with ``^`` is read from the request's subject: the asset a per-asset
request was about (history records do not name their asset)."""
SUBJECT_FIELDS = ("source_asset_id", "symbol", "name")


@dataclass(frozen=True)
class Endpoint:
    """One HTTP endpoint of a source.

    ``name`` is also the replay file or directory name and the raw-zone file prefix.
    """

    name: str
    path: str
    records_key: str | None
    """``None`` when the body is a JSON array of records, else the envelope key holding it."""
    page_of: Callable[[Mapping[str, str]], int] | None = None
    """Page number (1-based) from a request's query parameters; ``None`` for unpaged endpoints."""
    array_records: bool = False
    """Records are JSON arrays (``[epoch_ms, value]``), not objects."""
    role: Role = "quotes"
    subject_key: str = "source_asset_id"
    """The subject field a per-subject path names (an asset id, or a platform id)."""
    fields: tuple[str, ...] = ()
    """Of a contract listing: the record fields it is read by; a listing whose records all lack
    one is no evidence (the run ledger warns). Quote endpoints are checked by their mapping."""
    may_be_empty: bool = True
    """An empty record array is a valid answer (the end of paging, a platform without
    contracts); False where it can only be a failure (a list of every coin)."""

    @property
    def paged(self) -> bool:
        return self.page_of is not None

    @property
    def per_subject(self) -> bool:
        """The path names one subject: ``coins/{subject}/market_chart/range``."""
        return "{subject}" in self.path

    def path_pattern(self) -> re.Pattern[str]:
        """Matches a request path of this endpoint; the ``subject`` group names the asset."""
        escaped = re.escape(self.path).replace(re.escape("{subject}"), "(?P<subject>[^/]+)")
        return re.compile(f"/{escaped}/?$")

    @property
    def empty_body(self) -> bytes:
        return b"[]" if self.records_key is None else b'{"%s": []}' % self.records_key.encode()

    def replay_file(self, page: int | None, subject: str | None = None) -> str:
        """Path of a recorded response relative to ``<replay dir>/<source>/``."""
        if self.per_subject:
            return f"{self.name}/{subject}.json"
        if self.paged:
            return f"{self.name}/page-{page or 1:04d}.json"
        return f"{self.name}.json"


@dataclass(frozen=True)
class SourceSpec:
    name: str
    title: str
    natural_key: tuple[str, ...]
    """Fields of a source record that identify one observation (documented in the README)."""
    checkpoint_field: str
    """The record field whose maximum is kept as the source's checkpoint."""
    columns: Mapping[str, str]
    """Canonical field -> dotted path in the record (or ``@key`` in the envelope)."""
    time_format: TimeFormat
    record_format: RecordFormat = "json"
    kind: Kind = "snapshot"
    """``snapshot``: a live listing, loaded incrementally (a record not newer than the stored one
    for its asset is unchanged); ``history``: daily rows, which never overwrite a snapshot."""
    endpoints: tuple[Endpoint, ...] = ()
    """Quote endpoints, then any contract endpoints (``role="contracts"``) of the source."""
    sentinel_nulls: Mapping[str, str] = field(default_factory=dict)
    """Canonical field -> served value that means "unknown" (CoinPaprika's ``max_supply: 0``)."""
    id_style: IdStyle = "name_slug"
    numbers_as: Literal["number", "string"] = "number"
    """The JSON type the source writes its numbers as (CoinCap writes ``"91128.92"``): part of
    its schema contract (flows.drift.contract)."""

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(CANONICAL_FIELDS)
        missing = {"source_asset_id", "symbol", "name", "price_usd", "observed_at"} - set(
            self.columns
        )
        if unknown or missing:
            raise ValueError(
                f"source {self.name}: column mapping has unknown fields {sorted(unknown)} "
                f"and lacks required fields {sorted(missing)}"
            )

    @property
    def quote_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.role == "quotes")

    def endpoint(self, name: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        raise KeyError(f"source {self.name} has no endpoint {name!r}")
