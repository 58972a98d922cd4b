"""The sources Kasparro extracts, declared in one place each.

``API_SOURCES`` maps a name to its :class:`ApiSource`; ``csv`` is the legacy-file source.
``SOURCE_NAMES`` is also the load order, which keeps entity resolution deterministic.
"""

from __future__ import annotations

from typing import Any

from flows.sources import coincap, coingecko, coinpaprika, csv_files
from flows.sources.api import Access, ApiSource
from flows.sources.http import Page, SourceHttp
from flows.sources.spec import Endpoint, IdStyle, SourceSpec

API_SOURCES: dict[str, ApiSource[Any]] = {
    source.spec.name: source for source in (coingecko.SOURCE, coinpaprika.SOURCE, coincap.SOURCE)
}
SOURCE_NAMES: tuple[str, ...] = (*API_SOURCES, csv_files.SOURCE_NAME)
ID_STYLES: dict[str, IdStyle] = {
    **{name: source.spec.id_style for name, source in API_SOURCES.items()},
    # The CSV layouts' ids tell themselves apart: SYMBOL:Name, or a name slug.
    csv_files.SOURCE_NAME: csv_files.DAILY_HISTORY.id_style,
}
"""How each source mints asset ids (evidence for entity resolution)."""


def spec_for(source: str, endpoint: str) -> SourceSpec:
    """The spec that describes records of ``source`` from ``endpoint`` (a CSV layout for csv)."""
    if source == csv_files.SOURCE_NAME:
        return csv_files.LAYOUTS[endpoint]
    api = API_SOURCES[source]
    specs = [api.spec, *([api.history.spec] if api.history else [])]
    for spec in specs:
        if any(e.name == endpoint for e in spec.endpoints):
            return spec
    raise KeyError(f"source {source} has no endpoint {endpoint!r}")


__all__ = [
    "API_SOURCES",
    "ID_STYLES",
    "SOURCE_NAMES",
    "Access",
    "ApiSource",
    "Endpoint",
    "Page",
    "SourceHttp",
    "SourceSpec",
    "spec_for",
]
