"""Publishing the read-only serving snapshot.

DuckDB lets one process write a file or many read it, never both at once. So the flow writes
``warehouse.duckdb`` alone and, after each successful load, publishes a copy: checkpoint and close
the warehouse, copy it to a temporary file beside ``serving.duckdb``, add the serving tables
(:mod:`store.serving`) to the copy, fsync, and rename it over the old snapshot. A reader that
has the old file open keeps reading it (the rename does not touch its inode); the next open sees
the new one. Readers never see a half-written snapshot.

The copy stays in the kernel (``copy_file_range``; on filesystems that share blocks, XFS or btrfs,
the kernel links them instead of copying) and goes 8 MiB at a time, each chunk handed to the disk
as soon as it is copied (Linux ``sync_file_range``, as PostgreSQL spreads its checkpoint writes):
writing to disk overlaps copying, instead of all of it waiting for the fsync. The fsync still
decides durability. Where either call is missing, a plain read/write copy does the same, slower.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from store.errors import StoreError
from store.serving import build_layouts

CHUNK = 8 * 2**20
"""Copied, then handed to the disk, this much at a time (4, 8 and 16 MiB measured alike)."""

_SYNC_FILE_RANGE_WRITE = 2
"""<linux/fs.h>: start writing the range's dirty pages out, without waiting for them."""

_REFUSED = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}
"""copy_file_range's ways of saying it cannot copy between these two files (another filesystem,
an old kernel): the chunk is then read and written instead."""


FileIdentity = tuple[int, int, int]
"""A published file's (inode, mtime in ns, size): a publish renames a new file over the last,
so it changes with every publish, and a reader learns it with one ``stat``."""


def file_identity(path: Path) -> FileIdentity:
    stat = path.stat()
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class Published:
    path: Path
    bytes: int
    seconds: float


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range from the C library (Python's os module does not wrap it)."""
    if sys.platform != "linux":
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


def _start_writeback(fd: int, offset: int, length: int) -> None:
    # A hint: its result is not checked, because the fsync after the copy decides durability.
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _copy_chunk(source: int, target: int, length: int) -> int:
    """Copy up to ``length`` bytes from the current offset of ``source`` to that of ``target``."""
    if hasattr(os, "copy_file_range"):
        try:
            return os.copy_file_range(source, target, length)
        except OSError as exc:
            if exc.errno not in _REFUSED:
                raise
    data = memoryview(os.read(source, length))
    written = 0
    while written < len(data):
        written += os.write(target, data[written:])
    return len(data)


def copy_durably(source: Path, target: Path, *, fsync: bool = True) -> None:
    """Copy ``source`` to a new file ``target`` and fsync it (unless the caller will)."""
    src = os.open(source, os.O_RDONLY)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            size, offset = os.fstat(src).st_size, 0
            while offset < size:
                copied = _copy_chunk(src, dst, min(CHUNK, size - offset))
                if copied == 0:
                    raise StoreError(
                        f"{source} ended at byte {offset} of {size} while it was copied to "
                        f"{target}; close every connection to the warehouse, then publish again"
                    )
                _start_writeback(dst, offset, copied)
                offset += copied
            if fsync:
                os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def fsync_path(path: Path) -> None:
    """Make a file's contents, or the renames in a directory, durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _add_layouts(path: Path, sources: Sequence[str]) -> None:
    """Build the serving tables in the copy at ``path``, checkpoint it and fsync it.

    The copy is flushed to disk while the tables are built (one pass over ``quotes``, ~0.3 s of
    CPU at 10M quotes): the disk's wait and the CPU's work overlap instead of adding up. The
    fsync after the checkpoint decides durability; the early one only leaves it less to do."""
    flushing = threading.Thread(target=fsync_path, args=(path,), name="publish-flush")
    flushing.start()
    try:
        con = duckdb.connect(str(path))
        try:
            con.execute("set TimeZone = 'UTC'")
            build_layouts(con, sources)
            con.execute("checkpoint")
        finally:
            con.close()
    finally:
        flushing.join()
    fsync_path(path)


def publish_snapshot(
    warehouse_path: Path, serving_path: Path, *, sources: Sequence[str]
) -> Published:
    """Copy a closed, checkpointed warehouse over the serving snapshot atomically, with the
    serving tables added; ``sources`` are the sources this Kasparro knows, in load order."""
    wal = warehouse_path.with_name(warehouse_path.name + ".wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"{wal} is not empty: the warehouse is still open or was not checkpointed; "
            "close every connection to it before publishing"
        )
    started = time.perf_counter()
    tmp = serving_path.with_name(f".{serving_path.name}.{uuid.uuid4().hex}.tmp")
    try:
        copy_durably(warehouse_path, tmp, fsync=False)
        _add_layouts(tmp, sources)
        os.replace(tmp, serving_path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    fsync_path(serving_path.parent)
    return Published(serving_path, serving_path.stat().st_size, time.perf_counter() - started)
