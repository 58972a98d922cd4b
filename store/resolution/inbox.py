"""The decisions inbox: the API writes each decision as one JSON file, the next run imports
them (see :mod:`store.resolution`)."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import duckdb
import msgspec
import polars as pl

from store.connection import transaction
from store.errors import converted
from store.resolution.model import DECISION_FILE, Decision

logger = logging.getLogger(__name__)


def write_inbox(inbox: Path, decision: Decision) -> Path:
    """Write ``decision`` into ``inbox`` atomically: a reader sees the whole file or none."""
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / decision.file_name
    tmp = inbox / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        with tmp.open("xb") as handle:
            handle.write(msgspec.json.encode(decision))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(inbox, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return target


def import_inbox(con: duckdb.DuckDBPyConnection, inbox: Path) -> int:
    """Insert the inbox's decisions not known yet into ``resolution_decisions``; return how many.

    Imported files move to ``imported/`` beside the inbox (after the commit: a crash in between
    leaves them to be imported again, which adds nothing). A file that is not a valid decision
    moves to ``rejected/`` with ``<file>.reason.txt`` beside it, and is logged."""
    if not inbox.is_dir():
        return 0
    read: list[tuple[Path, Decision]] = []
    for path in sorted(inbox.glob("*.json")):
        try:
            read.append((path, msgspec.json.decode(path.read_bytes(), type=Decision)))
        except msgspec.DecodeError as exc:  # malformed JSON, or not a valid decision
            _set_aside(path, inbox.parent / "rejected", str(exc))
    if not read:
        return 0
    rows = pl.DataFrame(
        [msgspec.to_builtins(d) | {"decided_at": d.decided_at} for _, d in read],
        schema=DECISION_FILE,
    ).unique("decision_id", keep="first", maintain_order=True)
    con.register("inbox_decisions", rows)
    try:
        with converted(f"importing the decisions of {inbox}"), transaction(con):
            (new,) = con.execute(
                """
                select count(*) from inbox_decisions as i
                anti join resolution_decisions as d using (decision_id)
                """
            ).fetchall()[0]
            columns = ", ".join(DECISION_FILE)
            con.execute(
                f"""
                insert into resolution_decisions ({columns})
                select {columns} from inbox_decisions as i
                anti join resolution_decisions as d using (decision_id)
                """
            )
    finally:
        con.unregister("inbox_decisions")
    imported = inbox.parent / "imported"
    imported.mkdir(parents=True, exist_ok=True)
    for path, _ in read:
        os.replace(path, imported / path.name)
    return int(new)


def _set_aside(path: Path, rejected: Path, reason: str) -> None:
    rejected.mkdir(parents=True, exist_ok=True)
    os.replace(path, rejected / path.name)
    (rejected / f"{path.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")
    logger.error(
        "decision file %s is not a valid decision (%s): moved to %s; fix it and put it back "
        "into the inbox, or POST the decision again", path.name, reason, rejected,
    )  # fmt: skip
