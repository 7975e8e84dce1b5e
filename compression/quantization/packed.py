"""A versioned packed low-bit file: a header, then per tensor its bit-packed codes and scales (others as fp32).

Layout (little-endian):
    b"CLQP" | version u16 | header length u32 | zlib(JSON header) | payload | CRC-32 of all bytes before it (u32)
The header lists the tensors in state-dict order. A quantized tensor's payload is its codes minus quant_min,
packed with compression.formats.bitpack, then its float32 scales, then int32 zero points (only when some are non-zero).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

import compression.formats.bitpack as bitpack
import compression.formats.limits as limits
from compression.core.errors import InputError
from compression.quantization.primitives import QParams, QTensor

MAGIC = b"CLQP"
VERSION = 1
_PREFIX = struct.Struct("<4sHI")


def save_packed(state: Mapping[str, Tensor | QTensor]) -> bytes:
    """The bytes of a packed file holding `state`: QTensors bit-packed, float tensors as fp32, others raw."""
    entries, chunks = [], []
    for name, value in state.items():
        if isinstance(value, QTensor):
            entry, payload = _pack_qtensor(value)
        else:
            entry, payload = _pack_raw(value)
        entries.append({"n": name, **entry})
        chunks.extend(payload)
    header = zlib.compress(json.dumps({"t": entries}, separators=(",", ":")).encode(), 9)
    body = _PREFIX.pack(MAGIC, VERSION, len(header)) + header + b"".join(chunks)
    return body + struct.pack("<I", zlib.crc32(body))


def load_packed(data: bytes) -> dict[str, Tensor]:
    """Decode a packed file into a state dict of float32 (dequantized) and raw tensors."""
    return {name: (value.dequantize() if isinstance(value, QTensor) else value)
            for name, value in read_packed(data).items()}


_WHERE = "packed file"
_INT32 = 1 << 31


def read_packed(data: bytes) -> dict[str, Tensor | QTensor]:
    """Decode a packed file, keeping quantized tensors as QTensor (codes + scales).

    Every entry of the header (shape against the element budget, bit width, channels, dtype, byte counts against
    the payload) is checked before any tensor is allocated.
    """
    if len(data) < _PREFIX.size + 4:
        raise InputError("packed file is truncated (shorter than its header)")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise InputError("not a packed Compression Lab file (bad magic bytes)")
    if version > VERSION:
        raise InputError(f"packed file format version {version} is newer than this app reads ({VERSION}); "
                         "update Compression Lab")
    if version < 1:
        raise InputError(f"packed file has an invalid format version {version}")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise InputError("packed file is corrupt or truncated (checksum mismatch)")
    start = _PREFIX.size
    if start + header_len > len(body):
        raise InputError("packed file is truncated (header)")
    header = limits.parse_json(limits.inflate(body[start:start + header_len], _WHERE), _WHERE)
    if not isinstance(header, dict) or not isinstance(header.get("t"), list):
        raise InputError("packed file has an unreadable header (no tensor list)")
    budget, names, payload = limits.ElementBudget(_WHERE), set(), start + header_len
    for entry in header["t"]:  # validate every entry before decoding any
        payload += _check_entry(entry, names, budget)
    if payload != len(body):
        raise InputError("packed file is truncated (a tensor runs past the end)" if payload > len(body)
                         else "packed file has trailing bytes after its last tensor")
    reader = _Reader(body, start + header_len)
    try:
        return {entry["n"]: _unpack_qtensor(entry, reader) if entry["k"] != "raw" else _unpack_raw(entry, reader)
                for entry in header["t"]}
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # a net under the checks above
        raise InputError(f"packed file has a malformed tensor entry ({type(exc).__name__})") from exc


def _check_entry(entry: object, names: set, budget: limits.ElementBudget) -> int:
    """Validate one header entry; returns the payload bytes it occupies."""
    if not isinstance(entry, dict) or not isinstance(entry.get("n"), str):
        raise InputError("packed file has a malformed tensor entry (no name)")
    name = entry["n"]
    where = f"{_WHERE}, tensor {name[:80]!r}"
    if name in names:
        raise InputError(f"{where}: the name appears twice")
    names.add(name)
    shape = entry.get("s")
    count = limits.numel(shape, where)
    budget.add(count, f"tensor {name[:80]!r} has shape {shape}")
    kind = entry.get("k")
    if kind == "raw":
        dtype = _raw_dtype(entry.get("d"), where)
        return count * dtype.itemsize
    if kind not in ("affine", "binary"):
        raise InputError(f"packed file has an unknown tensor kind {str(kind)[:40]!r}")
    bits = limits.int_field(entry, "b", where, 1, bitpack.MAX_WIDTH)
    low = limits.int_field(entry, "lo", where, -_INT32, _INT32 - (1 << bitpack.MAX_WIDTH))
    limits.int_field(entry, "hi", where, low, _INT32 - 1)
    channels = limits.int_field(entry, "c", where, 0, max(count, 1))
    axis = entry.get("ax")
    if axis is None:
        if channels != 1:
            raise InputError(f"{where}: a per-tensor scale must be one value, got {channels}")
    elif isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < len(shape) or shape[axis] != channels:
        raise InputError(f"packed file: {channels} scales do not match axis {axis!r} of shape {shape}")
    if not isinstance(entry.get("z"), bool):
        raise InputError(f"{where}: field 'z' must be true or false")
    return bitpack.packed_size(count, bits) + 4 * channels * (2 if entry["z"] else 1)


def _raw_dtype(name: object, where: str) -> np.dtype:
    try:
        dtype = np.dtype(name) if isinstance(name, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "fiub" or dtype.itemsize > 8 or dtype.shape:
        raise InputError(f"packed file has an unsupported dtype {str(name)[:40]!r}")
    return dtype


def _pack_qtensor(qt: QTensor) -> tuple[dict, list[bytes]]:
    qp = qt.qparams
    codes = (qt.codes.reshape(-1).to(torch.int64) - qp.quant_min).numpy()
    zero = qp.zero_point.reshape(-1).to(torch.int32).numpy()
    store_zero = bool(np.any(zero != 0))
    entry = {"k": qt.kind, "s": list(qt.codes.shape), "b": qt.bits, "lo": qp.quant_min, "hi": qp.quant_max,
             "ax": qp.axis, "c": int(qp.scale.numel()), "z": store_zero}
    payload = [bitpack.pack(codes, qt.bits), qp.scale.reshape(-1).float().numpy().astype("<f4").tobytes()]
    if store_zero:
        payload.append(zero.astype("<i4").tobytes())
    return entry, payload


def _pack_raw(tensor: Tensor) -> tuple[dict, list[bytes]]:
    t = tensor.detach().cpu().contiguous()
    if t.is_floating_point():
        t = t.float()  # biases and norms: fp32
    array = t.numpy()
    return {"k": "raw", "s": list(t.shape), "d": array.dtype.newbyteorder("<").str}, \
        [array.astype(array.dtype.newbyteorder("<")).tobytes()]


class _Reader:
    """Bounds-checked cursor over the payload."""

    def __init__(self, data: bytes, offset: int):
        self.data, self.offset = data, offset

    def take(self, n: int) -> bytes:
        if n < 0 or self.offset + n > len(self.data):
            raise InputError("packed file is truncated (a tensor runs past the end)")
        chunk = self.data[self.offset:self.offset + n]
        self.offset += n
        return chunk


def _unpack_qtensor(entry: dict, reader: _Reader) -> QTensor:
    shape, bits, channels = entry["s"], entry["b"], entry["c"]
    count = math.prod(shape)
    codes = bitpack.unpack(reader.take(bitpack.packed_size(count, bits)), bits, count) + entry["lo"]
    scale = np.frombuffer(reader.take(4 * channels), dtype="<f4").astype(np.float32)
    zero = (np.frombuffer(reader.take(4 * channels), dtype="<i4").astype(np.int32) if entry["z"]
            else np.zeros(channels, dtype=np.int32))
    axis = entry["ax"]
    per_channel = axis is not None
    scale_t, zero_t = torch.from_numpy(scale.copy()), torch.from_numpy(zero.copy())
    if not per_channel:
        scale_t, zero_t = scale_t.reshape(()), zero_t.reshape(())
    qparams = QParams(scale_t, zero_t, entry["lo"], entry["hi"], axis)
    return QTensor(torch.from_numpy(codes.astype(np.int32)).reshape(shape), qparams, bits, entry["k"])


def _unpack_raw(entry: dict, reader: _Reader) -> Tensor:
    dtype = np.dtype(entry["d"])
    shape = entry["s"]
    array = np.frombuffer(reader.take(math.prod(shape) * dtype.itemsize), dtype=dtype)
    return torch.from_numpy(array.astype(dtype.newbyteorder("=")).reshape(shape).copy())
