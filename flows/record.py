"""``kasparro record DIR``: capture live responses into the replay layout.

Pages are fetched through the same client code the ingest uses and written byte for byte, so a
recording replays exactly what the source served.
"""

from __future__ import annotations

from pathlib import Path

from flows.sources import API_SOURCES
from flows.sources.csv_files import list_csv_files
from flows.sources.replay import copy_csv_files, write_recording
from flows.sources.settings import CsvSettings


def record(replay_dir: Path, sources: list[str]) -> dict[str, int]:
    """Record each source; return the number of files written per source."""
    counts: dict[str, int] = {}
    for name in sources:
        if name == "csv":
            counts[name] = copy_csv_files(list_csv_files(CsvSettings().dir), replay_dir)
            continue
        api = API_SOURCES[name]
        settings = api.settings_type()
        http = api.open(settings)
        try:
            written = 0
            for page in api.pages(http, settings):
                write_recording(replay_dir / name / page.endpoint.replay_file(page.page), page.body)
                written += 1
            counts[name] = written
        finally:
            http.client.close()
    return counts
