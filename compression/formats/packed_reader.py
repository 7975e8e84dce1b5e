"""Reading a packed file (compression.formats.packed) from untrusted bytes: the safetensors header, the metadata and
every entry checked against what it stores and the element budget before anything is unpacked, then each kind built.
"""

from __future__ import annotations

import math
import re
import zlib

import torch
from torch import Tensor

from compression.core.errors import InputError, LimitExceeded
from compression.formats import limits
from compression.formats.bitpack import packed_size, unpack
from compression.formats.packed_tensors import (INT32_MAX, INT32_MIN, MAX_BITS, MAX_M, AffineCodes, BinaryCodes,
                                                NMValues, SparseValues, index_bits, scale_shape)
from compression.formats.safetensors_header import Stored, check_header, header_length

FORMAT = "compression-lab-packed"
VERSION = 1
MAX_NAME = 1000  # characters of a tensor name
MAX_ENTRIES = 100_000  # logical tensors of one file
RESERVED_KEYS = ("format", "version", "entries", "crc32")
WHERE = "packed file"
DTYPES = {"BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "U16": torch.uint16, "I16": torch.int16,
          "U32": torch.uint32, "I32": torch.int32, "U64": torch.uint64, "I64": torch.int64, "F16": torch.float16,
          "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64, "F8_E4M3": torch.float8_e4m3fn,
          "F8_E5M2": torch.float8_e5m2}
_FLOATS = ("F16", "F32")


def checked(data: bytes, max_elements: int | None) -> tuple[memoryview, list, dict[str, Stored], dict]:
    """The entries (each with where to say it is), stored tensors and metadata, after every check before unpacking."""
    limits.check_upload_size(data, WHERE)
    length = header_length(data[:8], len(data), WHERE)
    stored, meta = check_header(data[8:8 + length], len(data), WHERE, contiguous=True)
    start = 8 + length
    entries, crc = _read_metadata(meta)
    view = memoryview(data)
    if zlib.crc32(view[start:]) != crc:
        raise InputError("packed file is corrupt or truncated (checksum mismatch)")
    budget, names, claimed = limits.ElementBudget(WHERE, max_elements), set(), set()
    checked = [(entry, _check_entry(entry, stored, budget, names, claimed)) for entry in entries]
    unclaimed = sorted(stored.keys() - claimed)
    if unclaimed:
        raise InputError(f"{WHERE}: the stored tensor {unclaimed[0][:80]!r} belongs to no entry")
    return view, checked, stored, meta


def _read_metadata(meta: object) -> tuple[list, int]:
    """The entries and the CRC the metadata declares, after checking the format, the version and their types."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{WHERE}: this safetensors file is not a Compression Lab packed file "
                         f"(its metadata has no format {FORMAT!r})")
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in meta.items()):
        raise InputError(f"{WHERE}: the metadata must map strings to strings")
    version = meta.get("version", "")
    if not re.fullmatch(r"[0-9]{1,9}", version) or int(version) < 1:
        raise InputError(f"{WHERE} has an invalid format version {short(version)}")
    if int(version) > VERSION:
        raise InputError(f"packed file format version {int(version)} is newer than this app reads ({VERSION}); "
                         "update Compression Lab")
    entries = limits.parse_json(meta.get("entries", ""), f"{WHERE} entries")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise InputError(f"{WHERE}: the entries must be a list of objects")
    if len(entries) > MAX_ENTRIES:
        raise LimitExceeded(f"{WHERE}: {len(entries):,} entries is over the limit of {MAX_ENTRIES:,}")
    crc = meta.get("crc32", "")
    if not re.fullmatch(r"[0-9a-f]{8}", crc):
        raise InputError(f"{WHERE}: the metadata has no crc32 of 8 lowercase hex digits")
    return entries, int(crc, 16)


def _check_entry(entry: dict, stored: dict[str, Stored], budget: limits.ElementBudget, names: set,
                 claimed: set) -> str:
    """Check one entry's fields and the stored tensors it needs (claiming them); returns where to say it is."""
    name = entry.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise InputError(f"{WHERE}: an entry's name must be a string of 1 to {MAX_NAME} characters, "
                         f"got {short(name)}")
    where = f"{WHERE}, tensor {name[:80]!r}"
    if name in names:
        raise InputError(f"{where}: the name appears twice")
    names.add(name)
    kind = entry.get("kind")
    if not isinstance(kind, str) or kind not in _NEEDS:
        raise InputError(f"{where}: unknown kind {short(kind)}")
    for key, (dtypes, shape) in _NEEDS[kind](entry, name, where, stored, budget).items():
        info = stored.get(key)
        if info is None:
            raise InputError(f"{where}: the stored tensor {key[:80]!r} is missing")
        if info.dtype not in dtypes:
            raise InputError(f"{where}: the stored tensor {key[:80]!r} is {info.dtype}, not {' or '.join(dtypes)}")
        if shape is not None and info.shape != shape:
            raise InputError(f"{where}: the stored tensor {key[:80]!r} has shape {info.shape}, not {shape}")
        if key in claimed:
            raise InputError(f"{where}: the stored tensor {key[:80]!r} belongs to two entries")
        claimed.add(key)
    return where


def _logical_shape(entry: dict, name: str, where: str, budget: limits.ElementBudget) -> tuple[list[int], int]:
    shape = entry.get("shape")
    count = limits.numel(shape, where)
    budget.add(count, f"tensor {name[:80]!r} has shape {shape}")  # before anything is unpacked to that size
    return shape, count


def _layout(entry: dict, shape: list[int], where: str, grouped: bool) -> tuple[int, ...]:
    axis, group = entry.get("axis"), (entry.get("group_size") if grouped else None)
    if axis is not None:
        axis = limits.int_field(entry, "axis", where, 0, max(len(shape) - 1, 0))
    if group is not None:
        group = limits.int_field(entry, "group_size", where, 1, max(math.prod(shape[1:]), 1))
    try:
        return scale_shape(tuple(shape), axis, group)
    except InputError as exc:  # an axis on a 0-d tensor, or both an axis and a group size
        raise InputError(f"{where}: {exc}") from None


# Per kind: check an entry's fields and count its elements; return {stored name: (dtypes allowed, exact shape)}.


def _needs_raw(entry, name, where, stored, budget):
    budget.add(math.prod(stored[name].shape) if name in stored else 0, f"tensor {name[:80]!r}")
    return {name: (tuple(DTYPES), None)}


def _needs_affine(entry, name, where, stored, budget):
    shape, count = _logical_shape(entry, name, where, budget)
    bits = limits.int_field(entry, "bits", where, 1, MAX_BITS)
    low = limits.int_field(entry, "quant_min", where, INT32_MIN, INT32_MAX)
    limits.int_field(entry, "quant_max", where, low, min(low + 2 ** bits - 1, INT32_MAX))
    layout = _layout(entry, shape, where, grouped=True)
    if not isinstance(entry.get("zero"), bool):
        raise InputError(f"{where}: field 'zero' must be true or false")
    needs = {f"{name}.codes": (("U8",), [packed_size(count, bits)]), f"{name}.scale": (_FLOATS, list(layout))}
    if entry["zero"]:
        needs[f"{name}.zero"] = (("U8",), [packed_size(math.prod(layout), bits)])
    return needs


def _needs_binary(entry, name, where, stored, budget):
    shape, count = _logical_shape(entry, name, where, budget)
    layout = _layout(entry, shape, where, grouped=False)
    return {f"{name}.codes": (("U8",), [packed_size(count, 1)]), f"{name}.scale": (("F32",), list(layout))}


def _needs_sparse(entry, name, where, stored, budget):
    shape, count = _logical_shape(entry, name, where, budget)
    nnz = limits.int_field(entry, "nnz", where, 0, count)
    return {f"{name}.mask": (("U8",), [packed_size(count, 1)]), f"{name}.values": (_FLOATS, [nnz])}


def _needs_nm(entry, name, where, stored, budget):
    shape, count = _logical_shape(entry, name, where, budget)
    if len(shape) != 2:
        raise InputError(f"{where}: an N:M tensor must be 2-D, got shape {shape}")
    m = limits.int_field(entry, "m", where, 1, MAX_M)
    n = limits.int_field(entry, "n", where, 1, m)
    if shape[1] % m:
        raise InputError(f"{where}: {shape[1]} columns are not a whole number of groups of {m}")
    kept = count // m * n
    return {f"{name}.values": (_FLOATS, [kept]), f"{name}.index": (("U8",), [packed_size(kept, index_bits(m))])}


_NEEDS = {"raw": _needs_raw, "affine": _needs_affine, "binary": _needs_binary, "sparse": _needs_sparse,
          "nm": _needs_nm}


def _tensor(view: memoryview, info: Stored) -> Tensor:
    dtype = DTYPES[info.dtype]
    if info.start == info.end:
        return torch.empty(info.shape, dtype=dtype)
    # A copy: the tensor owns aligned, writable memory rather than viewing the caller's bytes.
    raw = bytearray(view[info.start:info.end])
    if dtype == torch.bool:  # a byte other than 0 or 1 must still read as a proper bool
        return torch.frombuffer(raw, dtype=torch.uint8).bool().reshape(info.shape)
    return torch.frombuffer(raw, dtype=dtype).reshape(info.shape)


def _unpacked(view: memoryview, info: Stored, bits: int, count: int, low: int = 0) -> Tensor:
    """Bit-packed values plus `low`, as int64 (the kinds' own checks refuse values above their range)."""
    q = unpack(view[info.start:info.end], bits, count)
    q += low  # in place: no second array of the declared size
    return torch.from_numpy(q)


# Per kind: build the logical tensor from stored tensors the checks above have vouched for.


def _decode_raw(entry, view, stored):
    return _tensor(view, stored[entry["name"]])


def _decode_affine(entry, view, stored):
    name, shape, bits, low, high = entry["name"], entry["shape"], entry["bits"], entry["quant_min"], entry["quant_max"]
    axis, group = entry.get("axis"), entry.get("group_size")
    layout = scale_shape(tuple(shape), axis, group)
    codes = _unpacked(view, stored[f"{name}.codes"], bits, math.prod(shape), low).reshape(shape)
    zero = (_unpacked(view, stored[f"{name}.zero"], bits, math.prod(layout), low).reshape(layout)
            if entry["zero"] else torch.zeros(layout, dtype=torch.int64))
    return AffineCodes(codes, bits, low, high, _tensor(view, stored[f"{name}.scale"]), zero, axis, group)


def _decode_binary(entry, view, stored):
    name, shape = entry["name"], entry["shape"]
    codes = _unpacked(view, stored[f"{name}.codes"], 1, math.prod(shape)).reshape(shape)
    return BinaryCodes(codes, _tensor(view, stored[f"{name}.scale"]), entry.get("axis"))


def _decode_sparse(entry, view, stored):
    name, shape = entry["name"], entry["shape"]
    mask = _unpacked(view, stored[f"{name}.mask"], 1, math.prod(shape)).reshape(shape).bool()
    return SparseValues(tuple(shape), mask, _tensor(view, stored[f"{name}.values"]))


def _decode_nm(entry, view, stored):
    name, (rows, cols), n, m = entry["name"], entry["shape"], entry["n"], entry["m"]
    kept = rows * cols // m * n
    index = _unpacked(view, stored[f"{name}.index"], index_bits(m), kept)
    return NMValues((rows, cols), n, m, _tensor(view, stored[f"{name}.values"]), index)


DECODERS = {"raw": _decode_raw, "affine": _decode_affine, "binary": _decode_binary, "sparse": _decode_sparse,
             "nm": _decode_nm}


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
