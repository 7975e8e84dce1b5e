"""Bit-packing codes of every width from 1 to 16 bits."""

import numpy as np
import pytest

from compression.core.errors import InputError
from compression.formats.bitpack import pack, packed_size, unpack


@pytest.mark.parametrize("bits", range(1, 17))
def test_round_trip_every_width(bits):
    rng = np.random.default_rng(bits)
    for count in (0, 1, 7, 8, 9, 1001):
        codes = rng.integers(0, 2 ** bits, size=count)
        codes[:2] = [0, 2 ** bits - 1][:count]  # both extremes
        data = pack(codes, bits)
        assert len(data) == packed_size(count, bits) == (count * bits + 7) // 8
        assert np.array_equal(unpack(data, bits, count), codes)


def test_known_layout_is_msb_first():
    assert pack(np.array([1, 0, 1, 1, 0, 0, 0, 1, 1]), 1) == bytes([0b10110001, 0b10000000])
    assert pack(np.array([0xA, 0x5, 0xF]), 4) == bytes([0xA5, 0xF0])
    assert pack(np.array([5, 3]), 3) == bytes([0b10101100])


def test_out_of_range_codes_and_widths_are_refused():
    with pytest.raises(InputError, match=r"\[0, 7\]"):
        pack(np.array([8]), 3)
    with pytest.raises(InputError, match=r"\[0, 7\]"):
        pack(np.array([-1]), 3)
    for bad in (0, 17):
        with pytest.raises(InputError, match="bit width"):
            pack(np.array([0]), bad)
    with pytest.raises(InputError, match="integers"):
        pack(np.array([0.5]), 4)


def test_truncated_data_is_refused():
    data = pack(np.arange(10), 4)
    with pytest.raises(InputError, match="truncated"):
        unpack(data[:-1], 4, 10)
