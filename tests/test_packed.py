"""Quantized tensors in the one packed file: every kind round-trips exactly, codes take bits, damage is refused.

The codec's own checks (sizes, CRC, element budget) are tested in test_formats_packed.py.
"""

import pytest
import torch

from compression.core.errors import InputError
from compression.formats.packed import AffineCodes, decode
from compression.quantization import QTensor, QuantConfig, load_packed, save_packed
from compression.quantization.tensors import binarize, quantize_tensor, ternarize


def _state():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 5, generator=g)
    conv = torch.randn(4, 2, 3, 3, generator=g)
    return {
        "a.weight": quantize_tensor(w, 3, QuantConfig(bits=3)),
        "a.bias": torch.randn(6, generator=g),
        "b.weight": quantize_tensor(conv, 5, QuantConfig(bits=5, scheme="asymmetric", granularity="per-tensor")),
        "c.weight": binarize(w, 0),
        "d.weight": ternarize(conv, 0),
        "e.weight": quantize_tensor(conv, 16, QuantConfig(bits=16, scheme="asymmetric")),
        "g.weight": quantize_tensor(conv, 4, QuantConfig(bits=4, granularity="per-group", group_size=4)),
        "norm.steps": torch.tensor(7, dtype=torch.int64),
        "half": torch.ones(3, dtype=torch.float16),
    }


def test_round_trip_is_exact_for_every_kind():
    state = _state()
    decoded = load_packed(save_packed(state))
    assert list(decoded) == list(state)
    for name, value in state.items():
        expected = value.dequantize() if isinstance(value, QTensor) else value
        if expected.is_floating_point():
            expected = expected.float()
        assert decoded[name].dtype == expected.dtype, name
        assert torch.equal(decoded[name], expected), name


def test_per_group_codes_and_grid_are_stored_as_they_are():
    state = _state()
    entry = decode(save_packed(state))["g.weight"]
    assert isinstance(entry, AffineCodes) and entry.group_size == 4
    assert torch.equal(entry.codes.int(), state["g.weight"].codes)
    assert entry.scale.shape == (4, 5)  # 18 inputs per row in groups of 4: the last group holds 2


def test_codes_take_bits_not_bytes():
    w = torch.randn(100, 100)
    four = len(save_packed({"w": quantize_tensor(w, 4, QuantConfig(bits=4, granularity="per-tensor"))}))
    eight = len(save_packed({"w": quantize_tensor(w, 8, QuantConfig(bits=8, granularity="per-tensor"))}))
    assert 5000 <= four < 5700 and 10_000 <= eight < 10_700
    assert abs((eight - four) - 5000) <= 16  # 4 more bits for each of the 10,000 codes (and a few header digits)


def test_fp16_scales_are_stored_in_two_bytes_and_decode_exactly():
    w = torch.randn(64, 256)
    config = QuantConfig(bits=4, granularity="per-group", group_size=32, fp16_scales=True)
    qt = quantize_tensor(w, 4, config)
    half, full = save_packed({"w": qt}, fp16_scales=True), save_packed({"w": qt})
    assert len(full) - len(half) == 2 * 64 * 8
    assert torch.equal(load_packed(half)["w"], qt.dequantize())


def test_damaged_and_foreign_files_are_refused():
    data = save_packed(_state())
    with pytest.raises(InputError):
        load_packed(data[:5])
    with pytest.raises(InputError, match="corrupt or truncated"):
        flipped = bytearray(data)
        flipped[-3] ^= 0xFF
        load_packed(bytes(flipped))
    with pytest.raises(InputError):
        load_packed(b"PK\x03\x04" + data[4:])


@pytest.mark.parametrize("bits,scheme,dtype", [(4, "symmetric", torch.int8), (4, "asymmetric", torch.int8),
                                               (8, "symmetric", torch.int8), (8, "asymmetric", torch.int16),
                                               (16, "asymmetric", torch.int32)])
def test_codes_are_held_in_the_smallest_integer_type_and_round_trip_at_the_range_ends(bits, scheme, dtype):
    """A model's codes wait in memory until it is packed: int32 codes of 4-bit weights weighed as much as the
    float32 weights. The ends of the range (−128 and 127, or 0 and 255) must survive packing in that type."""
    w = torch.linspace(-3.0, 1.0, 512).reshape(8, 64)
    qtensor = quantize_tensor(w, bits, QuantConfig(bits=bits, scheme=scheme, granularity="per-channel"))
    assert qtensor.codes.dtype == dtype
    low, high = qtensor.qparams.quant_min, qtensor.qparams.quant_max
    assert int(qtensor.codes.min()) in (low, low + 1) and int(qtensor.codes.max()) == high or bits == 16
    decoded = load_packed(save_packed({"w": qtensor}))["w"]
    assert torch.equal(decoded, qtensor.dequantize())
