"""Bounds every decoder of untrusted bytes checks before it allocates: sizes, shapes, element budgets, nesting.

A decoder validates what a file *declares* (shapes, counts, decompressed sizes) against these limits and refuses
with LimitExceeded (an InputError) before asking numpy or torch for memory.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path

from compression.core import settings
from compression.core.errors import InputError, LimitExceeded

MAX_HEADER_BYTES = 1 << 20  # a decompressed JSON header (.clab, packed, safetensors); real ones are a few kB
MAX_NESTING = 32  # JSON depth; our headers use 4
MAX_NDIM = 8  # tensor dimensions
MAX_EXTENT = 2 ** 62  # a shape's non-zero sizes multiplied


def check_upload_size(data: bytes, name: str) -> None:
    """Refuse a file over the one size cap for every kind of upload ($COMPRESSION_LAB_MAX_UPLOAD_MB)."""
    check_file_size(len(data), name)


def check_file_size(size: int, name: str) -> None:
    cap = settings.max_upload_bytes()
    if size > cap:
        raise LimitExceeded(f"{name}: {size:,} bytes is over the {settings.max_upload_mb()} MiB limit for a file "
                            f"(${settings.MAX_UPLOAD_ENV})")


def check_regular_file(path: Path, name: str, capped: bool = True, follow_symlinks: bool = True) -> int:
    """The size of a file about to be read: a plain file (a FIFO or /dev/zero never ends) within the upload cap.

    Inside a model folder a symlink is refused (`follow_symlinks=False`): it could point anywhere on the server.
    """
    try:
        info = os.stat(path) if follow_symlinks else os.lstat(path)
    except OSError as exc:
        raise InputError(f"{name} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISLNK(info.st_mode):
        raise InputError(f"{name} is a symbolic link; files of a model folder must be plain files inside it "
                         "(copy them with cp -L)")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{name} is not a regular file")
    if capped:
        check_file_size(info.st_size, name)
    return info.st_size


def numel(shape: object, where: str) -> int:
    """Elements of a declared shape: a list of at most MAX_NDIM non-negative integers (exact, no overflow)."""
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
        raise InputError(f"{where}: a tensor shape must be a list of at most {MAX_NDIM} sizes, got {_short(shape)}")
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise InputError(f"{where}: a tensor shape must hold non-negative integers, got {_short(shape)}")
    if math.prod(size or 1 for size in shape) > MAX_EXTENT:  # torch's int64 strides overflow, even when empty
        raise InputError(f"{where}: the sizes of shape {_short(shape)} multiply past {MAX_EXTENT:,}")
    return math.prod(shape)


class ElementBudget:
    """Running total of the elements a file declares, refused as soon as it passes the budget."""

    def __init__(self, where: str, limit: int | None = None, env: str = settings.MAX_ELEMENTS_ENV):
        self.where, self.limit, self.env, self.total = where, limit or settings.max_elements(), env, 0

    def add(self, count: int, what: str = "") -> None:
        self.total += count
        if self.total > self.limit:
            thing = f" ({what})" if what else ""
            raise LimitExceeded(f"{self.where} declares more than {self.limit:,} tensor elements{thing}; the limit "
                                f"is ${self.env}")


def inflate(data: bytes, where: str, limit: int = MAX_HEADER_BYTES) -> bytes:
    """zlib-decompress at most `limit` bytes; a stream that would grow past it is refused, not expanded."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise InputError(f"{where}: the header is not valid zlib data") from exc
    if inflater.unconsumed_tail:
        raise LimitExceeded(f"{where}: the header decompresses to more than {limit:,} bytes")
    if not inflater.eof:
        raise InputError(f"{where}: the header is truncated")
    return out


def parse_json(raw: bytes, where: str, what: str = "the header") -> object:
    """JSON of at most MAX_NESTING levels (deeper input is refused, never recursed into)."""
    try:
        value = json.loads(raw)
    except RecursionError as exc:
        raise LimitExceeded(f"{where}: {what} is nested too deeply") from exc
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InputError(f"{where}: {what} is not valid JSON") from exc
    check_nesting(value, where, what=what)
    return value


def check_nesting(value: object, where: str, limit: int = MAX_NESTING, what: str = "the header") -> None:
    stack = [(value, 1)]
    while stack:  # iterative: a deep value must not exhaust the interpreter's stack here either
        item, depth = stack.pop()
        if depth > limit:
            raise LimitExceeded(f"{where}: {what} is nested more than {limit} levels deep")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)


def zip_members(data: bytes, where: str, limit: int, kind: str = "zip archive") -> list[zipfile.ZipInfo]:
    """The members of a zip archive, refusing archives whose directory lists more than `limit` entries."""
    # Counting central-directory signatures first keeps zipfile from building millions of ZipInfo objects.
    if data.count(b"PK\x01\x02") > limit:
        raise LimitExceeded(f"{where}: the archive lists more than {limit:,} members")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise InputError(f"{where} is not a readable {kind} ({type(exc).__name__})") from exc


def int_field(entry: dict, key: str, where: str, low: int = 0, high: int | None = None) -> int:
    """An integer field of a header entry, within [low, high]."""
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise InputError(f"{where}: field {key!r} must be an integer in {bounds}, got {_short(value)}")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

