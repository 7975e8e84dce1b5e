"""Pack unsigned integer codes of any width (1 to 16 bits) densely into bytes, and unpack them exactly."""

from __future__ import annotations

import numpy as np

from compression.core.errors import InputError

MAX_WIDTH = 16


def packed_size(count: int, bits: int) -> int:
    """Bytes that `count` codes of `bits` bits occupy (the last byte is zero-padded)."""
    _check_width(bits)
    return (count * bits + 7) // 8


def pack(codes: np.ndarray, bits: int) -> bytes:
    """Codes in [0, 2**bits) -> bytes, most significant bit first, code after code with no gaps."""
    _check_width(bits)
    flat = np.asarray(codes).reshape(-1)
    if flat.size == 0:
        return b""
    if flat.dtype.kind not in "iu":
        raise InputError(f"codes must be integers, got {flat.dtype}")
    if flat.min() < 0 or flat.max() >= 2 ** bits:
        raise InputError(f"codes must lie in [0, {2 ** bits - 1}] for {bits} bits, "
                         f"got [{flat.min()}, {flat.max()}]")
    if bits == 8:
        return flat.astype(np.uint8).tobytes()
    # Each code as 16 big-endian bits, keep the low `bits` of each, then pack the bit stream.
    bit_rows = np.unpackbits(flat.astype(">u2").view(np.uint8)).reshape(-1, 16)[:, 16 - bits:]
    return np.packbits(bit_rows.reshape(-1)).tobytes()


def unpack(data: bytes, bits: int, count: int) -> np.ndarray:
    """The `count` codes (as int64) that `pack(codes, bits)` wrote into `data`."""
    _check_width(bits)
    if count < 0:
        raise InputError(f"count must be >= 0, got {count}")
    need = packed_size(count, bits)
    if len(data) < need:
        raise InputError(f"packed codes are truncated: {count} codes of {bits} bits need {need} bytes, "
                         f"got {len(data)}")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    raw = np.frombuffer(data, dtype=np.uint8, count=need)
    if bits == 8:
        return raw.astype(np.int64)
    stream = np.unpackbits(raw)[:count * bits].reshape(count, bits)
    rows = np.zeros((count, 16), dtype=np.uint8)
    rows[:, 16 - bits:] = stream
    return np.packbits(rows.reshape(-1)).view(">u2").astype(np.int64)


def _check_width(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_WIDTH:
        raise InputError(f"bit width must be an integer from 1 to {MAX_WIDTH}, got {bits!r}")
