"""Entity resolution: which canonical coin each source asset is, and why.

An asset already mapped keeps its coin (``sticky``; an operator's decision moves it, see
:mod:`store.resolution`). A new asset is decided by the strongest evidence available:

1. ``override``: the curated file ``data/asset_overrides.csv`` (``source,source_asset_id,
   coin_id,note``); ``operator``: an asset an operator's applied decision placed (the decisions
   themselves move mapped assets, see :mod:`store.resolution`; the resolver only honours them for
   assets it meets unmapped). Confidence 1.
2. ``crosswalk``: a configured authoritative crosswalk (``KASPARRO_CROSSWALK_FILE``, a CSV with
   columns ``coingecko,coinpaprika,coincap``, e.g. exported from CoinPaprika's paid
   ``coins/mappings``) names the asset's id in another source, and that asset's coin is the only
   one it names. Confidence 0.98; 0.6 (review) when the market contradicts it.
3. ``contract``: the asset and an asset of another source publish the same contract address on
   the same chain (:mod:`flows.transform.contracts`, chains per :mod:`flows.sources.platforms`).
   Confidence 0.99; 0.7 when the address belongs to several coins, or one source lists it for
   two of its assets (listed in its markets or not), 0.6 when the market contradicts it (a stale
   listing, or a wrong address). Such an address proves nothing: the names may still decide.
4. ``symbol_name_market`` / ``name_similarity_market`` (the market agreed too) and ``names_ids``
   (no market to confirm): the evidence that holds across time, weighed in
   :mod:`flows.resolution.scoring`: identical or similar names, the name slugs the sources' ids
   were minted from (:func:`~flows.resolution.names.id_slugs`), a key no other asset shares, and
   the market when a quote of the candidate is near in time (:func:`compare_markets`). A missing
   market is not contrary evidence; a contradicting one caps the confidence at 0.4, and a later
   namesake (``ethos-3`` beside ``ethos``) weighs against. The normalised symbol is the blocking
   key and never links alone; an asset no coin of its symbol relates to is also weighed against
   the coins whose ids share its slug (a ticker that changed), capped at 0.8 unless the market
   agrees, one ticker holds the other, an id records the other's ticker, the ids name a rebrand,
   or no other asset of either source bears the identical name.

   The symbol alone proposes a coin (for review: a renamed asset) only when at most
   :data:`SYMBOL_ONLY_MAX` coins share it and the market corroborates. Large symbol blocks are
   searched through a name and id index. Contracts on the same chain that differ cap the
   confidence at 0.5 (bridged and wrapped tokens share symbols and prices, never addresses).
5. ``new``: a coin of its own.

A candidate with confidence >= :data:`LINK_THRESHOLD` links, unless another candidate with the
same kind of evidence (contract, or names) comes within :data:`AMBIGUITY_MARGIN` of it, or the
source lists a twin of the asset (same symbol and name) the ids do not tell apart; candidates
between :data:`REVIEW_THRESHOLD` and the link threshold, and ambiguous ones, go to the review
queue (``resolution_review``) while the asset founds a coin of its own: a wrong merge corrupts
history, a missed link only waits for review.

Evidence that arrives later counts. Each run looks again at the mapped assets it delivers that
wait in review: when the evidence now clears the bar, the asset's coin merges into the candidate
(a ``merge`` decision by ``kasparro-resolver`` in the decision log, which an operator can split;
the old coin id stays an alias; the review row becomes ``superseded``). The same path repairs the
duplicate coins an older rule made. A ``names_ids`` link that a market later contradicts goes back
to review; it is never split silently.

Name similarity (:func:`name_similarity`) is 1 for names equal after normalisation, else the
larger of the Jaccard index of their word sets (without the generic words in
:data:`GENERIC_WORDS`) and difflib's ratio of the words run together. Normalisation is NFKC (which
turns NBSP into a space), zero-width characters removed, whitespace collapsed and trimmed, then
casefolded.

``coin_id`` is a readable slug of the founding asset's symbol and name (``btc-bitcoin``), with a
hash of the asset's ``source:id`` appended when another coin (or an alias) holds the slug. A coin
holds at most one asset per source. Assets are decided in a fixed order (source order, then id)
against the stored state, so shuffling a batch gives the same coins, links and evidence.

Resolution works on the batch's distinct assets (thousands), not on its quotes (millions).

Where it lives: :mod:`~flows.resolution.names` (normalisation, similarity, id slugs, coin-id
slugs), :mod:`~flows.resolution.curated` (the overrides and crosswalk files),
:mod:`~flows.resolution.market` (market agreement), :mod:`~flows.resolution.scoring` (the weight
of each kind of evidence), :mod:`~flows.resolution.candidates` (the typed rows),
:mod:`~flows.resolution.shortlist` (what points from an asset to each coin),
:mod:`~flows.resolution.decider` (the rules above, later evidence),
:mod:`~flows.resolution.evaluation` (precision and recall against labels).
"""

from flows.errors import CrosswalkError, OverridesError
from flows.resolution.candidates import SYMBOL_ONLY_MAX
from flows.resolution.curated import Crosswalk, Override, read_crosswalk, read_overrides
from flows.resolution.decider import (
    AMBIGUITY_MARGIN,
    LINK_THRESHOLD,
    REVIEW_THRESHOLD,
    WEAK_METHODS,
    Candidate,
    Evidence,
    Resolution,
    asset_rows,
    resolve,
    resolve_assets,
)
from flows.resolution.market import (
    MARKET_WINDOW_DAYS,
    MarketComparison,
    MarketLookup,
    Observation,
    compare_markets,
)
from flows.resolution.names import (
    GENERIC_WORDS,
    NAME_SIMILAR,
    match_key,
    name_similarity,
    natural_coin_id,
    normalise,
)
from store.resolution import MARKET_FOUND, MARKET_LOOKUP

__all__ = [
    "AMBIGUITY_MARGIN",
    "GENERIC_WORDS",
    "LINK_THRESHOLD",
    "MARKET_FOUND",
    "MARKET_LOOKUP",
    "MARKET_WINDOW_DAYS",
    "NAME_SIMILAR",
    "REVIEW_THRESHOLD",
    "SYMBOL_ONLY_MAX",
    "WEAK_METHODS",
    "Candidate",
    "Crosswalk",
    "CrosswalkError",
    "Evidence",
    "MarketComparison",
    "MarketLookup",
    "Observation",
    "Override",
    "OverridesError",
    "Resolution",
    "asset_rows",
    "compare_markets",
    "match_key",
    "name_similarity",
    "natural_coin_id",
    "normalise",
    "read_crosswalk",
    "read_overrides",
    "resolve",
    "resolve_assets",
]
