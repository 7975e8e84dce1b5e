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


def decode(data: bytes) -> Decoded:
    """Read .clab bytes back into dense tensors; corrupt, truncated or newer files raise InputError."""
    if len(data) < _PREFIX.size or data[:4] != MAGIC:
        raise InputError("not a Compression Lab file (.clab): wrong magic bytes")
    _, version, header_len, crc = _PREFIX.unpack_from(data)
    if version > FORMAT_VERSION:
        raise InputError(f"this file uses format version {version}, written by a newer Compression Lab; "
                         f"this one reads up to version {FORMAT_VERSION}. Upgrade to open it.")
    body = data[_PREFIX.size:]
    if len(body) < header_len:
        raise InputError("the compressed file is truncated (header)")
    if zlib.crc32(body) != crc:
        raise InputError("the compressed file is corrupted or truncated (checksum mismatch)")
    try:
        header = json.loads(zlib.decompress(body[:header_len]))
        state, offset = {}, header_len
        for entry in header["t"]:
            blob = body[offset:offset + entry["b"]]
            if len(blob) != entry["b"]:
                raise InputError("the compressed file is truncated")
            offset += entry["b"]
            state[entry["n"]] = _decode_tensor(entry, blob)
        return Decoded(state, header["arch"], header.get("meta", {}), version)
    except InputError:
        raise
    except (KeyError, ValueError, TypeError, zlib.error) as exc:
        raise InputError(f"the compressed file is malformed ({type(exc).__name__})") from exc


def _decode_tensor(entry: dict, blob: bytes) -> Tensor:
    shape = tuple(entry["s"])
    numel = int(np.prod(shape)) if shape else 1
    if entry["e"] == "raw":
        return torch.from_numpy(np.frombuffer(blob, dtype="<f4").astype(np.float32).reshape(shape))
    k, nnz = entry["k"], entry["nnz"]
    codebook = np.frombuffer(blob[:4 * k], dtype="<f4")
    code_end = 4 * k + entry["cb"]
    codes = huffman.decode(blob[4 * k:code_end], entry["cl"], nnz)
    if "ib" in entry:
        positions = positions_from_indices(huffman.decode(blob[code_end:], entry["il"], entry["ni"]), entry["ib"])
    else:
        positions = np.arange(numel)
    if len(positions) != nnz or (nnz and (positions[-1] >= numel or codes.max() >= k)):
        raise InputError("the compressed file is corrupt (positions or codes out of range)")
    flat = np.zeros(numel, dtype=np.float32)
    flat[positions] = codebook[codes]
    return torch.from_numpy(flat.reshape(shape))
