"""The header of a safetensors file, checked before any tensor is read: its length, nesting and entry count, each
tensor's dtype, shape and byte range (inside the data section, exactly its size, apart from the others), and the
element budget. One checker for every reader of safetensors: uploaded weights, model folders, the packed file."""

from __future__ import annotations

from typing import NamedTuple

from compression.core.errors import InputError, LimitExceeded
from compression.formats import limits

ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
            "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}
MAX_TENSORS = 100_000  # entries of one file (a large model's state dict has a few thousand)


class Stored(NamedTuple):
    """A tensor the header declares: dtype name, shape, and its [start, end) in the whole file."""

    dtype: str
    shape: list[int]
    start: int
    end: int


def header_length(prefix: bytes, file_size: int, where: str) -> int:
    """The JSON header's length from a file's first 8 bytes, checked against the file and the header limit."""
    corrupt = f"{where} is not a valid safetensors file (corrupt or truncated)"
    if len(prefix) < 8:
        raise InputError(f"{corrupt}: no header")
    length = int.from_bytes(prefix[:8], "little")
    if length > file_size - 8:
        raise InputError(f"{corrupt}: the header runs past the end")
    if length > limits.MAX_HEADER_BYTES:
        raise LimitExceeded(f"{where}: the header is over {limits.MAX_HEADER_BYTES:,} bytes")
    return length


def check_header(raw: bytes, file_size: int, where: str, budget: limits.ElementBudget | None = None,
                 contiguous: bool = False) -> tuple[dict[str, Stored], object]:
    """(the stored tensors by name, the `__metadata__` value or None) of a header `raw` read from a file of
    `file_size` bytes. `contiguous`: the tensors must cover the data section back to back, as safetensors writes
    them (the packed file insists; model files written by other tools are only required not to overlap)."""
    corrupt = f"{where} is not a valid safetensors file (corrupt or truncated)"
    header = limits.parse_json(raw, where)
    if not isinstance(header, dict):
        raise InputError(f"{corrupt}: the header is not a map")
    metadata = header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise LimitExceeded(f"{where}: {len(header):,} tensors is over the limit of {MAX_TENSORS:,}")
    start, stored = 8 + len(raw), {}
    body = file_size - start
    for name, info in header.items():
        if not isinstance(info, dict) or not isinstance(info.get("dtype"), str) or info["dtype"] not in ITEMSIZE:
            raise InputError(f"{where}: tensor {name[:80]!r} has no supported dtype")
        count = limits.numel(info.get("shape"), f"{where}, tensor {name[:80]!r}")
        if budget is not None:
            budget.add(count, f"tensor {name[:80]!r} has shape {info['shape']}")
        span = info.get("data_offsets")
        if not (isinstance(span, list) and len(span) == 2 and all(type(o) is int for o in span)  # bools are not
                and 0 <= span[0] <= span[1] <= body):
            raise InputError(f"{corrupt}: tensor {name[:80]!r} lies outside the data section")
        if span[1] - span[0] != count * ITEMSIZE[info["dtype"]]:
            raise InputError(f"{corrupt}: tensor {name[:80]!r} has {span[1] - span[0]:,} bytes, not the "
                             f"{count * ITEMSIZE[info['dtype']]:,} its dtype and shape need")
        stored[name] = Stored(info["dtype"], info["shape"], start + span[0], start + span[1])
    _check_apart(stored, start, file_size, where, corrupt, contiguous)
    return stored, metadata


def _check_apart(stored: dict[str, Stored], start: int, file_size: int, where: str, corrupt: str,
                 contiguous: bool) -> None:
    end, previous = start, None
    for name, info in sorted(stored.items(), key=lambda item: (item[1].start, item[1].end)):
        if info.start < end and info.end > info.start:
            raise InputError(f"{where}: tensors {previous[:80]!r} and {name[:80]!r} overlap in the file")
        if contiguous and info.start > end:
            raise InputError(f"{corrupt}: tensor {name[:80]!r} leaves a gap before it")
        if info.end > end:
            end, previous = info.end, name
    if contiguous and end != file_size:
        raise InputError(f"{corrupt}: {file_size - end:,} trailing bytes after the last tensor")
