"""GGUF, llama.cpp's model file, read bounded: its header, metadata and tensor table are parsed here, every count and
length checked against the file and the limits below, before the `gguf` package or transformers opens the file.

Layout (little-endian, versions 2 and 3): b"GGUF", u32 version, u64 tensor count, u64 metadata count; each metadata
entry is a string key, a u32 value type and the value (a string or an array carries a u64 length first); each tensor
info is a string name, a u32 dimension count, u64 dimensions (fastest-moving first), a u32 ggml type and a u64 offset
into the data section, which starts at the next multiple of `general.alignment` (default 32) after the table.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from gguf.constants import GGML_QUANT_SIZES  # only the package's table of block sizes: it never sees the file here

from compression.core.errors import InputError, LimitExceeded
from compression.formats import limits

MAGIC = b"GGUF"
VERSIONS = (2, 3)  # v1 counted in 32 bits and is not written any more
MAX_KEYS = 4096  # metadata entries; real files hold 20 to 60
MAX_KEY_BYTES = 1024
MAX_STRING_BYTES = 1 << 20  # one metadata string (a chat template is a few kB)
MAX_ARRAY = 1 << 20  # items of one metadata array (a vocabulary or its merges: 32k to 262k)
MAX_TENSORS = 65_536  # a 70B Llama holds 723
MAX_NAME_BYTES = 256  # llama.cpp's own limit is 64
MAX_DIMS = 4  # ggml tensors have at most 4 dimensions
MAX_ALIGNMENT = 1 << 16
DEFAULT_ALIGNMENT = 32
STRING, ARRAY = 8, 9
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_TYPES = {int(kind): (kind.name, *sizes) for kind, sizes in GGML_QUANT_SIZES.items()}  # id -> (name, block, bytes)


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array, kept as its item type and length (its items were read and checked, not kept)."""

    item_type: int
    length: int


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor's place in the file."""

    name: str
    dims: tuple[int, ...]  # ggml order: the fastest-moving dimension first ((in, out) for a weight matrix)
    type_name: str  # F32, F16, Q4_1, ...
    start: int  # byte offset in the file
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.dims)


@dataclass(frozen=True)
class GGUFHeader:
    """Everything a GGUF file says about itself, checked: no tensor data is read."""

    version: int
    metadata: dict[str, object]  # scalars and strings as values, arrays as GGUFArray
    tensors: dict[str, GGUFTensor]
    alignment: int
    data_start: int


class _Cursor:
    """Reads forward through the mapped file, refusing any read past its end."""

    def __init__(self, view: mmap.mmap, where: str):
        self.view, self.where, self.pos = view, where, 0

    def need(self, count: int, what: str) -> None:
        if count > len(self.view) - self.pos:
            raise InputError(f"{self.where} is truncated: {what} runs past the end of the file")

    def unpack(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize(fmt)
        self.need(size, what)
        values = struct.unpack_from(fmt, self.view, self.pos)
        self.pos += size
        return values

    def string(self, limit: int, what: str) -> str:
        (length,) = self.unpack("<Q", what)
        if length > limit:
            raise LimitExceeded(f"{self.where}: {what} is {length:,} bytes long; the limit is {limit:,}")
        self.need(length, what)
        raw = self.view[self.pos:self.pos + length]
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{self.where}: {what} is not UTF-8 text") from None


def read_header(path: Path, max_elements: int, env: str, capped: bool = True) -> GGUFHeader:
    """The checked header of a .gguf file; `max_elements` bounds its tensors' elements (`env` names that limit).

    Refuses (InputError, one line): files over the upload cap (unless `capped` is False: an installed model), other
    magic or versions, more than MAX_KEYS metadata entries or MAX_TENSORS tensors, strings and arrays over their
    limits or past the end, nested arrays, unknown value or tensor types, duplicate keys or names, dimensions that
    are 0 or more than MAX_DIMS, a tensor's data outside the file or overlapping another's, elements over the budget.
    """
    path = Path(path)
    where = path.name
    size = limits.check_regular_file(path, where, capped=capped)
    if size < 24:
        raise InputError(f"{where} is not a GGUF file (too short for a header)")
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
        cursor = _Cursor(view, where)
        magic, version, tensor_count, key_count = cursor.unpack("<4sIQQ", "the header")
        if magic != MAGIC:
            raise InputError(f"{where} is not a GGUF file (it does not start with GGUF)")
        if version not in VERSIONS:
            raise InputError(f"{where}: GGUF version {version} is not read (versions 2 and 3, little-endian)")
        if key_count > MAX_KEYS:
            raise LimitExceeded(f"{where} declares {key_count:,} metadata keys; the limit is {MAX_KEYS:,}")
        if tensor_count > MAX_TENSORS:
            raise LimitExceeded(f"{where} declares {tensor_count:,} tensors; the limit is {MAX_TENSORS:,}")
        metadata = _metadata(cursor, key_count)
        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if (isinstance(alignment, bool) or not isinstance(alignment, int) or not 1 <= alignment <= MAX_ALIGNMENT
                or alignment & (alignment - 1)):
            raise InputError(f"{where}: general.alignment must be a power of two up to {MAX_ALIGNMENT:,}, "
                             f"got {alignment!r}")
        table = _tensor_table(cursor, tensor_count, alignment, limits.ElementBudget(where, max_elements, env))
        data_start = -(-cursor.pos // alignment) * alignment
    tensors = {}
    end, last = data_start, None
    for name, dims, type_name, offset, nbytes in sorted(table, key=lambda entry: entry[3]):
        start = data_start + offset
        if start + nbytes > size:
            raise InputError(f"{where} is truncated: tensor {name!r}'s data runs past the end of the file")
        if start < end:
            raise InputError(f"{where}: tensors {last!r} and {name!r} overlap in the file")
        tensors[name] = GGUFTensor(name, dims, type_name, start, nbytes)
        end, last = start + nbytes, name
    return GGUFHeader(version, metadata, tensors, alignment, data_start)


def _metadata(cursor: _Cursor, key_count: int) -> dict[str, object]:
    metadata: dict[str, object] = {}
    for _ in range(key_count):
        key = cursor.string(MAX_KEY_BYTES, "a metadata key")
        if key in metadata:
            raise InputError(f"{cursor.where}: metadata key {key[:80]!r} appears twice")
        (value_type,) = cursor.unpack("<I", f"the type of {key[:80]!r}")
        metadata[key] = _value(cursor, value_type, key[:80])
    return metadata


def _value(cursor: _Cursor, value_type: int, key: str) -> object:
    if value_type in _SCALARS:
        return cursor.unpack(_SCALARS[value_type], f"metadata {key!r}")[0]
    if value_type == STRING:
        return cursor.string(MAX_STRING_BYTES, f"metadata {key!r}")
    if value_type != ARRAY:
        raise InputError(f"{cursor.where}: metadata {key!r} has unknown value type {value_type}")
    item_type, length = cursor.unpack("<IQ", f"metadata array {key!r}")
    if length > MAX_ARRAY:
        raise LimitExceeded(f"{cursor.where}: metadata array {key!r} holds {length:,} items; the limit is "
                            f"{MAX_ARRAY:,}")
    if item_type in _SCALARS:
        width = struct.calcsize(_SCALARS[item_type])
        cursor.need(length * width, f"metadata array {key!r}")
        cursor.pos += length * width
    elif item_type == STRING:
        for _ in range(length):  # each item is read and decoded, then dropped: only the count is kept
            cursor.string(MAX_STRING_BYTES, f"an item of metadata array {key!r}")
    elif item_type == ARRAY:
        raise InputError(f"{cursor.where}: metadata {key!r} is an array of arrays, which is not read")
    else:
        raise InputError(f"{cursor.where}: metadata array {key!r} has unknown item type {item_type}")
    return GGUFArray(item_type, length)


def _tensor_table(cursor: _Cursor, count: int, alignment: int, budget: limits.ElementBudget) -> list[tuple]:
    """[(name, dims, type name, offset in the data section, bytes)], each entry checked on its own."""
    where, table, names = cursor.where, [], set()
    for _ in range(count):
        name = cursor.string(MAX_NAME_BYTES, "a tensor name")
        if name in names:
            raise InputError(f"{where}: tensor {name!r} appears twice")
        names.add(name)
        (ndim,) = cursor.unpack("<I", f"tensor {name!r}")
        if not 1 <= ndim <= MAX_DIMS:
            raise InputError(f"{where}: tensor {name!r} has {ndim} dimensions; 1 to {MAX_DIMS} are read")
        dims = cursor.unpack(f"<{ndim}Q", f"tensor {name!r}")
        kind, offset = cursor.unpack("<IQ", f"tensor {name!r}")
        if min(dims) < 1:
            raise InputError(f"{where}: tensor {name!r} has a dimension of 0 ({list(dims)})")
        if kind not in _TYPES:
            raise InputError(f"{where}: tensor {name!r} has unknown ggml type {kind}")
        type_name, block, block_bytes = _TYPES[kind]
        if dims[0] % block:
            raise InputError(f"{where}: tensor {name!r} ({type_name}) has a first dimension of {dims[0]}, not a "
                             f"multiple of its block of {block}")
        numel = math.prod(dims)
        budget.add(numel, f"tensor {name!r} has dimensions {list(dims)}")
        if offset % alignment:
            raise InputError(f"{where}: tensor {name!r} starts at offset {offset}, not a multiple of the alignment "
                             f"{alignment}")
        table.append((name, dims, type_name, offset, numel // block * block_bytes))
    return table
