"""What is stored about entity resolution: the evidence the resolver reads, and operators'
decisions.

:mod:`~store.resolution.evidence` reads what the warehouse knows that bears on a batch's assets
(stored mappings, coins, contracts, aliases, applied accept/reject decisions) and the market
lookup the resolver compares prices with (:func:`nearest_quotes`); the resolver itself is
:mod:`flows.resolution`.

Operators' decisions: the inbox, their rules, and applying them.

The API serves a read-only snapshot and the ingest flow is the warehouse's only writer, so a
decision travels in two steps. ``POST /api/v1/resolution/decisions`` checks it against the
snapshot (:func:`check`) and drops it as one JSON file into ``<data dir>/decisions/inbox``
(:func:`write_inbox`: temp file, fsync, rename). At the start of each run the flow imports new
inbox files into ``resolution_decisions`` (:func:`import_inbox`, idempotent by ``decision_id``;
an unreadable file is moved to ``decisions/rejected`` beside a note saying why, an imported one
to ``decisions/imported``) and applies the pending ones in the order they were taken
(:func:`apply_pending`), each in one transaction, checked again against the warehouse (it may
have changed since the POST): outcome ``applied``, or ``refused`` with a JSON detail saying why.

What each action does (a coin holds at most one asset per source, before and after):

* ``accept`` (asset A, coin C): A's mapping moves to C (method ``operator``, confidence 1, the
  evidence names the decision) with its quotes; a pending review row (A, C) becomes
  ``accepted``. A coin left without an asset becomes an alias of C. Refused when C holds another
  asset of A's source. Accepting the link A already has confirms it as ``operator``.
* ``reject`` (A, C): a review row (A, C) becomes ``rejected``, and resolution never links them
  again (it reads the decision). If A is in C, A moves out to a coin of its own,
  ``<C>-<first 8 hex of sha256("source:asset")>``. Refused when A is C's only asset.
* ``merge`` (survivor S, other O): O's mappings (as ``operator`` links) and quotes move to S; O's
  coins row becomes a ``coin_aliases`` row (O -> S, what moved), aliases of O point at S.
  Refused when both coins hold an asset of the same source.
* ``split`` (alias O): the reverse: O's coins row comes back, the links that moved (with the
  method, confidence and evidence they had) and their quotes move back, aliases re-pointed by
  the merge point at O again. Refused when one of the links has moved elsewhere since.

Quotes keep their own symbol and name (the source asset's); only ``coin_id`` moves, in ``quotes``,
the run ledger's pointers (``run_seen``) and pending review rows. Touched coins are
renamed by :func:`store.merge.refresh_coins` (the first source in source order names a coin).

Where it lives: :mod:`~store.resolution.model` (the decision), :mod:`~store.resolution.inbox`,
:mod:`~store.resolution.checks`, :mod:`~store.resolution.apply`, :mod:`~store.resolution.review`
(the reads for the API and the command line), :mod:`~store.resolution.links` (the lookups checks
and apply share).
"""

from store.resolution.apply import (
    Applied,
    ResolverMerge,
    applied_since,
    apply_pending,
    apply_resolver_merges,
)
from store.resolution.checks import Refusal, check
from store.resolution.evidence import (
    MARKET_FOUND,
    MARKET_LOOKUP,
    MARKET_WINDOW,
    PENDING_REVIEW,
    StoredEvidence,
    nearest_quotes,
    stored_evidence,
)
from store.resolution.inbox import import_inbox, write_inbox
from store.resolution.model import (
    CONTRADICTED,
    OPERATOR,
    RESOLVER,
    Action,
    Decision,
    Outcome,
    new_decision,
)
from store.resolution.review import alias_target, decision_log, operator_links, review_queue

__all__ = [
    "CONTRADICTED",
    "MARKET_FOUND",
    "MARKET_LOOKUP",
    "MARKET_WINDOW",
    "OPERATOR",
    "PENDING_REVIEW",
    "RESOLVER",
    "Action",
    "Applied",
    "Decision",
    "Outcome",
    "Refusal",
    "ResolverMerge",
    "StoredEvidence",
    "alias_target",
    "applied_since",
    "apply_pending",
    "apply_resolver_merges",
    "check",
    "decision_log",
    "import_inbox",
    "nearest_quotes",
    "new_decision",
    "operator_links",
    "review_queue",
    "stored_evidence",
    "write_inbox",
]
