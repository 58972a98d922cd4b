"""Names as resolution compares them: normalised, split into words, scored for similarity, and
turned into the slug a new coin is founded under (see :mod:`flows.resolution`)."""

from __future__ import annotations

import difflib
import re
import unicodedata
from functools import lru_cache
from typing import Literal

from flows.sources.spec import IdStyle

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_WORDS = re.compile(r"[^\W_]+")
KEY_SEPARATOR = "\x1f"

NAME_SIMILAR = 0.75
GENERIC_WORDS = frozenset({"coin", "token", "network", "protocol", "the", "finance", "chain"})


@lru_cache(maxsize=1 << 16)
def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    return _SPACES.sub(" ", text).strip().casefold()


def match_key(symbol: str, name: str) -> str:
    return normalise(symbol) + KEY_SEPARATOR + normalise(name)


@lru_cache(maxsize=1 << 16)
def name_words(name: str) -> tuple[str, ...]:
    """The words of a normalised name that tell it apart: generic ones (``token``) left out
    unless nothing else is left, as :func:`same_name` compares them."""
    words = _WORDS.findall(normalise(name))
    return tuple(w for w in words if w not in GENERIC_WORDS) or tuple(words)


@lru_cache(maxsize=1 << 16)
def name_similarity(a: str, b: str) -> float:
    """1 for equal normalised names, else max(Jaccard of word sets, difflib ratio of the words
    run together), generic words (``token``, ``network``...) left out of both."""
    if normalise(a) == normalise(b):
        return 1.0
    wa, wb = name_words(a), name_words(b)
    union = set(wa) | set(wb)
    jaccard = len(set(wa) & set(wb)) / len(union) if union else 0.0
    ratio = difflib.SequenceMatcher(None, "".join(wa), "".join(wb), autojunk=False).ratio()
    return round(max(jaccard, ratio), 4)


@lru_cache(maxsize=1 << 16)
def _name_tokens(name: str) -> tuple[str, ...]:
    words = name_words(name)
    return (*words, "^" + "".join(words)[:4])


@lru_cache(maxsize=1 << 18)
def _similar(a: str, b: str) -> bool:
    """``name_similarity(a, b) >= NAME_SIMILAR``, cheaply refuted first: difflib's quick ratio
    bounds its ratio from above."""
    wa, wb = name_words(a), name_words(b)
    union = set(wa) | set(wb)
    if union and len(set(wa) & set(wb)) / len(union) >= NAME_SIMILAR:
        return True
    quick = difflib.SequenceMatcher(None, "".join(wa), "".join(wb), autojunk=False)
    return (
        quick.real_quick_ratio() >= NAME_SIMILAR
        and quick.quick_ratio() >= NAME_SIMILAR
        and (name_similarity(a, b) >= NAME_SIMILAR)
    )


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")[:40].strip("-")


def bears_name(outer: str, inner: str) -> bool:
    """Whether ``outer`` holds the words of ``inner`` together and in order, generic words
    aside: ``Helium IOT`` and ``Argonon Helium`` bear ``Helium`` and ``Helium Token``;
    ``OpenEden`` does not bear ``Eden``."""
    words, run = name_words(outer), name_words(inner)
    return bool(run) and any(
        words[i : i + len(run)] == run for i in range(len(words) - len(run) + 1)
    )


def natural_coin_id(symbol: str, name: str) -> str:
    """The id an asset founds a coin under: ``btc-bitcoin``."""
    return "-".join(part for part in (_slug(symbol), _slug(name)) if part) or "asset"


# --- source ids ----------------------------------------------------------------------------------

IdRelation = Literal["exact", "joined"]


@lru_cache(maxsize=1 << 18)
def same_name(a: str, b: str) -> bool:
    """Names identical once normalised, or once generic words and the spaces between words are
    dropped too (``Synthetix Network Token`` / ``Synthetix Network``, ``KZ Cash`` / ``Kzcash``)."""
    return normalise(a) == normalise(b) or "".join(name_words(a)) == "".join(name_words(b))


@lru_cache(maxsize=1 << 18)
def id_slugs(asset_id: str, symbol: str, style: IdStyle = "name_slug") -> frozenset[str]:
    """The name slugs a source id carries. Sources mint ids from an asset's name when they list
    it and never change them, so an id remembers the name an asset was listed under (the
    source's :data:`flows.sources.spec.IdStyle`):

    * ``name_slug`` (CoinGecko, CoinCap): the id itself (``bitcoin-cash``); a later asset that
      takes a listed name gets a numeric suffix (``dash-2``), which keeps it apart;
    * ``symbol_name_slug`` (CoinPaprika, ``bch-bitcoin-cash``): also the id without its first
      part, the symbol it was listed under (``hav-havven`` is Synthetix, SNX today), when what
      follows holds a letter;
    * ``symbol_colon_name`` (legacy CSV, ``BCH:Bitcoin Cash``): the part after the last colon.
    """
    slug = _NOT_SLUG.sub("-", asset_id.casefold()).strip("-")
    slugs = {slug}
    if style == "symbol_colon_name" and ":" in asset_id:
        slugs = {_NOT_SLUG.sub("-", asset_id.rsplit(":", 1)[1].casefold()).strip("-")}
    elif style == "symbol_name_slug":
        prefix = _NOT_SLUG.sub("-", normalise(symbol)).strip("-") + "-"
        rest = slug[len(prefix) :] if prefix != "-" and slug.startswith(prefix) else ""
        rest = rest or slug.partition("-")[2]
        if re.search("[a-z]", rest):
            slugs.add(rest)
    return frozenset(s for s in slugs if s)


@lru_cache(maxsize=1 << 18)
def joined_slugs(slugs: frozenset[str]) -> frozenset[str]:
    """The slugs without separators: ``binance-coin`` and ``binancecoin`` are one name."""
    return frozenset(s.replace("-", "") for s in slugs)


def listed_ticker(asset_id: str, symbol: str, style: IdStyle = "name_slug") -> str | None:
    """The ticker a ``symbol_name_slug`` id was minted under (``rndr`` of ``rndr-render-token``),
    when it is not the asset's symbol today: the id remembers a ticker the asset has changed
    since its source listed it. None for other id styles, or an unchanged ticker."""
    if style != "symbol_name_slug":
        return None
    first = _NOT_SLUG.sub("-", asset_id.casefold()).strip("-").partition("-")[0]
    return first if first and first != symbol_slug(symbol) else None


def symbol_slug(symbol: str) -> str:
    """A symbol as ids write it: ``RNDR`` is ``rndr``."""
    return _NOT_SLUG.sub("-", normalise(symbol)).strip("-")


def near_symbols(a: str, b: str) -> bool:
    """One normalised symbol holds the other, two letters or more (MIOTA and IOTA, CLB and CLBK,
    NLC and NLC2): a ticker that was extended or trimmed."""
    shorter, longer = sorted((normalise(a), normalise(b)), key=len)
    return len(shorter) >= 2 and shorter in longer


_OLD_MARKER = re.compile(r"[\[(]\s*old\s*[\])]")


def reminted_from(asset_id: str, name: str) -> str | None:
    """The id a source gave a migrated token's new listing, when it re-minted the old one's as
    ``<id>-old`` and marked its name (``bittorrent-old``, BitTorrent [OLD], beside
    ``bittorrent``): the plain id was the old token's."""
    if not asset_id.casefold().endswith("-old") or not _OLD_MARKER.search(normalise(name)):
        return None
    return asset_id[: -len("-old")] or None


_DISAMBIGUATED = re.compile(r"^(?P<base>.*[a-z].*)-\d{1,3}$")


def disambiguated(slug: str) -> str | None:
    """The id a numeric suffix set this one apart from (``ethos`` for ``ethos-3``), if any."""
    match = _DISAMBIGUATED.match(slug)
    return match["base"] if match else None


@lru_cache(maxsize=1 << 18)
def compare_ids(a: frozenset[str], b: frozenset[str]) -> IdRelation | None:
    """How two assets' id slugs (:func:`id_slugs`) relate: ``exact``, they share a slug
    (``bch-bitcoin-cash`` and ``bitcoin-cash``); ``joined``, they share one once separators are
    dropped (``binance-coin`` and ``binancecoin``, ``cro-cryptocom-chain`` and
    ``crypto-com-chain``); else ``None``."""
    if a & b:
        return "exact"
    if joined_slugs(a) & joined_slugs(b):
        return "joined"
    return None


def names_slug(slug: str, name: str) -> bool:
    """Whether an id slug is the name's (separators aside): the id was minted from this name."""
    return slug.replace("-", "") == _slug(name).replace("-", "")


def shared_slug(a: frozenset[str], b: frozenset[str]) -> str | None:
    """The slug two ids share (without separators when only that way), the first in order:
    evidence that names the name, not which source's id carried it."""
    return min(a & b, default=None) or min(joined_slugs(a) & joined_slugs(b), default=None)
