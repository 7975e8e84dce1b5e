"""The one packed format (a bounded safetensors file): round trips of every kind, and a refusal per decoder check."""

import json
import math
import struct
import zlib

import hostile
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from compression.core.errors import InputError, LimitExceeded
from compression.formats import limits
from compression.formats.bitpack import pack
from compression.formats.packed import (FORMAT, AffineCodes, BinaryCodes, NMValues, SparseValues, decode,
                                        decode_state, encode, encoded_size, read_metadata)


RAW_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.uint16, torch.int16, torch.uint32, torch.int32, torch.uint64,
              torch.int64, torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.float8_e4m3fn,
              torch.float8_e5m2)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _affine(shape, bits=4, low=0, axis=None, group_size=None, zero=True, scale_dtype=torch.float32, seed=0):
    """Random codes on a grid of `bits` bits starting at `low`, with the scale layout the arguments ask for."""
    g = _gen(seed)
    high = low + 2 ** bits - 1
    codes = torch.randint(low, high + 1, shape, generator=g)
    if group_size is not None:
        cols = math.prod(shape[1:])
        layout = (shape[0], -(-cols // group_size))
    else:
        layout = (shape[axis],) if axis is not None else ()
    scale = (torch.rand(layout, generator=g) + 0.05).to(scale_dtype)
    zero_point = (torch.randint(low, high + 1, layout, generator=g) if zero
                  else torch.zeros(layout, dtype=torch.int64)).to(torch.int32)
    return AffineCodes(codes, bits, low, high, scale, zero_point, axis, group_size)


def _mix() -> dict:
    g = _gen(1)
    w = torch.randn(6, 8, generator=g)
    return {
        "fc1.weight": _affine((6, 10), bits=3, low=-4, group_size=4),
        "fc1.bias": torch.randn(6, generator=g),
        "conv.weight": _affine((8, 3, 3, 3), bits=5, axis=1, scale_dtype=torch.float16),
        "sign.weight": BinaryCodes(torch.randint(0, 2, (4, 5), generator=g), torch.rand(4, generator=g), axis=0),
        "sparse.weight": SparseValues.from_dense(w * (w.abs() > 0.8)),
        "nm.weight": NMValues.from_dense(w, 2, 4, torch.float32),
        "steps": torch.tensor(7, dtype=torch.int64),
        "half": torch.ones(3, dtype=torch.float16),
    }


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, AffineCodes):
        return (torch.equal(a.codes, b.codes.to(a.codes.dtype)) and a.scale.dtype == b.scale.dtype
                and torch.equal(a.scale, b.scale) and torch.equal(a.zero_point, b.zero_point.to(a.zero_point.dtype))
                and (a.bits, a.quant_min, a.quant_max, a.axis, a.group_size)
                == (b.bits, b.quant_min, b.quant_max, b.axis, b.group_size))
    if isinstance(a, BinaryCodes):
        return torch.equal(a.codes, b.codes.to(a.codes.dtype)) and torch.equal(a.scale, b.scale) and a.axis == b.axis
    if isinstance(a, SparseValues):
        return a.shape == b.shape and torch.equal(a.mask, b.mask) and _same(a.values, b.values)
    return ((a.shape, a.n, a.m) == (b.shape, b.n, b.m) and _same(a.values, b.values)
            and torch.equal(a.index, b.index.to(a.index.dtype)))


# Round trips


def test_every_kind_round_trips_in_order():
    state = _mix()
    decoded = decode(encode(state))
    assert list(decoded) == list(state)
    for name, value in state.items():
        assert type(decoded[name]) is type(value), name
        assert _same(value, decoded[name]), name


@pytest.mark.parametrize("bits", range(1, 17))
def test_every_bit_width_round_trips(bits):
    value = _affine((7, 5), bits=bits, low=-(2 ** (bits - 1)))
    assert _same(value, decode(encode({"w": value}))["w"])


def test_a_per_group_layout_with_a_shorter_last_group():
    value = _affine((5, 2, 5), group_size=4)  # 10 columns: groups of 4, 4 and 2
    assert value.scale.shape == (5, 3)
    decoded = decode(encode({"w": value}))["w"]
    assert _same(value, decoded)
    dense = decoded.dequantize().reshape(5, 10)
    q, z, s = value.codes.reshape(5, 10), value.zero_point, value.scale
    assert torch.equal(dense[:, 9], (q[:, 9] - z[:, 2]).float() * s[:, 2])  # the short group's own scale
    assert torch.equal(dense[:, 4], (q[:, 4] - z[:, 1]).float() * s[:, 1])


def test_per_channel_along_axis_1_of_a_conv_weight():
    value = _affine((8, 3, 3, 3), axis=1)
    decoded = decode(encode({"conv": value}))["conv"]
    assert _same(value, decoded)
    dense = decoded.dequantize()
    assert torch.equal(dense[:, 2], (value.codes[:, 2] - value.zero_point[2]).float() * value.scale[2])


def test_float16_scales_stay_float16_in_the_file(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(encode({"w": _affine((4, 6), axis=0, scale_dtype=torch.float16)}))
    with safe_open(str(path), "pt") as f:
        assert f.get_tensor("w.scale").dtype == torch.float16
    assert decode(path.read_bytes())["w"].scale.dtype == torch.float16


def test_zero_points_are_stored_only_when_some_is_non_zero():
    zero = encode({"w": _affine((4, 6), axis=0, zero=False)})
    assert set(st_load(zero)) == {"w.codes", "w.scale"}
    assert not decode(zero)["w"].zero_point.any()
    some = _affine((4, 6), low=-8, axis=0, zero=False)
    some = AffineCodes(some.codes, 4, -8, 7, some.scale, torch.tensor([0, 0, -3, 5], dtype=torch.int32), 0)
    data = encode({"w": some})
    assert set(st_load(data)) == {"w.codes", "w.scale", "w.zero"}
    assert _same(some, decode(data)["w"])


def test_empty_tensors_round_trip():
    state = {"raw": torch.zeros(0, 3), "codes": _affine((0, 4), group_size=2), "per-channel": _affine((3, 0), axis=0),
             "sparse": SparseValues.from_dense(torch.zeros(0, 5)), "nm": NMValues.from_dense(torch.zeros(0, 8), 1, 4)}
    decoded = decode(encode(state))
    for name, value in state.items():
        assert _same(value, decoded[name]), name


def test_decode_state_is_what_each_kind_stands_for():
    state = _mix()
    dense = decode_state(encode(state))
    for name, value in state.items():
        if isinstance(value, (AffineCodes, BinaryCodes)):
            expected = value.dequantize()
        elif isinstance(value, (SparseValues, NMValues)):
            expected = value.dense()
        else:
            expected = value.float() if value.is_floating_point() else value
        assert dense[name].dtype == expected.dtype and torch.equal(dense[name], expected), name
    assert dense["steps"].dtype == torch.int64 and dense["half"].dtype == torch.float32


def test_binary_sparse_and_nm_mean_what_they_say():
    binary = BinaryCodes(torch.tensor([[1, 0], [0, 1]]), torch.tensor([2.0, 3.0]), axis=0)
    assert torch.equal(binary.dequantize(), torch.tensor([[2.0, -2.0], [-3.0, 3.0]]))
    w = torch.tensor([[0.0, 1.5, 0.0, -2.0]])
    assert torch.equal(SparseValues.from_dense(w).dense(), w)
    ties = NMValues.from_dense(torch.tensor([[1.0, -1.0, 1.0, 0.5]]), 2, 4, torch.float32)
    assert ties.index.tolist() == [0, 1]  # equal magnitudes: the lower positions are kept
    assert torch.equal(ties.dense(), torch.tensor([[1.0, -1.0, 0.0, 0.0]]))


def test_raw_tensors_keep_their_dtype():
    state = {str(dtype): (torch.arange(6).reshape(3, 2) % 3).to(dtype) for dtype in RAW_DTYPES}
    decoded = decode(encode(state))
    for name, value in state.items():
        assert decoded[name].dtype == value.dtype and torch.equal(decoded[name].view(torch.uint8),
                                                                  value.view(torch.uint8)), name


def test_tensors_that_share_memory_are_stored_apart():
    w = torch.randn(3, 4, generator=_gen())  # a tied embedding: one tensor under two names
    decoded = decode(encode({"embed.weight": w, "lm_head.weight": w, "row": w[1]}))
    assert torch.equal(decoded["embed.weight"], w) and torch.equal(decoded["lm_head.weight"], w)
    assert torch.equal(decoded["row"], w[1])


def test_the_file_is_a_safetensors_file_with_its_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    data = encode(_mix(), {"arch": "mlp"})
    path.write_bytes(data)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        assert torch.equal(f.get_tensor("fc1.bias"), _mix()["fc1.bias"])
    assert meta["format"] == FORMAT and meta["version"] == "1" and meta["arch"] == "mlp"
    assert [entry["name"] for entry in json.loads(meta["entries"])] == list(_mix())
    assert meta["crc32"] == f"{zlib.crc32(data[8 + int.from_bytes(data[:8], 'little'):]):08x}"
    assert read_metadata(data) == {"arch": "mlp"}


@pytest.mark.parametrize("case", ["empty", "mix", "raw dtypes", "odd names", "large shapes"])
def test_encoded_size_is_the_length_of_the_file(case):
    metadata = None
    if case == "empty":
        state = {}
    elif case == "mix":
        state, metadata = _mix(), {"arch": "mlp", "note": 'quotes " and \\ and\nnewlines, é ✓'}
    elif case == "raw dtypes":
        state = {str(dtype): torch.zeros(3, 2, dtype=dtype) for dtype in RAW_DTYPES}
    elif case == "odd names":
        state = {'q"u\\o\tte': torch.ones(2), "é/✓ " * 40: _affine((3, 4), bits=2, axis=1),
                 "a" * 1000: BinaryCodes(torch.ones(3, dtype=torch.int64), torch.tensor(0.5))}
    else:
        state = {f"layer{i}": _affine((64 * i + 3, 97), bits=i % 8 + 1, group_size=13, seed=i) for i in range(1, 12)}
    assert encoded_size(state, metadata) == len(encode(state, metadata))


def test_per_group_dequantize_matches_pytorch_fake_quantize():
    g = _gen(3)
    rows, cols, group = 6, 12, 4
    x = torch.randn(rows, cols, generator=g)
    scale = torch.rand(rows, cols // group, generator=g) + 0.05
    zero = torch.randint(0, 16, (rows, cols // group), generator=g, dtype=torch.int32)
    view = x.reshape(rows * cols // group, group)  # one row per group
    # Codes as PyTorch rounds them: x * (1 / scale), to nearest even, plus the zero point, clamped.
    inv = (1.0 / scale.reshape(-1, 1))
    codes = (torch.round(view * inv) + zero.reshape(-1, 1)).clamp(0, 15).to(torch.int64).reshape(rows, cols)
    expected = torch.fake_quantize_per_channel_affine(view, scale.reshape(-1), zero.reshape(-1), 0, 0, 15)
    value = AffineCodes(codes, 4, 0, 15, scale, zero, group_size=group)
    assert torch.equal(value.dequantize(), expected.reshape(rows, cols))
    assert torch.equal(decode_state(encode({"w": value}))["w"], value.dequantize())


# Encoder refusals


@pytest.mark.parametrize("name", ["", "__metadata__", "x" * 1001])
def test_encode_refuses_bad_names(name):
    with pytest.raises(InputError, match="tensor name must be"):
        encode({name: torch.ones(1)})


def test_encode_refuses_stored_names_that_collide():
    with pytest.raises(InputError, match="which another tensor uses"):
        encode({"w": _affine((2, 3)), "w.codes": torch.ones(1)})


def test_encode_refuses_metadata_keys_of_the_format():
    with pytest.raises(InputError, match="'entries' is reserved"):
        encode({"w": torch.ones(1)}, {"entries": "[]"})


def test_codes_out_of_their_range_are_refused():
    with pytest.raises(InputError, match="codes must lie in"):
        AffineCodes(torch.tensor([0, 9]), 3, 0, 7, torch.tensor(1.0), torch.tensor(0))
    with pytest.raises(InputError, match="not an int32 range of 3 bits"):
        AffineCodes(torch.tensor([0, 9]), 3, 0, 9, torch.tensor(1.0), torch.tensor(0))


# Lying files: helpers that rewrite a valid file, recomputing its CRC so each reaches the check it names


def _header_and_body(data: bytes) -> tuple[dict, bytes]:
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size]), data[8 + size:]


def _raw_file(header: dict, body: bytes, crc: bool = True) -> bytes:
    """A safetensors file from this header and body, the metadata's CRC recomputed unless crc is False."""
    if crc and isinstance(header.get("__metadata__"), dict):
        header = {**header, "__metadata__": {**header["__metadata__"], "crc32": f"{zlib.crc32(body):08x}"}}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _resaved(data: bytes, tensors: dict | None = None, meta: dict | None = None, entries=None) -> bytes:
    """The file re-saved by safetensors with tensors and metadata fields replaced, its CRC recomputed."""
    header, _ = _header_and_body(data)
    new_meta = {**header["__metadata__"], **(meta or {})}
    if entries is not None:
        new_meta["entries"] = json.dumps(entries)
    new_tensors = {**st_load(data), **(tensors or {})}
    new_tensors = {k: v for k, v in new_tensors.items() if v is not None}
    out = st_save(new_tensors, metadata=new_meta)
    return _raw_file(*_header_and_body(out))


def _entries(data: bytes) -> list[dict]:
    return json.loads(_header_and_body(data)[0]["__metadata__"]["entries"])


def _changed(data: bytes, index: int, **fields) -> bytes:
    """The file with entry `index` given these fields (None deletes one)."""
    entries = _entries(data)
    entries[index].update(fields)
    return _resaved(data, entries=entries)


def _refused(data: bytes, words: str, error=InputError, max_elements=None):
    with pytest.raises(error) as info:
        decode(data, max_elements)
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.fixture
def valid() -> bytes:
    return encode({"w": _affine((6, 10), bits=3, group_size=4), "b": torch.ones(6)})


def test_a_valid_file_decodes(valid):
    assert list(decode(valid)) == ["w", "b"]


# The file and its safetensors header


def test_a_file_over_the_upload_cap_is_refused(monkeypatch):
    monkeypatch.setenv("COMPRESSION_LAB_MAX_UPLOAD_MB", "1")
    big = encode({"x": torch.zeros(300_000)})  # 1.2 MB, otherwise valid
    _refused(big, "over the 1 MiB limit", LimitExceeded)


def test_no_header():
    _refused(b"\x01\x00", "no header")


def test_a_header_running_past_the_end(valid):
    _refused(struct.pack("<Q", len(valid)) + valid[8:], "runs past the end")


def test_a_header_over_the_limit():
    raw = b'{"a":' + b" " * limits.MAX_HEADER_BYTES + b"1}"
    _refused(struct.pack("<Q", len(raw)) + raw, "header is over", LimitExceeded)


def test_a_deeply_nested_header():
    raw = b'{"a":' + b"[" * 10000 + b"]" * 10000 + b"}"
    _refused(struct.pack("<Q", len(raw)) + raw, "nested", LimitExceeded)


def test_a_header_that_is_not_a_map():
    _refused(struct.pack("<Q", 2) + b"[]", "not a map")


def test_a_stored_tensor_of_unknown_dtype(valid):
    header, body = _header_and_body(valid)
    header["b"]["dtype"] = "C64"
    _refused(_raw_file(header, body), "no supported dtype")


def test_a_stored_tensor_with_a_bad_shape(valid):
    header, body = _header_and_body(valid)
    header["b"]["shape"] = [-6]
    _refused(_raw_file(header, body), "non-negative integers")


def test_a_stored_tensor_whose_empty_shape_torch_cannot_make(valid):
    header, body = _header_and_body(valid)
    entries = json.loads(header["__metadata__"]["entries"]) + [{"name": "e", "kind": "raw"}]
    header["__metadata__"]["entries"] = json.dumps(entries)
    header["e"] = {"dtype": "F32", "shape": [0, 2 ** 40, 2 ** 40], "data_offsets": [len(body), len(body)]}
    _refused(_raw_file(header, body), "multiply past")


def test_a_stored_tensor_outside_the_data_section(valid):
    header, body = _header_and_body(valid)
    start = header["b"]["data_offsets"][0]
    header["b"]["data_offsets"] = [start + len(body), start + len(body) + 24]
    _refused(_raw_file(header, body), "outside the data section")


def test_a_stored_tensor_whose_bytes_do_not_match_its_shape(valid):
    header, body = _header_and_body(valid)
    header["b"]["shape"] = [5]
    _refused(_raw_file(header, body), "bytes, not the 20")


def test_overlapping_stored_tensors(valid):
    header, body = _header_and_body(valid)
    header["w.scale"]["data_offsets"] = header["b"]["data_offsets"]
    header["w.scale"]["shape"] = [6]
    _refused(_raw_file(header, body), "overlap in the file")


def test_a_gap_between_stored_tensors(valid):
    header, body = _header_and_body(valid)
    start, end = header["b"]["data_offsets"]
    assert start == 0  # F32 tensors come first
    header["b"]["data_offsets"], header["b"]["shape"] = [start + 4, end], [5]
    _refused(_raw_file(header, body), "leaves a gap")


def test_trailing_bytes_after_the_last_tensor(valid):
    header, body = _header_and_body(valid)
    _refused(_raw_file(header, body + b"\0" * 8), "trailing bytes")


# The metadata


def test_a_plain_safetensors_file_is_not_a_packed_file():
    _refused(st_save({"w": torch.ones(2)}), "not a Compression Lab packed file")


def test_a_newer_version_is_refused(valid):
    _refused(_resaved(valid, meta={"version": "2"}), "newer than this app reads")


@pytest.mark.parametrize("version", ["0", "one", "", "²"])
def test_an_invalid_version_is_refused(valid, version):
    _refused(_resaved(valid, meta={"version": version}), "invalid format version")


def test_metadata_values_that_are_not_strings(valid):
    header, body = _header_and_body(valid)
    header["__metadata__"]["extra"] = 7
    _refused(_raw_file(header, body), "strings to strings")


def test_entries_that_are_not_json(valid):
    _refused(_resaved(valid, meta={"entries": "[{"}), "not valid JSON")


def test_entries_nested_too_deeply(valid):
    _refused(_resaved(valid, meta={"entries": "[" * 100 + "]" * 100}), "nested", LimitExceeded)


@pytest.mark.parametrize("entries", [{"name": "w"}, ["w"], "w"])
def test_entries_that_are_not_a_list_of_objects(valid, entries):
    _refused(_resaved(valid, entries=entries), "list of objects")


@pytest.mark.parametrize("crc", ["", "1234", "ABCDEF12", "0x123456"])
def test_a_missing_or_malformed_crc(valid, crc):
    header, body = _header_and_body(valid)
    header["__metadata__"]["crc32"] = crc
    _refused(_raw_file(header, body, crc=False), "no crc32")


def test_a_crc_mismatch_is_corrupt_or_truncated(valid):
    header, body = _header_and_body(valid)
    flipped = body[:-1] + bytes([body[-1] ^ 1])
    _refused(_raw_file(header, flipped, crc=False), "corrupt or truncated (checksum mismatch)")


# Each entry's fields


@pytest.mark.parametrize("name", [None, 7, "", "x" * 1001])
def test_an_entry_name_that_is_not_a_short_string(valid, name):
    _refused(_changed(valid, 1, name=name), "name must be a string of 1 to 1000")


def test_an_entry_name_that_appears_twice(valid):
    entries = _entries(valid)
    _refused(_resaved(valid, entries=entries + [entries[1]]), "appears twice")


def test_an_unknown_kind(valid):
    _refused(_changed(valid, 1, kind="fp4"), "unknown kind 'fp4'")


@pytest.mark.parametrize("field, value, words", [
    ("bits", 17, "'bits' must be an integer in [1, 16]"),
    ("bits", True, "'bits' must be an integer"),
    ("quant_min", -2 ** 40, "'quant_min' must be an integer"),
    ("quant_max", 8, "'quant_max' must be an integer in [0, 7]"),
    ("quant_max", -1, "'quant_max' must be an integer in [0, 7]"),
    ("group_size", 11, "'group_size' must be an integer in [1, 10]"),
    ("group_size", 0, "'group_size' must be an integer in [1, 10]"),
    ("axis", 2, "'axis' must be an integer in [0, 1]"),
    ("axis", 1, "takes no axis"),
    ("zero", 1, "'zero' must be true or false"),
    ("shape", [6, -10], "non-negative integers"),
    ("shape", [1] * 9, "at most 8 sizes"),
])
def test_affine_fields_out_of_bounds(valid, field, value, words):
    _refused(_changed(valid, 0, **{field: value}), words)


def test_an_empty_logical_shape_torch_cannot_make():
    data = encode({"w": _affine((0, 4))})  # per tensor: no stored size depends on the other sizes
    _refused(_changed(data, 0, shape=[0, 2 ** 31, 2 ** 31, 2 ** 31]), "multiply past")


def test_binary_axis_out_of_bounds():
    data = encode({"s": BinaryCodes(torch.ones(3, 4, dtype=torch.int64), torch.ones(3), axis=0)})
    _refused(_changed(data, 0, axis=2), "'axis' must be an integer in [0, 1]")
    _refused(_changed(data, 0, shape=[], axis=0), "is not a dimension of shape []")


def test_sparse_nnz_out_of_bounds():
    data = encode({"s": SparseValues.from_dense(torch.tensor([[0.0, 1.0], [2.0, 0.0]]))})
    _refused(_changed(data, 0, nnz=5), "'nnz' must be an integer in [0, 4]")


@pytest.mark.parametrize("fields, words", [
    ({"m": 65}, "'m' must be an integer in [1, 64]"),
    ({"n": 5}, "'n' must be an integer in [1, 4]"),
    ({"n": 0}, "'n' must be an integer in [1, 4]"),
    ({"shape": [2, 2, 4]}, "must be 2-D"),
    ({"shape": [4, 6], "m": 4}, "not a whole number of groups of 4"),
])
def test_nm_fields_out_of_bounds(fields, words):
    data = encode({"n": NMValues.from_dense(torch.randn(4, 8, generator=_gen()), 2, 4)})
    _refused(_changed(data, 0, **fields), words)


# The element budget, before anything is unpacked


def test_the_element_budget_counts_every_entry(valid):
    _refused(valid, "declares more than 65 tensor elements", LimitExceeded, max_elements=65)
    assert list(decode(valid, max_elements=66))  # 60 codes + 6 raw


def test_a_raw_entry_counts_against_the_budget():
    _refused(encode({"b": torch.ones(10)}), "declares more than 9", LimitExceeded, max_elements=9)


def test_a_giant_declared_tensor_is_refused_in_a_child_limited_to_2_gib(tmp_path):
    side = 8192  # 1-bit codes of 8192 x 8192: 8 MiB that the old LM format unpacked to 2.1 GiB
    entry = {"name": "w", "kind": "affine", "shape": [side, side], "bits": 1, "quant_min": 0, "quant_max": 1,
             "axis": None, "group_size": None, "zero": False}
    codes = torch.full((side * side // 8,), 0x55, dtype=torch.uint8)
    meta = {"format": FORMAT, "version": "1", "entries": json.dumps([entry]), "crc32": "00000000"}
    path = tmp_path / "giant.safetensors"
    path.write_bytes(_raw_file(*_header_and_body(st_save({"w.codes": codes, "w.scale": torch.tensor(1.0)},
                                                         metadata=meta))))
    assert 8 << 20 <= path.stat().st_size < 9 << 20
    script = ("import sys\nfrom compression.core.errors import InputError\nfrom compression.formats.packed import "
              "decode\ntry:\n    decode(open(sys.argv[1], 'rb').read())\n    print('decoded')\nexcept InputError as e:"
              "\n    print(type(e).__name__, e)\n")
    result = hostile.run_limited(["-c", script, str(path)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("LimitExceeded ") and "tensor elements" in result.stdout


# The stored tensors each entry needs


def test_a_stored_tensor_that_is_missing(valid):
    _refused(_resaved(valid, tensors={"w.scale": None}), "'w.scale' is missing")


def test_a_stored_tensor_of_the_wrong_dtype(valid):
    scale = st_load(valid)["w.scale"]
    _refused(_resaved(valid, tensors={"w.scale": scale.view(torch.int32)}), "'w.scale' is I32, not F16 or F32")


def test_a_stored_tensor_of_the_wrong_size(valid):
    codes = st_load(valid)["w.codes"]
    _refused(_resaved(valid, tensors={"w.codes": torch.cat([codes, codes[:1]])}), "'w.codes' has shape [24], not [23]")


def test_a_zero_flag_without_its_zero_points():
    data = encode({"w": _affine((4, 6), axis=0, zero=False)})
    _refused(_changed(data, 0, zero=True), "'w.zero' is missing")


def test_a_stored_tensor_no_entry_claims(valid):
    _refused(_resaved(valid, tensors={"extra": torch.ones(2)}), "'extra' belongs to no entry")


def test_a_stored_tensor_two_entries_claim():
    data = encode({"w": _affine((2, 3))})
    entries = _entries(data) + [{"name": "w.codes", "kind": "raw"}]
    _refused(_resaved(data, entries=entries), "'w.codes' belongs to two entries")


# Facts checked after unpacking


def test_codes_above_quant_max(valid):
    entries = _entries(valid)
    entries[0].update(quant_max=entries[0]["quant_max"] - 2)  # 3-bit codes can hold 7, the range now ends at 5
    _refused(_resaved(valid, entries=entries), "codes must lie in [0, 5]")


def test_zero_points_above_quant_max():
    zero_point = torch.tensor([0, 1, 2, 9], dtype=torch.int32)
    value = AffineCodes(torch.zeros(4, 6, dtype=torch.int64), 4, 0, 15, torch.ones(4), zero_point, axis=0)
    _refused(_changed(encode({"w": value}), 0, quant_max=8), "zero points must lie in [0, 8]")


def test_a_non_finite_scale(valid):
    scale = st_load(valid)["w.scale"].clone()
    scale[0, 0] = float("nan")
    _refused(_resaved(valid, tensors={"w.scale": scale}), "NaN or Inf")


def test_nm_positions_must_increase_within_a_group():
    value = NMValues.from_dense(torch.randn(2, 8, generator=_gen()), 2, 4)
    data = encode({"n": value})
    packed = torch.frombuffer(bytearray(_pack2(value.index.reshape(-1, 2).flip(1).reshape(-1))), dtype=torch.uint8)
    _refused(_resaved(data, tensors={"n.index": packed}), "increase within each group")


def test_nm_positions_must_be_inside_the_group():
    value = NMValues.from_dense(torch.randn(2, 6, generator=_gen()), 1, 3)  # positions take 2 bits: 3 fits
    data = encode({"n": value})
    packed = torch.frombuffer(bytearray(_pack2(torch.full_like(value.index, 3))), dtype=torch.uint8)
    _refused(_resaved(data, tensors={"n.index": packed}), "positions must lie in [0, 2]")


def test_sparse_values_must_match_the_mask():
    data = encode({"s": SparseValues.from_dense(torch.tensor([[0.0, 1.0], [2.0, 0.0]]))})
    mask = torch.tensor([0b11100000], dtype=torch.uint8)  # three kept, two values
    _refused(_resaved(data, tensors={"s.mask": mask}), "kept values must be")


def _pack2(index: torch.Tensor) -> bytes:
    return pack(index.numpy(), 2)
