"""What the API works out once per published snapshot, keyed by the snapshot's version.

A snapshot never changes between publishes, and a publish replaces the file (a new inode), so
its version is the file's identity (inode, mtime, size), as :mod:`web.snapshot` reads it: one
``stat`` per request. Two things hang off it:

* **Facts** (:class:`Facts`): the sources ``source=`` accepts, the size and time span of
  ``quotes``, coin ids by lowercase id and symbol; read once per version instead of on every
  request.
* **The quote layout** the writer builds for the snapshot after publishing it
  (:mod:`store.quote_layout`), opened by the app's warmer (:mod:`web.warmer`) once it is there;
  until then pages are read from the snapshot itself.
* **Responses**: a response's ETag is the version and the request (path, query, the kind of body
  asked for), so a client that sends it back gets ``304 Not Modified`` without any query; bodies
  of JSON responses are kept (least recently used first out, a byte budget) and served again
  until the next publish.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.enums import MediaType

from store.quote_layout import (
    LayoutError,
    QuoteLayout,
    manifest_path,
    open_quote_layout,
    snapshot_name,
)
from store.serving import CoinIndex, QuoteStats, coin_index, known_sources, quote_stats
from store.snapshot import FileIdentity, file_identity
from web.snapshot import Snapshot

logger = logging.getLogger(__name__)

Version = FileIdentity

CACHE_BYTES = 64 * 2**20
"""Response bodies kept at most (a page of 100 quotes is ~50 KB)."""
CSV = "text/csv"


def version_of(snapshot: Snapshot) -> Version | None:
    """The published snapshot's identity; None when there is none (the handler says so)."""
    try:
        return file_identity(snapshot.path)
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Facts:
    sources: tuple[str, ...] | None
    """None: the snapshot predates the list (an older Kasparro published it)."""
    stats: QuoteStats
    coins: CoinIndex
    version: Version | None = None
    """The snapshot file's identity, when no publish came while the facts were read."""


_facts_lock = threading.Lock()
_facts: dict[Version, Facts] = {}


def facts_of(snapshot: Snapshot) -> Facts:
    """The facts of the snapshot published now, read on a cursor of its own once per version."""
    before = version_of(snapshot)
    if before is not None and (known := _facts.get(before)) is not None:
        return known
    cursor = snapshot.cursor()
    try:
        facts = Facts(
            known_sources(cursor),
            quote_stats(cursor),
            coin_index(cursor),
        )
    finally:
        cursor.close()
    # Only if no publish came between: then the cursor read the version stat'ed.
    if before is not None and version_of(snapshot) == before:
        facts = dataclasses.replace(facts, version=before)
        with _facts_lock:
            _facts.clear()
            _facts[before] = facts
    return facts


def known_facts(request: Request[Any, Any, Any]) -> Facts | None:
    """The facts of the snapshot the request's ETag names, when they are read already: no
    query, no ``stat`` (for the event loop's thread)."""
    tag: _Tag | None = request.state.get("cache_tag")
    return _facts.get(tag.version) if tag is not None else None


class _OpenLayout:
    """The quote layout opened last, the identity of the manifest it was opened from, and the
    manifests that could not be opened (said once, not tried again until the writer replaces
    them)."""

    def __init__(self) -> None:
        self.layout: QuoteLayout | None = None
        self.manifest: FileIdentity | None = None
        self.unusable: set[tuple[Version, FileIdentity]] = set()

    def keep(self, layout: QuoteLayout | None, manifest: FileIdentity | None) -> None:
        self.layout, self.manifest = layout, manifest


_OPEN = _OpenLayout()


def _manifest_identity(snapshot: Snapshot, version: Version) -> FileIdentity | None:
    try:
        return file_identity(manifest_path(snapshot.path, version))
    except FileNotFoundError:
        return None


def open_layout(snapshot: Snapshot, facts: Facts) -> QuoteLayout | None:
    """Open the layout of the snapshot ``facts`` describe, once it is laid out (the warmer
    calls this; a request never waits for it), and again when the writer lays it out anew (a
    new base replaces the manifest). The layout of the snapshot before is let go of as soon as
    the snapshot changes, so the files the writer removed free their disk; the requests still
    reading it keep it mapped until they end. A new base that cannot be opened leaves the
    layout of the same snapshot that is open in place: it answers for the same file."""
    wanted = facts.version
    current = _OPEN.layout
    if current is not None and (wanted is None or current.snapshot != snapshot_name(wanted)):
        _OPEN.keep(None, None)
    if wanted is None:
        return None
    manifest = _manifest_identity(snapshot, wanted)
    if manifest is None or manifest == _OPEN.manifest or (wanted, manifest) in _OPEN.unusable:
        return _OPEN.layout
    try:
        opened = open_quote_layout(snapshot.path, wanted)
    except LayoutError as exc:
        _OPEN.unusable = {failed for failed in _OPEN.unusable if failed[0] == wanted}
        _OPEN.unusable.add((wanted, manifest))
        meanwhile = "the layout opened before" if _OPEN.layout else "the snapshot"
        logger.warning(
            "%s; until then pages are read from %s", snapshot.redact(str(exc)), meanwhile
        )
        return _OPEN.layout
    if opened is not None:
        _OPEN.keep(opened, manifest)
        _out_of_the_collectors_way()
    return _OPEN.layout


def _out_of_the_collectors_way() -> None:
    """Take what the process holds now (the layout's index of pairs, the snapshot's facts,
    the app itself) out of Python's cyclic garbage collector's full passes. They hold ~240k
    objects at 10M quotes, and a full pass over them took 40-45 ms whenever one came due:
    the slowest requests of the distinct-URL workload waited for it. Done once per layout
    opened (one full pass, on the warmer's thread); what the process let go of since the last
    time is collected first, so nothing that became garbage stays frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def layout_of(request: Request[Any, Any, Any], facts: Facts) -> QuoteLayout | None:
    """The open layout of the snapshot ``facts`` describe, when the request's kept body
    (if any) is for that snapshot too: a publish between the two must not file one snapshot's
    page under the other's ETag."""
    layout = _OPEN.layout
    if layout is None or facts.version is None or layout.snapshot != snapshot_name(facts.version):
        return None
    tag: _Tag | None = request.state.get("cache_tag")
    if tag is not None and tag.version != facts.version:
        return None
    return layout


@dataclass(frozen=True)
class _Cached:
    body: bytes
    media_type: str


class ResponseCache:
    """Encoded bodies by request key, for one snapshot version at a time."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self._lock = threading.Lock()
        self._version: Version | None = None
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self._bytes = 0
        self.max_bytes = max_bytes

    def get(self, version: Version, key: str) -> _Cached | None:
        with self._lock:
            if version != self._version:
                return None
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
            return hit

    def put(self, version: Version, key: str, body: bytes, media_type: str) -> None:
        if len(body) > self.max_bytes // 8:
            return
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._bytes = 0
                self._version = version
            old = self._entries.pop(key, None)
            self._bytes -= len(old.body) if old else 0
            self._entries[key] = _Cached(body, media_type)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped.body)


RESPONSES = ResponseCache()


def wants_csv(request: Request[Any, Any, Any]) -> bool:
    accept = request.headers.get("accept")
    if not accept or CSV not in accept:
        return False
    return request.accept.best_match([MediaType.JSON, CSV], default=MediaType.JSON) == CSV


@dataclass(frozen=True)
class _Tag:
    version: Version
    key: str
    etag: str


def _tag(request: Request[Any, Any, Any]) -> _Tag | None:
    version = version_of(request.app.state.snapshot)
    if version is None:
        return None
    key = f"{request.url.path}?{request.url.query}|{'csv' if wants_csv(request) else 'json'}"
    digest = hashlib.blake2b(repr((version, key)).encode(), digest_size=12).hexdigest()
    return _Tag(version, key, f'"{digest}"')


def _headers(etag: str) -> dict[str, str]:
    # Revalidate every time: a publish can change the answer at any moment.
    return {"etag": etag, "cache-control": "no-cache", "vary": "accept"}


def _matches(request: Request[Any, Any, Any], etag: str) -> bool:
    sent = request.headers.get("if-none-match")
    return sent is not None and (sent.strip() == "*" or etag in sent.split(", "))


async def answer_from_cache(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """A route's ``before_request``: 304 for a current ETag, the kept body for a request seen
    since the last publish; else None (the handler answers, then :func:`respond` keeps it)."""
    tag = _tag(request)
    if tag is None:
        return None
    request.state.cache_tag = tag
    if _matches(request, tag.etag):
        return Response(None, status_code=304, headers=_headers(tag.etag))
    hit = RESPONSES.get(tag.version, tag.key)
    if hit is None:
        return None
    return Response(hit.body, media_type=hit.media_type, headers=_headers(tag.etag))


def etag_headers(request: Request[Any, Any, Any]) -> dict[str, str]:
    tag: _Tag | None = request.state.get("cache_tag")
    return _headers(tag.etag) if tag else {}


def respond(request: Request[Any, Any, Any], body: msgspec.Struct) -> Response[Any]:
    """Encode ``body`` once, keep it for the request's key and answer it with its ETag."""
    encoded = msgspec.json.encode(body)
    tag: _Tag | None = request.state.get("cache_tag")
    if tag is None:
        return Response(encoded, media_type=MediaType.JSON)
    RESPONSES.put(tag.version, tag.key, encoded, MediaType.JSON)
    return Response(encoded, media_type=MediaType.JSON, headers=_headers(tag.etag))
