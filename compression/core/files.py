"""Cache and output files written so that a killed or concurrent writer never leaves half a file or folder."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout

W = TypeVar("W")


@contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if needed): one writer across processes and sessions, on
    Unix (flock) and Windows (msvcrt) alike. A new lock object per call, so threads exclude each other too."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path):
        yield


def acquire(lock_path: Path, waiting: Callable[[float], W], poll_s: float = 0.5) -> Generator[W, None, FileLock]:
    """Take the exclusive lock at `lock_path` (as `file_lock` does); while another process or thread holds it,
    yield `waiting(seconds waited so far)` every `poll_s`, so a caller can say it waits instead of sitting still.
    Returns the held lock: release it with `lock.release()`."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock, start = FileLock(lock_path), time.monotonic()
    while True:
        try:
            lock.acquire(timeout=poll_s)
            return lock
        except Timeout:
            yield waiting(time.monotonic() - start)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a temporary file beside `path`, then rename it over `path`."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `folder`; once the block succeeds it becomes `folder` (if another
    process got there first, its folder is kept). Leftovers are removed either way."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        yield tmp
        try:
            os.replace(tmp, folder)
        except OSError:  # another process cached it first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
