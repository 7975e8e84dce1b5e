"""Canonical Huffman coding of small integer alphabets (codes and relative indices of compressed files)."""

from __future__ import annotations

import heapq

import numpy as np

from compression.core.errors import InputError

MAX_CODE_BITS = 16  # keeps the decoding table at 2**16 entries


def code_lengths(symbols: np.ndarray, alphabet: int) -> list[int]:
    """Huffman code length per symbol of range(alphabet) (0 for symbols that never occur), at most 16 bits."""
    freqs = np.bincount(np.asarray(symbols, dtype=np.int64).reshape(-1), minlength=alphabet)[:alphabet]
    freqs = freqs.astype(np.int64)
    while True:
        lengths = _lengths(freqs)
        if max(lengths) <= MAX_CODE_BITS:
            return lengths
        # Flatten a very skewed distribution until the longest code fits; costs a fraction of a bit at most.
        freqs = np.where(freqs > 0, (freqs + 1) // 2, 0)


def _lengths(freqs: np.ndarray) -> list[int]:
    used = [int(s) for s in np.flatnonzero(freqs)]
    lengths = [0] * len(freqs)
    if len(used) == 1:
        lengths[used[0]] = 1
        return lengths
    heap = [(int(freqs[s]), i, [s]) for i, s in enumerate(used)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        fa, _, a = heapq.heappop(heap)
        fb, _, b = heapq.heappop(heap)
        for s in a + b:
            lengths[s] += 1
        heapq.heappush(heap, (fa + fb, tie, a + b))
        tie += 1
    return lengths


def canonical_codes(lengths: list[int]) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length) in canonical order: shorter codes first, then by symbol."""
    order = sorted((n, s) for s, n in enumerate(lengths) if n > 0)
    codes, code, previous = {}, 0, 0
    for n, s in order:
        code <<= n - previous
        codes[s] = (code, n)
        code += 1
        previous = n
    return codes


def encode(symbols: np.ndarray, lengths: list[int]) -> bytes:
    """The bit stream of `symbols` under the canonical code of `lengths`, zero-padded to whole bytes."""
    flat = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if flat.size == 0:
        return b""
    table = canonical_codes(lengths)
    code_of = np.zeros(len(lengths), dtype=np.uint32)
    len_of = np.zeros(len(lengths), dtype=np.int64)
    for s, (c, n) in table.items():
        code_of[s], len_of[s] = c, n
    if (len_of[flat] == 0).any():
        raise InputError("a symbol has no Huffman code: lengths were computed from other data")
    # Each code as 32 bits (big-endian), then keep only its last `length` bits.
    bits = np.unpackbits(code_of[flat].astype(">u4").view(np.uint8)).reshape(-1, 32)
    keep = np.arange(32)[None, :] >= (32 - len_of[flat])[:, None]
    return np.packbits(bits[keep]).tobytes()


def decode(data: bytes, lengths: list[int], count: int) -> np.ndarray:
    """The `count` symbols that `encode` wrote into `data`."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    table = canonical_codes(lengths)
    if not table:
        raise InputError("compressed stream has an empty Huffman table")
    width = max(n for _, n in table.values())
    # Lookup table over every `width`-bit window: which symbol starts it and how many bits it uses.
    symbol_at = np.full(1 << width, -1, dtype=np.int64)
    length_at = np.zeros(1 << width, dtype=np.int64)
    for s, (c, n) in table.items():
        start = c << (width - n)
        symbol_at[start:start + (1 << (width - n))] = s
        length_at[start:start + (1 << (width - n))] = n
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    bits = np.concatenate([bits, np.zeros(width, dtype=np.uint8)])  # lets the last window read past the end
    windows = np.zeros(len(bits) - width, dtype=np.int64)
    for i in range(width):  # windows[p] = the `width` bits starting at p, as an integer
        windows = (windows << 1) | bits[i:i + len(windows)]
    windows_list, symbol_list, length_list = windows.tolist(), symbol_at.tolist(), length_at.tolist()
    limit = len(bits) - width
    out, p = [0] * count, 0
    for i in range(count):
        if p >= limit:
            raise InputError("compressed stream is truncated")
        w = windows_list[p]
        s = symbol_list[w]
        if s < 0:
            raise InputError("compressed stream is corrupt (invalid Huffman code)")
        out[i] = s
        p += length_list[w]
    return np.asarray(out, dtype=np.int64)
