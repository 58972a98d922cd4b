"""Errors raised while extracting, transforming and resolving sources.

    IngestError
     ├── SourceError                  one source failed; the others still load
     │    ├── TransientSourceError    timeouts, refused or reset connections, 429, 5xx, an HTML,
     │    │                           empty or truncated 200 body: retried with backoff
     │    ├── TerminalSourceError     400/401/403/404, missing credentials: not retried
     │    │    ├── ContractError      well-formed JSON that is not the documented shape
     │    │    ├── DriftError         the payload drifted in a way its policy fails (flows.drift)
     │    │    └── NoNetworkError     this machine cannot resolve or reach the host: not retried
     │    └── SourceSkipped           the source is not configured (no API key); not a failure
     ├── ReplayError                  a replay directory is missing or not in the replay layout
     ├── IngestFailed                 at least one source failed (flows.ingest)
     └── CuratedFileError             a curated file entity resolution reads is malformed
          ├── OverridesError          the overrides file (KASPARRO_OVERRIDES_FILE)
          │    └── CrosswalkError     the crosswalk (KASPARRO_CROSSWALK_FILE)
          └── LabelsError             the labels resolution-eval scores against
                                      (flows.resolution.evaluation)

Every message names the source, the URL (never a secret) or the file and line, and what to do
next. Native ``httpx`` errors are classified in one place, :func:`flows.sources.http.classify`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_PARAM_WORDS = ("key", "token", "secret", "auth", "password")


def redact_url(url: object) -> str:
    """The URL without its credentials: ``user:password@`` (a base URL may carry them) and query
    parameters that look like keys."""
    parts = urlsplit(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "REDACTED@" + netloc.rpartition("@")[2]
    query = [
        (name, "REDACTED" if any(w in name.lower() for w in _SECRET_PARAM_WORDS) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


class IngestError(Exception):
    """Base class for ingest errors."""


class SourceError(IngestError):
    def __init__(self, source: str, message: str, *, url: str | None = None) -> None:
        url = redact_url(url) if url else url
        where = f" ({url})" if url else ""
        super().__init__(f"{source}{where}: {message}")
        self.source = source
        self.url = url
        self.reason = message
        """The message without the source and URL (for messages that already name them)."""


class TransientSourceError(SourceError):
    """Worth retrying later: the source was unreachable, slow, rate-limiting or failing."""


class TerminalSourceError(SourceError):
    """Retrying will not help until someone changes configuration or code."""


class ContractError(TerminalSourceError):
    """The source answered, but not in the documented shape (schema drift or a wrong endpoint)."""


class DriftError(TerminalSourceError):
    """The payload drifted from the source's contract in a way whose policy is ``fail`` (a
    required field removed or retyped): nothing of the source is loaded."""


class NoNetworkError(TerminalSourceError):
    """This machine cannot resolve the source's host or has no route to it: network trouble on
    our side, not the source being down. Retrying in a few seconds would not help; checking the
    network (DNS, proxy, connectivity) does."""


class SourceSkipped(SourceError):
    """The source is deliberately not run (for example it needs an API key that is not set)."""


class ReplayError(IngestError):
    pass


class CuratedFileError(IngestError, ValueError):
    """A curated file is never half-read: its first problem stops the run (or the command)
    before anything is decided from it."""


class OverridesError(CuratedFileError):
    fix = "fix the overrides file and run again"

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}; {self.fix}")


class CrosswalkError(OverridesError):
    """An OverridesError too: the crosswalk is curated like the overrides (and was reported as
    one before it had its own class)."""

    fix = "fix the crosswalk, or unset KASPARRO_CROSSWALK_FILE, and run again"
