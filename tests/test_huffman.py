import numpy as np
import pytest

from compression.core.errors import InputError
from compression.formats.huffman import canonical_codes, code_lengths, decode, encode


@pytest.mark.parametrize("alphabet, n, skew", [(2, 1000, 0.5), (16, 5000, 2.0), (32, 20000, 1.2), (256, 3000, 0.0)])
def test_round_trip_and_near_entropy(alphabet, n, skew):
    rng = np.random.default_rng(0)
    p = np.exp(-skew * np.arange(alphabet))
    symbols = rng.choice(alphabet, size=n, p=p / p.sum())
    lengths = code_lengths(symbols, alphabet)
    data = encode(symbols, lengths)
    assert np.array_equal(decode(data, lengths, n), symbols)
    counts = np.bincount(symbols, minlength=alphabet)
    q = counts[counts > 0] / n
    entropy_bits = -(q * np.log2(q)).sum() * n
    assert len(data) * 8 <= entropy_bits + n + 8  # Huffman is within one bit per symbol of the entropy


def test_prefix_free_canonical_code():
    codes = canonical_codes(code_lengths(np.array([0, 0, 0, 0, 1, 1, 2, 3]), 4))
    words = [format(c, f"0{n}b") for c, n in codes.values()]
    assert not any(a != b and b.startswith(a) for a in words for b in words)


def test_single_symbol_and_empty_streams():
    symbols = np.zeros(50, dtype=np.int64)
    lengths = code_lengths(symbols, 8)
    assert np.array_equal(decode(encode(symbols, lengths), lengths, 50), symbols)
    assert encode(np.zeros(0), lengths) == b"" and decode(b"", lengths, 0).size == 0


def test_very_skewed_frequencies_stay_within_16_bits():
    fib = [1, 1]
    while len(fib) < 22:
        fib.append(fib[-1] + fib[-2])
    symbols = np.concatenate([np.full(f, i) for i, f in enumerate(fib)])  # plain Huffman would need 21-bit codes
    lengths = code_lengths(symbols, len(fib))
    assert max(lengths) <= 16
    assert np.array_equal(decode(encode(symbols, lengths), lengths, len(symbols)), symbols)


def test_truncated_stream_is_refused():
    symbols = np.arange(100) % 7
    lengths = code_lengths(symbols, 7)
    data = encode(symbols, lengths)
    with pytest.raises(InputError):
        decode(data[:5], lengths, 100)
