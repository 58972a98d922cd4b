"""A copy of a replay recording with each source's capture moved in time, as if the sources had
not been captured together (a source down for a day, a key added a year later).

Every timestamp in a shifted source's payloads moves by the same number of days: CoinGecko's
``last_updated`` / ``ath_date`` / ``atl_date`` and its chart points, CoinPaprika's
``last_updated`` / ``first_data_at`` / ``ath_date`` and its historical ticks, CoinCap's envelope
``timestamp``. Contract listings (CoinGecko's ``coins_list.json``, CoinPaprika's ``contracts/``)
and the CSV files stay as they are.

Prices move with time, so a shifted source's money fields (price, market cap, volume, highs and
lows) are multiplied by a per-asset drift: ``exp(sigma * z)`` with ``sigma = 0.04 * sqrt(|days|)``
(a 4% daily volatility as a random walk) and ``z`` a standard normal drawn from
``random.Random(f"{seed}:{source}:{asset id}")``, so one asset drifts the same way in every file
of its source (markets pages, history) and every run gives the same bytes. Supplies and ranks do
not move. A source shifted by 0 days is copied byte for byte.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(.*)$")
_COINGECKO_MONEY = (
    "current_price", "market_cap", "fully_diluted_valuation", "total_volume", "high_24h",
    "low_24h", "price_change_24h", "market_cap_change_24h", "ath", "atl",
)  # fmt: skip
_COINPAPRIKA_MONEY = ("price", "volume_24h", "market_cap", "ath_price")
_COINCAP_MONEY = ("priceUsd", "marketCapUsd", "volumeUsd24Hr", "vwap24Hr")
_DAILY_SIGMA = 0.04


def drift(seed: int, source: str, asset: str, days: float) -> float:
    """The factor an asset's prices move by over ``days`` (see the module docstring)."""
    z = random.Random(f"{seed}:{source}:{asset}").gauss(0.0, 1.0)
    return math.exp(_DAILY_SIGMA * math.sqrt(abs(days)) * z)


def shift_recording(
    recording: Path, out: Path, days_by_source: Mapping[str, int], *, seed: int
) -> None:
    """Copy ``recording`` to ``out`` (which must not exist) with each source in
    ``days_by_source`` moved by its days (negative: into the past)."""
    shutil.copytree(recording, out)
    for source, days in days_by_source.items():
        if days == 0:
            continue
        shifter = _SHIFTERS.get(source)
        if shifter is None:
            raise ValueError(f"cannot shift source {source!r}: one of {', '.join(_SHIFTERS)}")
        shifter(out / source, days, seed)


def _shift_iso(text: str, days: int) -> str:
    """The ISO timestamp ``text`` moved by whole days, its fraction and offset kept as written."""
    match = _ISO.match(text)
    if match is None:
        return text
    moved = datetime.fromisoformat(match[1]) + timedelta(days=days)
    return moved.isoformat(timespec="seconds") + match[2]


def _scale(value: Any, factor: float) -> Any:
    """A number times ``factor``, in the form it came (a float, or CoinCap's decimal string);
    anything else (null, ``"n/a"``) as it is."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        # Ten significant digits, at most 18 places: what the warehouse holds exactly.
        scaled = Decimal(repr(value * factor))
        places = min(18, 10 - scaled.adjusted() - 1)
        return float(scaled.quantize(Decimal(1).scaleb(-places))) if scaled else 0.0
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        if not number.is_finite():
            return value
        exponent = number.as_tuple().exponent
        places = max(-exponent, 0) if isinstance(exponent, int) else 0
        with localcontext(prec=80):
            scaled = number * Decimal(repr(factor))
            return str(scaled.quantize(Decimal(1).scaleb(-places)))
    return value


def _rewrite(path: Path, change: Callable[[Any], Any]) -> None:
    payload = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(change(payload), ensure_ascii=False), encoding="utf-8")


def _shift_coingecko(folder: Path, days: int, seed: int) -> None:
    def record(r: dict[str, Any]) -> dict[str, Any]:
        factor = drift(seed, "coingecko", str(r.get("id")), days)
        for key in ("last_updated", "ath_date", "atl_date"):
            if isinstance(r.get(key), str):
                r[key] = _shift_iso(r[key], days)
        for key in _COINGECKO_MONEY:
            if key in r:
                r[key] = _scale(r[key], factor)
        return r

    for page in sorted((folder / "coins_markets").glob("*.json")):
        _rewrite(page, lambda records: [record(r) for r in records])
    for chart in sorted((folder / "coins_market_chart_range").glob("*.json")):
        factor = drift(seed, "coingecko", chart.stem, days)

        def points(series: dict[str, list[list[float]]], factor: float = factor) -> Any:
            return {
                key: [[at + days * 86_400_000, _scale(value, factor)] for at, value in values]
                for key, values in series.items()
            }

        _rewrite(chart, points)


def _shift_coinpaprika(folder: Path, days: int, seed: int) -> None:
    def ticker(r: dict[str, Any]) -> dict[str, Any]:
        factor = drift(seed, "coinpaprika", str(r.get("id")), days)
        for key in ("last_updated", "first_data_at"):
            if isinstance(r.get(key), str):
                r[key] = _shift_iso(r[key], days)
        for quote in (r.get("quotes") or {}).values():
            if isinstance(quote.get("ath_date"), str):
                quote["ath_date"] = _shift_iso(quote["ath_date"], days)
            for key in _COINPAPRIKA_MONEY:
                if key in quote:
                    quote[key] = _scale(quote[key], factor)
        return r

    _rewrite(folder / "tickers.json", lambda records: [ticker(r) for r in records])
    for history in sorted((folder / "tickers_historical").glob("*.json")):
        factor = drift(seed, "coinpaprika", history.stem, days)

        def ticks(records: list[dict[str, Any]], factor: float = factor) -> Any:
            for r in records:
                r["timestamp"] = _shift_iso(r["timestamp"], days)
                for key in ("price", "market_cap", "volume_24h"):
                    if key in r:
                        r[key] = _scale(r[key], factor)
            return records

        _rewrite(history, ticks)


def _shift_coincap(folder: Path, days: int, seed: int) -> None:
    def page(envelope: dict[str, Any]) -> dict[str, Any]:
        envelope["timestamp"] = envelope["timestamp"] + days * 86_400_000
        for r in envelope.get("data") or []:
            factor = drift(seed, "coincap", str(r.get("id")), days)
            for key in _COINCAP_MONEY:
                if key in r:
                    r[key] = _scale(r[key], factor)
        return envelope

    for assets in sorted((folder / "assets").glob("*.json")):
        _rewrite(assets, page)


_SHIFTERS: dict[str, Callable[[Path, int, int], None]] = {
    "coingecko": _shift_coingecko,
    "coinpaprika": _shift_coinpaprika,
    "coincap": _shift_coincap,
}
