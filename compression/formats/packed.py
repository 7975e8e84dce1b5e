"""One packed file for compressed models: a standard safetensors file whose metadata says what its tensors mean.

`__metadata__` holds "format" = "compression-lab-packed", "version" = "1", "entries" (a JSON list, one object per
logical tensor, in the order given to encode), "crc32" (of the data section) and any metadata of the caller's.
Each logical tensor NAME is stored as:
- raw: NAME, with its own dtype and shape;
- affine: NAME.codes (codes − quant_min, bit-packed U8), NAME.scale (F16 or F32), and NAME.zero (zero points −
  quant_min, bit-packed) only when some zero point is non-zero;
- binary: NAME.codes (1 bit each), NAME.scale (F32);
- sparse: NAME.mask (1 bit each), NAME.values (F16 or F32);
- nm: NAME.values (F16 or F32), NAME.index (positions inside each group, ceil(log2 m) bits each).
The decoder reads untrusted bytes: every size, field and the element budget is checked before anything is unpacked.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Union

import torch
from safetensors.torch import save as safetensors_save
from torch import Tensor

from compression.core.errors import InputError, LimitExceeded
from compression.formats import limits
from compression.formats.bitpack import pack, packed_size, unpack
from compression.formats.packed_tensors import (INT32_MAX, INT32_MIN, MAX_BITS, MAX_M, AffineCodes, BinaryCodes,
                                                NMValues, SparseValues, index_bits, scale_shape)

__all__ = ["AffineCodes", "BinaryCodes", "NMValues", "SparseValues", "decode", "decode_state", "encode",
           "encoded_size", "read_metadata"]

FORMAT = "compression-lab-packed"
VERSION = 1
MAX_NAME = 1000  # characters of a tensor name
MAX_TENSORS = 100_000  # stored tensors or entries of one file
MAX_EXTENT = 2 ** 62  # a shape's sizes multiplied, zeros skipped: past it torch's int64 strides overflow, even empty
RESERVED_KEYS = ("format", "version", "entries", "crc32")
Packable = Union[Tensor, AffineCodes, BinaryCodes, SparseValues, NMValues]

_WHERE = "packed file"
_CORRUPT = "packed file is not a valid safetensors file (corrupt or truncated)"
_DTYPES = {"BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "U16": torch.uint16, "I16": torch.int16,
           "U32": torch.uint32, "I32": torch.int32, "U64": torch.uint64, "I64": torch.int64, "F16": torch.float16,
           "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64, "F8_E4M3": torch.float8_e4m3fn,
           "F8_E5M2": torch.float8_e5m2}
_FLOATS = ("F16", "F32")


@dataclass(frozen=True)
class _Part:
    """A safetensors tensor encode will write: its dtype and shape now, its contents only when built."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    build: Callable[[], Tensor]


class _Stored(NamedTuple):
    """A tensor a file's header declares: dtype name, shape, and its [start, end) in the file."""

    dtype: str
    shape: list[int]
    start: int
    end: int


def encode(tensors: Mapping[str, Packable], metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a packed file holding `tensors` (in order), with the caller's `metadata` beside ours."""
    entries, parts = _plan(tensors)
    _metadata(entries, metadata, 0)  # refuse bad metadata before packing anything
    built, storages = {}, set()
    for key, part in parts.items():
        tensor = part.build()
        storage = tensor.untyped_storage().data_ptr()
        if tensor.numel() and storage in storages:
            tensor = tensor.clone()  # safetensors refuses tensors that share memory (a tied embedding, say)
        storages.add(storage)
        built[key] = tensor
    # The data section is the tensors in safetensors' order, so its CRC is known before the header is written.
    crc = 0
    for key in _order(_empty_header(parts, None)):
        crc = zlib.crc32(built[key].reshape(-1).view(torch.uint8).numpy(), crc)
    return safetensors_save(built, metadata=_metadata(entries, metadata, crc))


def encoded_size(tensors: Mapping[str, Packable], metadata: Mapping[str, str] | None = None) -> int:
    """len(encode(tensors, metadata)), computed without packing a code."""
    entries, parts = _plan(tensors)
    header = _empty_header(parts, _metadata(entries, metadata, 0))
    size, offset = len(header), 0
    for key in _order(header):
        nbytes = math.prod(parts[key].shape) * parts[key].dtype.itemsize
        # The real header writes this shape and these offsets where the empty one wrote [0] and [0,0].
        size += len(_compact(list(parts[key].shape))) - 3 + len(_compact([offset, offset + nbytes])) - 5
        offset += nbytes
    return 8 + -(-size // 8) * 8 + offset  # safetensors pads its header with spaces to a multiple of 8


def decode(data: bytes, max_elements: int | None = None) -> dict[str, Packable]:
    """The logical tensors of a packed file, in file order; anything malformed is refused with InputError."""
    view, entries, stored, _ = _checked(data, max_elements)
    out = {}
    for entry, where in entries:
        try:
            out[entry["name"]] = _DECODERS[entry["kind"]](entry, view, stored)
        except InputError as exc:  # a fact the kind's own checks refuse (a code above quant_max, a NaN scale)
            raise InputError(f"{where}: {exc}") from None
    return out


def decode_state(data: bytes, max_elements: int | None = None) -> dict[str, Tensor]:
    """The state dict a packed file stands for: every tensor dense float32 (raw non-float tensors as they are)."""
    out = {}
    for name, value in decode(data, max_elements).items():
        if isinstance(value, (AffineCodes, BinaryCodes)):
            value = value.dequantize()
        elif isinstance(value, (SparseValues, NMValues)):
            value = value.dense()
        out[name] = value.to(torch.float32) if value.is_floating_point() else value
    return out


def read_metadata(data: bytes) -> dict[str, str]:
    """The caller's metadata of a packed file (without the format's own keys), after the same checks as decode."""
    meta = _checked(data, None)[3]
    return {key: value for key, value in meta.items() if key not in RESERVED_KEYS}


# Encoding


def _plan(tensors: Mapping[str, Packable]) -> tuple[list[dict], dict[str, _Part]]:
    entries, parts = [], {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or name == "__metadata__":
            raise InputError(f"a tensor name must be a string of 1 to {MAX_NAME} characters other than "
                             f"'__metadata__', got {_short(name)}")
        entry, own = _plan_one(name, value)
        for key, part in own.items():
            if key in parts:
                raise InputError(f"tensor {name[:80]!r} would be stored as {key[:80]!r}, which another tensor uses")
            parts[key] = part
        entries.append(entry)
    return entries, parts


def _plan_one(name: str, value: object) -> tuple[dict, dict[str, _Part]]:
    if isinstance(value, AffineCodes):
        zero = bool((value.zero_point != 0).any())
        entry = {"name": name, "kind": "affine", "shape": list(value.codes.shape), "bits": value.bits,
                 "quant_min": value.quant_min, "quant_max": value.quant_max, "axis": value.axis,
                 "group_size": value.group_size, "zero": zero}
        parts = {f"{name}.codes": _packed(value.codes, value.quant_min, value.bits),
                 f"{name}.scale": _plain(value.scale)}
        if zero:
            parts[f"{name}.zero"] = _packed(value.zero_point, value.quant_min, value.bits)
        return entry, parts
    if isinstance(value, BinaryCodes):
        entry = {"name": name, "kind": "binary", "shape": list(value.codes.shape), "axis": value.axis}
        return entry, {f"{name}.codes": _packed(value.codes, 0, 1), f"{name}.scale": _plain(value.scale, torch.float32)}
    if isinstance(value, SparseValues):
        entry = {"name": name, "kind": "sparse", "shape": list(value.shape), "nnz": value.values.numel()}
        return entry, {f"{name}.mask": _packed(value.mask, 0, 1), f"{name}.values": _plain(value.values)}
    if isinstance(value, NMValues):
        entry = {"name": name, "kind": "nm", "shape": list(value.shape), "n": value.n, "m": value.m}
        return entry, {f"{name}.values": _plain(value.values),
                       f"{name}.index": _packed(value.index, 0, index_bits(value.m))}
    if isinstance(value, Tensor):
        if value.dtype not in _DTYPES.values():
            raise InputError(f"tensor {name[:80]!r}: dtype {value.dtype} cannot be stored in a packed file")
        return {"name": name, "kind": "raw"}, {name: _plain(value)}
    raise InputError(f"tensor {name[:80]!r}: a packed file cannot hold a {type(value).__name__}")


def _packed(values: Tensor, offset: int, bits: int) -> _Part:
    """Integer values minus `offset`, bit-packed at `bits` into a 1-D U8 tensor."""
    def build() -> Tensor:
        raw = pack((values.reshape(-1).to("cpu", torch.int64) - offset).numpy(), bits)
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    return _Part(torch.uint8, (packed_size(values.numel(), bits),), build)


def _plain(t: Tensor, dtype: torch.dtype | None = None) -> _Part:
    dtype = dtype or t.dtype
    return _Part(dtype, tuple(t.shape), lambda: t.detach().to("cpu", dtype).contiguous())


def _metadata(entries: list[dict], metadata: Mapping[str, str] | None, crc: int) -> dict[str, str]:
    extra = dict(metadata or {})
    for key, value in extra.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InputError(f"metadata must map strings to strings, got {_short(key)}: {_short(value)}")
        if key in RESERVED_KEYS:
            raise InputError(f"metadata key {key!r} is reserved by the packed format")
    return {**extra, "format": FORMAT, "version": str(VERSION), "entries": _compact(entries), "crc32": f"{crc:08x}"}


def _empty_header(parts: Mapping[str, _Part], metadata: dict[str, str] | None) -> bytes:
    """The header safetensors writes for these names and dtypes with every tensor empty, unpadded."""
    data = safetensors_save({key: torch.empty(0, dtype=part.dtype) for key, part in parts.items()}, metadata=metadata)
    return data[8:8 + int.from_bytes(data[:8], "little")].rstrip(b" ")


def _order(header: bytes) -> list[str]:
    """Stored names in the order safetensors lays out their data (by dtype, then name)."""
    return [key for key in json.loads(header) if key != "__metadata__"]


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


# Decoding: every check first, then the tensors


def _checked(data: bytes, max_elements: int | None) -> tuple[memoryview, list, dict[str, _Stored], dict]:
    """The entries (each with where to say it is), stored tensors and metadata, after every check before unpacking."""
    limits.check_upload_size(data, _WHERE)
    stored, meta, start = _read_header(data)
    entries, crc = _read_metadata(meta)
    view = memoryview(data)
    if zlib.crc32(view[start:]) != crc:
        raise InputError("packed file is corrupt or truncated (checksum mismatch)")
    budget, names, claimed = limits.ElementBudget(_WHERE, max_elements), set(), set()
    checked = [(entry, _check_entry(entry, stored, budget, names, claimed)) for entry in entries]
    unclaimed = sorted(stored.keys() - claimed)
    if unclaimed:
        raise InputError(f"{_WHERE}: the stored tensor {unclaimed[0][:80]!r} belongs to no entry")
    return view, checked, stored, meta


def _read_header(data: bytes) -> tuple[dict[str, _Stored], dict, int]:
    """The safetensors header's tensors, its metadata and where the data section starts, every span checked."""
    if len(data) < 8:
        raise InputError(f"{_CORRUPT}: no header")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise InputError(f"{_CORRUPT}: the header runs past the end")
    if size > limits.MAX_HEADER_BYTES:
        raise LimitExceeded(f"{_WHERE}: the header is over {limits.MAX_HEADER_BYTES:,} bytes")
    header = limits.parse_json(data[8:8 + size], _WHERE)
    if not isinstance(header, dict):
        raise InputError(f"{_CORRUPT}: the header is not a map")
    meta = header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise LimitExceeded(f"{_WHERE}: {len(header):,} stored tensors is over the limit of {MAX_TENSORS:,}")
    body, stored = len(data) - 8 - size, {}
    for name, info in header.items():
        where = f"{_WHERE}, stored tensor {name[:80]!r}"
        if not isinstance(info, dict) or not isinstance(info.get("dtype"), str) or info["dtype"] not in _DTYPES:
            raise InputError(f"{where} has no supported dtype")
        count = _numel(info.get("shape"), where)
        span = info.get("data_offsets")
        if not _is_span(span, body):
            raise InputError(f"{_CORRUPT}: stored tensor {name[:80]!r} lies outside the data section")
        if span[1] - span[0] != count * _DTYPES[info["dtype"]].itemsize:
            raise InputError(f"{_CORRUPT}: stored tensor {name[:80]!r} has {span[1] - span[0]} bytes, not the "
                             f"{count * _DTYPES[info['dtype']].itemsize} its dtype and shape need")
        stored[name] = _Stored(info["dtype"], info["shape"], 8 + size + span[0], 8 + size + span[1])
    end = 8 + size  # safetensors covers its data section with the tensors, back to back
    for name, info in sorted(stored.items(), key=lambda item: (item[1].start, item[1].end)):
        if info.start != end:
            problem = "overlaps another" if info.start < end else "leaves a gap before it"
            raise InputError(f"{_CORRUPT}: stored tensor {name[:80]!r} {problem}")
        end = info.end
    if end != len(data):
        raise InputError(f"{_CORRUPT}: {len(data) - end:,} trailing bytes after the last tensor")
    return stored, meta, 8 + size


def _is_span(span: object, body: int) -> bool:
    """[start, end]: integer offsets inside a data section of `body` bytes."""
    return (isinstance(span, list) and len(span) == 2 and all(type(o) is int for o in span)  # bools are not offsets
            and 0 <= span[0] <= span[1] <= body)


def _read_metadata(meta: object) -> tuple[list, int]:
    """The entries and the CRC the metadata declares, after checking the format, the version and their types."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{_WHERE}: this safetensors file is not a Compression Lab packed file "
                         f"(its metadata has no format {FORMAT!r})")
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in meta.items()):
        raise InputError(f"{_WHERE}: the metadata must map strings to strings")
    version = meta.get("version", "")
    if not re.fullmatch(r"[0-9]{1,9}", version) or int(version) < 1:
        raise InputError(f"{_WHERE} has an invalid format version {_short(version)}")
    if int(version) > VERSION:
        raise InputError(f"packed file format version {int(version)} is newer than this app reads ({VERSION}); "
                         "update Compression Lab")
    entries = limits.parse_json(meta.get("entries", ""), f"{_WHERE} entries")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise InputError(f"{_WHERE}: the entries must be a list of objects")
    if len(entries) > MAX_TENSORS:
        raise LimitExceeded(f"{_WHERE}: {len(entries):,} entries is over the limit of {MAX_TENSORS:,}")
    crc = meta.get("crc32", "")
    if not re.fullmatch(r"[0-9a-f]{8}", crc):
        raise InputError(f"{_WHERE}: the metadata has no crc32 of 8 lowercase hex digits")
    return entries, int(crc, 16)


def _check_entry(entry: dict, stored: dict[str, _Stored], budget: limits.ElementBudget, names: set,
                 claimed: set) -> str:
    """Check one entry's fields and the stored tensors it needs (claiming them); returns where to say it is."""
    name = entry.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise InputError(f"{_WHERE}: an entry's name must be a string of 1 to {MAX_NAME} characters, "
                         f"got {_short(name)}")
    where = f"{_WHERE}, tensor {name[:80]!r}"
    if name in names:
        raise InputError(f"{where}: the name appears twice")
    names.add(name)
    kind = entry.get("kind")
    if not isinstance(kind, str) or kind not in _NEEDS:
        raise InputError(f"{where}: unknown kind {_short(kind)}")
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
    count = _numel(shape, where)
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
    return {name: (tuple(_DTYPES), None)}


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


def _tensor(view: memoryview, info: _Stored) -> Tensor:
    dtype = _DTYPES[info.dtype]
    if info.start == info.end:
        return torch.empty(info.shape, dtype=dtype)
    # A copy: the tensor owns aligned, writable memory rather than viewing the caller's bytes.
    raw = bytearray(view[info.start:info.end])
    if dtype == torch.bool:  # a byte other than 0 or 1 must still read as a proper bool
        return torch.frombuffer(raw, dtype=torch.uint8).bool().reshape(info.shape)
    return torch.frombuffer(raw, dtype=dtype).reshape(info.shape)


def _unpacked(view: memoryview, info: _Stored, bits: int, count: int, low: int = 0) -> Tensor:
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


_DECODERS = {"raw": _decode_raw, "affine": _decode_affine, "binary": _decode_binary, "sparse": _decode_sparse,
             "nm": _decode_nm}


def _numel(shape: object, where: str) -> int:
    """Elements of a declared shape (limits.numel), refusing sizes no tensor, even an empty one, can have."""
    count = limits.numel(shape, where)
    if math.prod(size or 1 for size in shape) > MAX_EXTENT:
        raise InputError(f"{where}: the sizes of shape {_short(shape)} multiply past {MAX_EXTENT:,}")
    return count


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
