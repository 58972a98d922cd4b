"""Who holds a DuckDB file's lock: a reader or a writer, and which process.

DuckDB locks the whole file with ``fcntl``: a shared (read) lock when it opens a file read-only,
an exclusive (write) lock when it opens it read-write. ``F_GETLK`` asks the kernel which lock
would stop a writer, without taking one.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# struct flock on Linux (x86_64, aarch64): l_type, l_whence, l_start, l_len, l_pid, padding.
_FLOCK = "hhqqi4x"


@dataclass(frozen=True)
class LockHolder:
    kind: Literal["reader", "writer"]
    pid: int
    command: str
    """The holder's command line, shortened (empty when it cannot be read)."""


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return text if len(text) <= 120 else text[:117] + "..."


def lock_holder(path: Path) -> LockHolder | None:
    """The process whose lock on ``path`` stops a writer, or None (no such lock, no file, or a
    platform where the probe does not apply)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    except OSError:
        return None
    finally:
        os.close(fd)
    if l_type == fcntl.F_UNLCK:
        return None
    return LockHolder("reader" if l_type == fcntl.F_RDLCK else "writer", pid, _command(pid))
