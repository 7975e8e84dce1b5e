"""Real packed files of a compressed language model, and their size next to the float16 model.

Layout (version 1): b"CLLM", u32 version, u32 header length, a JSON header listing each tensor, then the
payloads in header order. Per linear of a decoder layer:
- "grid": codes bit-packed at `bits`, zero points bit-packed at `bits`, float16 scales (one per row and group);
- "sparse": a 1-bit keep mask plus the kept values as float16;
- "nm": the kept values as float16 plus each one's position inside its group of M (ceil(log2 M) bits);
every other tensor (embeddings, norms, biases, untouched linears) as float16.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.formats import limits
from compression.formats.bitpack import pack as pack_codes
from compression.formats.bitpack import packed_size
from compression.formats.bitpack import unpack as unpack_codes
from compression.llm.compressor import CompressionResult
from compression.llm.configs import PruneConfig
from compression.llm.layers import get_weight, is_conv1d, linear_names
from compression.llm.models import LanguageModel
from compression.llm.rounding import GroupGrid, codes

MAGIC = b"CLLM"
VERSION = 1


def fp16_size_bytes(lm: LanguageModel) -> int:
    """Bytes of every parameter as float16 (a tied embedding counted once): the baseline file."""
    return 2 * sum(p.numel() for p in lm.model.parameters())


def packed_size_bytes(result: CompressionResult) -> int:
    """len(pack(result)), computed without packing."""
    entries = list(_entries(result))
    return 12 + len(_header(entries)) + sum(entry["bytes"] for entry, _ in entries)


def pack(result: CompressionResult) -> bytes:
    entries = list(_entries(result))
    header = _header(entries)
    parts = [MAGIC, struct.pack("<II", VERSION, len(header)), header]
    parts += [payload() for _, payload in entries]
    return b"".join(parts)


def unpack(data: bytes) -> dict[str, Tensor]:
    """The float32 state dict a packed file stands for; anything malformed is refused with InputError."""
    if len(data) < 12 or data[:4] != MAGIC:
        raise InputError("not a packed language-model file")
    version, header_len = struct.unpack("<II", data[4:12])
    if version != VERSION:
        raise InputError(f"packed file version {version} is not supported (expected {VERSION})")
    if header_len > len(data) - 12:
        raise InputError("packed file is truncated (header)")
    entries = limits.parse_json(data[12:12 + header_len], "packed file")  # a deep nesting is refused, not recursed
    if not isinstance(entries, list):
        raise InputError("packed file header must list tensors")
    offset = 12 + header_len
    out = {}
    for entry in entries:
        size = _checked_size(entry)
        if offset + size > len(data):
            raise InputError(f"packed file is truncated at {entry['name']!r}")
        out[entry["name"]] = _decode(entry, data[offset:offset + size])
        offset += size
    return out


def _checked_size(entry) -> int:
    """The payload size an entry must have, after checking every field it is decoded with."""
    try:
        name, kind, shape, size = entry["name"], entry["kind"], entry["shape"], entry["bytes"]
        if not isinstance(name, str) or not all(isinstance(d, int) and d > 0 for d in shape) or len(shape) > 2:
            raise ValueError
        count = math.prod(shape)
        if kind == "fp16":
            expected = 2 * count
        elif kind == "grid":
            bits, group = entry["bits"], entry["group_size"]
            if len(shape) != 2 or not 1 <= bits <= 16 or group < 1 or shape[1] % group:
                raise ValueError
            groups = count // group
            expected = packed_size(count, bits) + packed_size(groups, bits) + 2 * groups
        elif kind == "sparse":
            keep_len = packed_size(count, 1)
            if len(shape) != 2 or size < keep_len or (size - keep_len) % 2:
                raise ValueError
            expected = size  # the kept values are counted from the mask when decoding
        elif kind == "nm":
            n, m = entry["n"], entry["m"]
            if len(shape) != 2 or not 0 < n < m <= 64 or count % m:
                raise ValueError
            kept = count * n // m
            expected = 2 * kept + packed_size(kept, max(1, math.ceil(math.log2(m))))
        else:
            raise ValueError
        if size != expected or not isinstance(entry.get("transposed", False), bool):
            raise ValueError
        return size
    except (KeyError, TypeError, ValueError, OverflowError):
        raise InputError(f"packed file has a malformed tensor entry: {str(entry)[:80]}") from None


def _header(entries) -> bytes:
    return json.dumps([entry for entry, _ in entries], separators=(",", ":")).encode()


def _entries(result: CompressionResult) -> Iterator[tuple[dict, Callable[[], bytes]]]:
    model = result.lm.model
    by_name = {name: key for key, name in linear_names(model).items()}
    seen = set()
    for name, param in model.named_parameters():  # named_parameters() lists a tied tensor once
        if id(param) in seen:
            continue
        seen.add(id(param))
        module_name = name.rsplit(".", 1)[0]
        key = by_name.get(module_name) if name.endswith(".weight") else None
        module = model.get_submodule(module_name)
        if key is not None and key in result.grids:
            yield _grid_entry(name, module, result.grids[key])
        elif key is not None and isinstance(result.config, PruneConfig):
            yield _sparse_entry(name, get_weight(module).cpu(), result.config.nm, is_conv1d(module))
        else:
            yield _fp16_entry(name, param.detach().cpu())


def _grid_entry(name: str, module, grid: GroupGrid):
    rows, groups = grid.scale.shape
    cols = groups * grid.group_size
    entry = {"name": name, "kind": "grid", "shape": [rows, cols], "bits": grid.bits, "group_size": grid.group_size,
             "transposed": is_conv1d(module),
             "bytes": packed_size(rows * cols, grid.bits) + packed_size(groups * rows, grid.bits) + 2 * groups * rows}

    def payload() -> bytes:
        w = get_weight(module).cpu()  # only now: sizes alone need no weights
        scale, zero = grid.scale.cpu(), grid.zero.cpu()
        cpu_grid = GroupGrid(scale, zero, grid.bits, grid.group_size)
        return (pack_codes(codes(w, cpu_grid).numpy(), grid.bits) + pack_codes(zero.to(torch.int32).numpy(), grid.bits)
                + scale.half().numpy().tobytes())
    return entry, payload


def _sparse_entry(name: str, w: Tensor, nm: tuple[int, int] | None, transposed: bool):
    keep = w != 0
    kept = int(keep.sum())
    entry = {"name": name, "shape": list(w.shape), "transposed": transposed}
    if nm:
        index_bits = max(1, math.ceil(math.log2(nm[1])))
        kept = w.numel() * nm[0] // nm[1]
        entry.update(kind="nm", n=nm[0], m=nm[1], bytes=2 * kept + packed_size(kept, index_bits))

        def payload() -> bytes:
            groups = w.reshape(-1, nm[1])
            index = groups.abs().topk(nm[0], dim=1).indices.sort(dim=1).values  # zeros pruned; ties keep order
            values = groups.gather(1, index)
            return values.half().numpy().tobytes() + pack_codes(index.numpy(), index_bits)
    else:
        entry.update(kind="sparse", bytes=packed_size(w.numel(), 1) + 2 * kept)

        def payload() -> bytes:
            return pack_codes(keep.flatten().numpy().astype(np.uint8), 1) + w[keep].half().numpy().tobytes()
    return entry, payload


def _fp16_entry(name: str, t: Tensor):
    entry = {"name": name, "kind": "fp16", "shape": list(t.shape), "bytes": 2 * t.numel()}
    return entry, lambda: t.half().numpy().tobytes()


def _decode(entry: dict, blob: bytes) -> Tensor:
    shape, kind = entry["shape"], entry["kind"]
    if kind == "fp16":
        return torch.from_numpy(np.frombuffer(blob, dtype=np.float16).copy()).float().reshape(shape)
    rows, cols = shape
    count = rows * cols
    if kind == "grid":
        bits, size = entry["bits"], entry["group_size"]
        groups = count // size
        code_len, zero_len = packed_size(count, bits), packed_size(groups, bits)
        q = torch.from_numpy(unpack_codes(blob[:code_len], bits, count).astype(np.float32)).view(rows, -1, size)
        zero = torch.from_numpy(unpack_codes(blob[code_len:code_len + zero_len], bits, groups).astype(np.float32))
        scale = torch.from_numpy(np.frombuffer(blob[code_len + zero_len:], dtype=np.float16).copy()).float()
        w = ((q - zero.view(rows, -1, 1)) * scale.view(rows, -1, 1)).reshape(rows, cols)
    elif kind == "sparse":
        keep = torch.from_numpy(unpack_codes(blob[:packed_size(count, 1)], 1, count).astype(bool)).view(rows, cols)
        values = torch.from_numpy(np.frombuffer(blob[packed_size(count, 1):], dtype=np.float16).copy()).float()
        if values.numel() != int(keep.sum()):
            raise InputError(f"packed file: {entry['name']!r} has {values.numel()} values for {int(keep.sum())} kept")
        w = torch.zeros(rows, cols)
        w[keep] = values
    else:
        n, m = entry["n"], entry["m"]
        kept = count * n // m
        values = torch.from_numpy(np.frombuffer(blob[:2 * kept], dtype=np.float16).copy()).float().view(-1, n)
        bits = max(1, math.ceil(math.log2(m)))
        index = torch.from_numpy(unpack_codes(blob[2 * kept:], bits, kept).astype(np.int64)).view(-1, n)
        if index.numel() and int(index.max()) >= m:
            raise InputError(f"packed file: {entry['name']!r} has an N:M position outside its group")
        w = torch.zeros(count // m, m).scatter_(1, index, values).reshape(rows, cols)
    return w.t().contiguous() if entry.get("transposed") else w
