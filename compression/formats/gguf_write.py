"""Writing GGUF, llama.cpp's model file, with the `gguf` package's GGUFWriter, and llama.cpp's own block formats:

- Q8_0: blocks of 32 weights along a row, each a float16 scale d then 32 int8 values q: ŵ = q·d (34 bytes).
- Q4_0: blocks of 32, each a float16 d then 16 bytes of 4-bit values u (byte j holds weight j in its low nibble and
  weight j + 16 in its high one): ŵ = (u − 8)·d (18 bytes).

The packers here take integer values and float16 scales already on those grids and only lay them out; they never
round. (The file is read back bounded by compression.formats.gguf.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter

BLOCK = 32  # weights per Q8_0 / Q4_0 block


@dataclass(frozen=True, eq=False)
class TensorToWrite:
    """One tensor as it goes into the file: float data (F32/F16) or packed blocks (Q8_0/Q4_0)."""

    name: str
    data: np.ndarray  # float32/float16 values, or uint8 blocks (rows, row bytes)
    type_name: str  # "F32" | "F16" | "Q8_0" | "Q4_0"


def _check_blocks(values: np.ndarray, scales: np.ndarray) -> None:
    rows, columns = values.shape
    if columns % BLOCK:
        raise ValueError(f"a row of {columns} weights is no whole number of {BLOCK}-weight blocks")
    if scales.dtype != np.float16 or scales.shape != (rows, columns // BLOCK):
        raise ValueError(f"scales must be float16 of shape {(rows, columns // BLOCK)}, got {scales.dtype} "
                         f"{scales.shape}")


def q8_0_blocks(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Q8_0 rows (uint8, (rows, columns / 32 · 34)) of int8 `values` (rows, columns) with one float16 scale per block
    (rows, columns / 32)."""
    if values.dtype != np.int8:
        raise ValueError(f"Q8_0 holds int8 values, got {values.dtype}")
    _check_blocks(values, scales)
    rows, columns = values.shape
    blocks = np.empty((rows, columns // BLOCK, 2 + BLOCK), dtype=np.uint8)
    blocks[..., :2] = scales[..., None].view(np.uint8).reshape(rows, columns // BLOCK, 2)
    blocks[..., 2:] = values.reshape(rows, -1, BLOCK).view(np.uint8)
    return blocks.reshape(rows, -1)


def q4_0_blocks(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Q4_0 rows (uint8, (rows, columns / 32 · 18)) of 4-bit `values` u in [0, 15] (ŵ = (u − 8)·d) with one float16
    scale d per block (rows, columns / 32)."""
    if values.dtype != np.uint8 or values.size and values.max() > 15:
        raise ValueError("Q4_0 holds values in [0, 15] as uint8")
    _check_blocks(values, scales)
    rows, columns = values.shape
    grouped = values.reshape(rows, -1, BLOCK)
    blocks = np.empty((rows, columns // BLOCK, 2 + BLOCK // 2), dtype=np.uint8)
    blocks[..., :2] = scales[..., None].view(np.uint8).reshape(rows, columns // BLOCK, 2)
    blocks[..., 2:] = grouped[..., :BLOCK // 2] | (grouped[..., BLOCK // 2:] << 4)
    return blocks.reshape(rows, -1)


def _add_field(writer: GGUFWriter, key: str, value: object) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value) if value >= 0 else writer.add_int32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, (list, tuple)):
        writer.add_array(key, list(value))  # the package types the array by its first item (strings, ints)
    else:
        raise TypeError(f"GGUF field {key}: cannot write a {type(value).__name__}")


def write_gguf(path: Path, architecture: str, fields: Mapping[str, object], tensors: Sequence[TensorToWrite]) -> int:
    """Write a GGUF file (general.architecture = `architecture`, then `fields` in order, then the tensors); returns
    its size in bytes."""
    writer = GGUFWriter(str(path), architecture)
    for key, value in fields.items():
        _add_field(writer, key, value)
    for tensor in tensors:
        kind = GGMLQuantizationType[tensor.type_name]
        if tensor.type_name in ("Q8_0", "Q4_0"):
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=kind)
        else:
            writer.add_tensor(tensor.name, np.ascontiguousarray(tensor.data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path).stat().st_size
