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
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Union

import torch
from safetensors.torch import save as safetensors_save
from torch import Tensor

from compression.core.errors import InputError
from compression.formats.bitpack import pack, packed_size
from compression.formats.packed_reader import (DECODERS, DTYPES, FORMAT, MAX_NAME, RESERVED_KEYS, VERSION, checked,
                                               short)
from compression.formats.packed_tensors import AffineCodes, BinaryCodes, NMValues, SparseValues, index_bits

__all__ = ["AffineCodes", "BinaryCodes", "NMValues", "SparseValues", "decode", "decode_state", "encode",
           "encoded_size", "read_metadata"]

Packable = Union[Tensor, AffineCodes, BinaryCodes, SparseValues, NMValues]

@dataclass(frozen=True)
class _Part:
    """A safetensors tensor encode will write: its dtype and shape now, its contents only when built."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    build: Callable[[], Tensor]


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
    view, entries, stored, _ = checked(data, max_elements)
    out = {}
    for entry, where in entries:
        try:
            out[entry["name"]] = DECODERS[entry["kind"]](entry, view, stored)
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
    meta = checked(data, None)[3]
    return {key: value for key, value in meta.items() if key not in RESERVED_KEYS}


# Encoding


def _plan(tensors: Mapping[str, Packable]) -> tuple[list[dict], dict[str, _Part]]:
    entries, parts = [], {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or name == "__metadata__":
            raise InputError(f"a tensor name must be a string of 1 to {MAX_NAME} characters other than "
                             f"'__metadata__', got {short(name)}")
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
        if value.dtype not in DTYPES.values():
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
            raise InputError(f"metadata must map strings to strings, got {short(key)}: {short(value)}")
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
