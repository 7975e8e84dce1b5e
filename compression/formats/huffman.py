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


def check_lengths(lengths: object, alphabet: int, where: str = "compressed stream") -> list[int]:
    """Code lengths read from a file: `alphabet` integers in 0..MAX_CODE_BITS forming a prefix code (Kraft)."""
    if not isinstance(lengths, list) or len(lengths) != alphabet:
        raise InputError(f"{where}: expected {alphabet} Huffman code lengths")
    if any(isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_CODE_BITS for n in lengths):
        raise InputError(f"{where}: Huffman code lengths must be integers from 0 to {MAX_CODE_BITS}")
    # Kraft: sum(2**-n) <= 1, else no prefix code has these lengths; in units of 2**-MAX_CODE_BITS.
    if sum(1 << (MAX_CODE_BITS - n) for n in lengths if n) > 1 << MAX_CODE_BITS:
        raise InputError(f"{where}: Huffman code lengths do not form a prefix code (Kraft sum above 1)")
    return lengths


def max_symbols(lengths: list[int], size_bytes: int) -> int:
    """The most symbols `size_bytes` of stream can hold under `lengths` (each takes the shortest code at least)."""
    used = [n for n in lengths if n]
    return size_bytes * 8 // min(used) if used else 0


_CHUNK_BITS = 1 << 18  # decode window per pass: bounds memory to a few MB whatever the stream's length


def decode(data: bytes, lengths: list[int], count: int) -> np.ndarray:
    """The `count` symbols that `encode` wrote into `data`; lengths and count are checked before allocating."""
    check_lengths(lengths, len(lengths))
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise InputError(f"compressed stream: invalid symbol count {count!r}")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    table = canonical_codes(lengths)
    if not table:
        raise InputError("compressed stream has an empty Huffman table")
    if count > max_symbols(lengths, len(data)):
        raise InputError("compressed stream is truncated (fewer bits than symbols)")
    width = max(n for _, n in table.values())
    # Lookup table over every `width`-bit window: which symbol starts it and how many bits it uses.
    symbol_at = np.full(1 << width, -1, dtype=np.int64)
    length_at = np.zeros(1 << width, dtype=np.int64)
    for s, (c, n) in table.items():
        start = c << (width - n)
        symbol_at[start:start + (1 << (width - n))] = s
        length_at[start:start + (1 << (width - n))] = n
    symbol_list, length_list = symbol_at.tolist(), length_at.tolist()
    limit = len(data) * 8
    out, i, p = np.empty(count, dtype=np.int64), 0, 0
    while i < count:
        if p >= limit:
            raise InputError("compressed stream is truncated")
        # windows[j] = the `width` bits starting at bit p + j, as an integer (reading zeros past the end).
        first = p // 8
        stop = min(p + _CHUNK_BITS, limit)
        raw = np.frombuffer(data[first:(stop + width + 7) // 8], dtype=np.uint8)
        bits = np.concatenate([np.unpackbits(raw)[p - 8 * first:], np.zeros(width, dtype=np.uint8)])
        n = stop - p
        windows = np.zeros(n, dtype=np.int64)
        for b in range(width):
            windows = (windows << 1) | bits[b:b + n]
        windows_list, chunk, base = windows.tolist(), [], p
        while i < count and p < stop:
            w = windows_list[p - base]
            s = symbol_list[w]
            if s < 0:
                raise InputError("compressed stream is corrupt (invalid Huffman code)")
            chunk.append(s)
            p += length_list[w]
            i += 1
        out[i - len(chunk):i] = chunk
    return out
