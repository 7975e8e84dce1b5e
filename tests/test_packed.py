"""The packed low-bit file format: exact round-trip, and clear refusals of damaged or newer files."""

import struct
import zlib

import pytest
import torch

from compression.core.errors import InputError
from compression.quantization.packed import MAGIC, load_packed, read_packed, save_packed
from compression.quantization.ptq import QTensor, QuantConfig, binarize, quantize_tensor, ternarize


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
            expected = expected.float()  # non-quantized float tensors are stored as fp32
        assert decoded[name].dtype == expected.dtype, name
        assert torch.equal(decoded[name], expected), name
    codes = read_packed(save_packed(state))["a.weight"].codes
    assert torch.equal(codes, state["a.weight"].codes)


def test_codes_take_bits_not_bytes():
    w = torch.randn(100, 100)
    four = len(save_packed({"w": quantize_tensor(w, 4, QuantConfig(bits=4, granularity="per-tensor"))}))
    eight = len(save_packed({"w": quantize_tensor(w, 8, QuantConfig(bits=8, granularity="per-tensor"))}))
    assert 5000 <= four < 5200 and 10_000 <= eight < 10_200


def test_corrupt_truncated_and_foreign_files_are_refused():
    data = save_packed(_state())
    with pytest.raises(InputError, match="truncated"):
        load_packed(data[:5])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_packed(data[:-10])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    with pytest.raises(InputError, match="corrupt"):
        load_packed(bytes(flipped))
    with pytest.raises(InputError, match="magic"):
        load_packed(b"PK\x03\x04" + data[4:])


def test_newer_version_is_refused():
    data = bytearray(save_packed(_state()))
    struct.pack_into("<H", data, 4, 99)
    body = bytes(data[:-4])
    with pytest.raises(InputError, match="version 99 is newer"):
        load_packed(body + struct.pack("<I", zlib.crc32(body)))


def test_a_lying_header_is_refused_not_crashed():
    header = zlib.compress(b'{"t":[{"n":"w","k":"affine","s":[1000],"b":4,"lo":0,"hi":15,"ax":null,"c":1,"z":false}]}')
    body = struct.pack("<4sHI", MAGIC, 1, len(header)) + header + b"\x00" * 10
    with pytest.raises(InputError, match="truncated"):
        load_packed(body + struct.pack("<I", zlib.crc32(body)))
