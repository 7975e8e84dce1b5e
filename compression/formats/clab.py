"""The compressed model file (.clab): sparse relative indices + shared-weight codes, Huffman-coded, versioned.

Layout: b"CLAB" | u16 format version | u32 header length | u32 CRC-32 of the rest | zlib(JSON header) | blobs.
A coded tensor's blob is its float32 codebook, then the Huffman-coded codes of the kept weights, then the
Huffman-coded gaps between kept positions (gap 2**index_bits - 1 is an escape: skip that many, no weight).
Everything else (biases, norms) is stored as raw float32.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

import compression.formats.huffman as huffman
import compression.formats.limits as limits
from compression.core.errors import InputError

MAGIC = b"CLAB"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">4sHII")


@dataclass(frozen=True, eq=False)
class SharedTensor:
    """A weight as a codebook, a code per kept position, and the mask of kept positions."""

    codebook: Tensor  # (K,) float32
    codes: Tensor  # int64, the weight's shape; meaningful where mask is True
    mask: Tensor  # bool, the weight's shape

    @property
    def bits(self) -> int:
        return max(1, (len(self.codebook) - 1).bit_length())

    def dense(self) -> Tensor:
        """The weight tensor this stands for: codebook values where kept, exact zeros elsewhere."""
        return torch.where(self.mask, self.codebook[self.codes], torch.zeros((), dtype=self.codebook.dtype))



@dataclass(frozen=True, eq=False)
class Decoded:
    """What a .clab file holds: a dense state dict plus the architecture and metadata needed to rebuild it."""

    state: dict[str, Tensor]
    arch: str
    meta: Mapping = field(default_factory=dict)
    version: int = FORMAT_VERSION


def relative_indices(mask: np.ndarray, index_bits: int) -> np.ndarray:
    """Gaps between kept positions of a flat mask, with escapes for gaps that do not fit in index_bits."""
    escape = (1 << index_bits) - 1
    positions = np.flatnonzero(mask)
    gaps = np.diff(np.concatenate([[-1], positions])) - 1
    runs = gaps // escape  # how many escapes each gap needs before its own symbol
    out = np.full(len(gaps) + int(runs.sum()), escape, dtype=np.int64)
    ends = np.cumsum(runs + 1) - 1  # the slot of each gap's final symbol; escapes fill the slots before it
    out[ends] = gaps - runs * escape
    return out


def positions_from_indices(symbols: np.ndarray, index_bits: int) -> np.ndarray:
    """Inverse of relative_indices: the flat kept positions."""
    escape = (1 << index_bits) - 1
    is_escape = symbols == escape
    advance = np.where(is_escape, escape, symbols + 1)
    return (np.cumsum(advance) - 1)[~is_escape]


def encode(state: Mapping[str, Tensor], shared: Mapping[str, SharedTensor], arch: str, meta: Mapping | None = None,
           index_bits: int = 5) -> bytes:
    """Write the .clab bytes for `state`, where the tensors named in `shared` are coded."""
    if not 1 <= index_bits <= 8:
        raise InputError(f"index_bits must be in 1..8, got {index_bits}")
    entries, blobs = [], []
    for name, tensor in state.items():
        if name in shared:
            entry, blob = _encode_shared(shared[name], index_bits)
        else:
            blob = tensor.detach().float().contiguous().numpy().astype("<f4").tobytes()
            entry = {"e": "raw"}
        entries.append({"n": name, "s": list(tensor.shape), "b": len(blob), **entry})
        blobs.append(blob)
    header = zlib.compress(json.dumps({"arch": arch, "meta": dict(meta or {}), "t": entries},
                                      separators=(",", ":")).encode(), 9)
    body = header + b"".join(blobs)
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), zlib.crc32(body)) + body


def _encode_shared(st: SharedTensor, index_bits: int) -> tuple[dict, bytes]:
    mask = st.mask.reshape(-1).numpy()
    codes = st.codes.reshape(-1).numpy()[mask]
    k = len(st.codebook)
    code_len = huffman.code_lengths(codes, k)
    entry = {"e": "hc", "k": k, "nnz": int(mask.sum()), "cl": code_len}
    code_stream = huffman.encode(codes, code_len)
    entry["cb"] = len(code_stream)
    index_stream = b""
    if not mask.all():  # a dense tensor needs no positions
        gaps = relative_indices(mask, index_bits)
        index_len = huffman.code_lengths(gaps, 1 << index_bits)
        index_stream = huffman.encode(gaps, index_len)
        entry.update(ib=index_bits, ni=len(gaps), il=index_len)
    return entry, st.codebook.float().numpy().astype("<f4").tobytes() + code_stream + index_stream


MAX_CODEBOOK = 256  # 2**8: weight sharing uses 1 to 8 bits
MAX_INDEX_BITS = 8
_WHERE = "the compressed file"


def decode(data: bytes) -> Decoded:
    """Read .clab bytes back into dense tensors; corrupt, truncated, oversized or newer files raise InputError.

    Everything the header declares (shapes against the element budget, code lengths, counts against the bits
    present, blob sizes against the file) is checked before any tensor is allocated.
    """
    if len(data) < _PREFIX.size or data[:4] != MAGIC:
        raise InputError("not a Compression Lab file (.clab): wrong magic bytes")
    _, version, header_len, crc = _PREFIX.unpack_from(data)
    if version > FORMAT_VERSION:
        raise InputError(f"this file uses format version {version}, written by a newer Compression Lab; "
                         f"this one reads up to version {FORMAT_VERSION}. Upgrade to open it.")
    if version < 1:
        raise InputError(f"{_WHERE} has an invalid format version {version}")
    body = data[_PREFIX.size:]
    if len(body) < header_len:
        raise InputError("the compressed file is truncated (header)")
    if zlib.crc32(body) != crc:
        raise InputError("the compressed file is corrupted or truncated (checksum mismatch)")
    header = limits.parse_json(limits.inflate(body[:header_len], _WHERE), _WHERE)
    if not isinstance(header, dict) or not isinstance(header.get("t"), list) or not isinstance(header.get("arch"), str):
        raise InputError(f"{_WHERE} is malformed (the header lacks its architecture or tensor list)")
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise InputError(f"{_WHERE} is malformed (metadata is not a mapping)")
    budget, names, spans, offset = limits.ElementBudget(_WHERE), set(), [], header_len
    for entry in header["t"]:  # validate every entry before decoding any
        numel = _check_entry(entry, names, budget)
        if offset + entry["b"] > len(body):
            raise InputError("the compressed file is truncated")
        spans.append((entry, numel, offset))
        offset += entry["b"]
    if offset != len(body):
        raise InputError(f"{_WHERE} has trailing bytes after its last tensor")
    try:
        state = {entry["n"]: _decode_tensor(entry, numel, body[start:start + entry["b"]])
                 for entry, numel, start in spans}
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # a net under the checks above
        raise InputError(f"the compressed file is malformed ({type(exc).__name__})") from exc
    return Decoded(state, header["arch"], meta, version)


def _check_entry(entry: object, names: set, budget: limits.ElementBudget) -> int:
    """Validate one tensor entry of the header; returns its element count."""
    if not isinstance(entry, dict) or not isinstance(entry.get("n"), str):
        raise InputError(f"{_WHERE} is malformed (a tensor entry has no name)")
    name = entry["n"]
    where = f"{_WHERE}, tensor {name[:80]!r}"
    if name in names:
        raise InputError(f"{where}: the name appears twice")
    names.add(name)
    numel = limits.numel(entry.get("s"), where)
    budget.add(numel, f"tensor {name[:80]!r} has shape {entry['s']}")
    size = limits.int_field(entry, "b", where)
    kind = entry.get("e")
    if kind == "raw":
        if size != 4 * numel:
            raise InputError(f"{where}: {size} bytes do not hold {numel} float32 values")
        return numel
    if kind != "hc":
        raise InputError(f"{where}: unknown encoding {kind!r}")
    k = limits.int_field(entry, "k", where, 1, MAX_CODEBOOK)
    nnz = limits.int_field(entry, "nnz", where, 0, numel)
    code_bytes = limits.int_field(entry, "cb", where, 0, size - 4 * k)
    code_len = huffman.check_lengths(entry.get("cl"), k, where)
    if nnz > huffman.max_symbols(code_len, code_bytes):
        raise InputError(f"{where}: {nnz} codes cannot fit in {code_bytes} bytes")
    if "ib" not in entry:
        if nnz != numel or 4 * k + code_bytes != size:
            raise InputError(f"{where}: a tensor without positions must keep all {numel} weights")
        return numel
    index_bits = limits.int_field(entry, "ib", where, 1, MAX_INDEX_BITS)
    index_len = huffman.check_lengths(entry.get("il"), 1 << index_bits, where)
    symbols = limits.int_field(entry, "ni", where, nnz)
    if symbols > huffman.max_symbols(index_len, size - 4 * k - code_bytes):
        raise InputError(f"{where}: {symbols} position symbols cannot fit in the bytes left")
    return numel


def _decode_tensor(entry: dict, numel: int, blob: bytes) -> Tensor:
    shape = tuple(entry["s"])
    if entry["e"] == "raw":
        return torch.from_numpy(np.frombuffer(blob, dtype="<f4").astype(np.float32).reshape(shape))
    k, nnz = entry["k"], entry["nnz"]
    codebook = np.frombuffer(blob[:4 * k], dtype="<f4").astype(np.float32)
    code_end = 4 * k + entry["cb"]
    codes = huffman.decode(blob[4 * k:code_end], entry["cl"], nnz)  # symbols < k: the table has k entries
    if "ib" not in entry:  # dense: checked nnz == numel
        return torch.from_numpy(codebook[codes].reshape(shape))
    positions = positions_from_indices(huffman.decode(blob[code_end:], entry["il"], entry["ni"]), entry["ib"])
    if len(positions) != nnz or (nnz and positions[-1] >= numel):
        raise InputError("the compressed file is corrupt (positions out of range)")
    flat = np.zeros(numel, dtype=np.float32)
    flat[positions] = codebook[codes]
    return torch.from_numpy(flat.reshape(shape))
