"""Property-based fuzzing of every decoder of untrusted bytes; run by test_fuzz_decoders.py under RLIMIT_AS.

`python tests/fuzz_decoders.py NAME` fuzzes one decoder: arbitrary bytes, and valid files whose header fields and
body bytes are mutated with their checksums recomputed, so the decoder's own checks are what gets exercised.
Every example must end in a result or an InputError; anything else (MemoryError included) fails the run.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
import zlib

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compression.core.errors import InputError

MAX_EXAMPLES = {"clab": 300, "packed": 300, "npz": 200, "safetensors": 200, "pt": 100, "onnx": 40, "gguf": 300,
                "tokenizer": 120}
LOADERS = ("gguf", "tokenizer")
# A hostile value for a header field: sizes near the limits, wrong types, deep or long containers.
FIELD_VALUES = st.one_of(
    st.integers(-2, 40), st.sampled_from([2 ** 16, 2 ** 25 + 1, 2 ** 31, 2 ** 40, 2 ** 63, 10 ** 30, -2 ** 63]),
    st.lists(st.integers(-1, 2 ** 20), max_size=6), st.lists(st.sampled_from([0, 1, 40, 2 ** 40]), max_size=4),
    st.none(), st.booleans(), st.text(max_size=4), st.floats(allow_nan=True), st.just([[[]]]), st.just({}))


def refuse_or_decode(decode, data: bytes) -> None:
    try:
        decode(data)
    except InputError:
        pass


def _mutated_header(header: dict, picks: list) -> dict:
    """Set fields of the header's tensor entries (or the header itself) to hostile values."""
    header = json.loads(json.dumps(header))
    for target, key, value in picks:
        entries = header.get("t") if isinstance(header.get("t"), list) else []
        where = entries[target % len(entries)] if entries and target >= 0 else header
        if isinstance(where, dict):
            keys = sorted(where) or ["x"]
            where[keys[key % len(keys)]] = value
    return header


def _flip(body: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(body)
    for position, value in flips:
        if out:
            out[position % len(out)] = value
    return bytes(out)


PICKS = st.lists(st.tuples(st.integers(-1, 8), st.integers(0, 20), FIELD_VALUES), min_size=1, max_size=3)
FLIPS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=4)


def fuzz_clab():
    from compression.formats import clab
    from compression.pipeline.weight_sharing import share_weights

    g = torch.Generator().manual_seed(0)
    dense = torch.randn(12, 8, generator=g)
    pruned = dense * (torch.rand(12, 8, generator=g) > 0.7)
    state = {"a": pruned, "b": dense, "c": torch.randn(5, generator=g)}
    valid = clab.encode(state, {"a": share_weights(pruned, 3), "b": share_weights(dense, 2)}, "mlp", index_bits=3)
    prefix = struct.Struct(">4sHII")
    _, _, header_len, _ = prefix.unpack_from(valid)
    body = valid[prefix.size:]
    header, blobs = json.loads(zlib.decompress(body[:header_len])), body[header_len:]

    def build(new_header: dict, new_blobs: bytes) -> bytes:
        packed = zlib.compress(json.dumps(new_header).encode())
        rest = packed + new_blobs
        return prefix.pack(b"CLAB", 1, len(packed), zlib.crc32(rest)) + rest

    @given(st.binary(max_size=400))
    def arbitrary(raw):
        refuse_or_decode(clab.decode, raw)
        refuse_or_decode(clab.decode, prefix.pack(b"CLAB", 1, len(raw) // 2, zlib.crc32(raw)) + raw)

    @given(PICKS, FLIPS, st.integers(-8, 8))
    def mutated(picks, flips, cut):
        new_blobs = _flip(blobs, flips)
        new_blobs = new_blobs[:cut] if cut < 0 else new_blobs + b"\0" * cut
        refuse_or_decode(clab.decode, build(_mutated_header(header, picks), new_blobs))

    return arbitrary, mutated


def fuzz_packed():
    from compression.formats.packed import AffineCodes, BinaryCodes, NMValues, SparseValues, decode_state, encode

    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 8, generator=g)
    grid = AffineCodes(torch.randint(-4, 4, (6, 10), generator=g), 3, -4, 3, torch.rand(6, 3, generator=g) + 0.1,
                       torch.randint(-4, 4, (6, 3), generator=g), group_size=4)
    valid = encode({"a": grid, "b": BinaryCodes((w > 0).to(torch.int64), w.abs().mean(1), axis=0),
                    "s": SparseValues.from_dense(w * (w.abs() > 1)), "n": NMValues.from_dense(w, 2, 4),
                    "r": torch.randn(6, generator=g)})
    size = int.from_bytes(valid[:8], "little")
    header, body = json.loads(valid[8:8 + size]), valid[8 + size:]
    meta = header.pop("__metadata__")
    entries, names = json.loads(meta["entries"]), sorted(header)

    def build(new_entries: object, infos: list, new_body: bytes) -> bytes:
        new_meta = {**meta, "entries": json.dumps(new_entries), "crc32": f"{zlib.crc32(new_body):08x}"}
        raw = json.dumps({"__metadata__": new_meta, **dict(zip(names, infos))}).encode()
        return struct.pack("<Q", len(raw)) + raw + new_body

    @given(st.binary(max_size=400))
    def arbitrary(raw):
        refuse_or_decode(decode_state, raw)
        refuse_or_decode(decode_state, struct.pack("<Q", len(raw)) + raw)

    @given(PICKS, st.lists(st.tuples(st.integers(0, 8), st.integers(0, 20), FIELD_VALUES), max_size=2), FLIPS,
           st.integers(-8, 8))
    def mutated(entry_picks, stored_picks, flips, cut):
        new_entries = _mutated_header({"t": entries}, entry_picks)["t"]  # target -1 replaces the whole list
        infos = _mutated_header({"t": [header[name] for name in names]}, stored_picks)["t"]
        new_body = _flip(body, flips)
        new_body = new_body[:cut] if cut < 0 else new_body + b"\0" * cut
        refuse_or_decode(decode_state, build(new_entries, infos, new_body))

    return arbitrary, mutated


def fuzz_npz():
    from compression.data import load_npz

    header_fields = st.fixed_dictionaries({
        "descr": st.sampled_from(["<f4", "<i8", "|u1", "|b1", "<f8", "|O", "<U4", "V8", "<c8", "<f2"]),
        "fortran_order": st.booleans(),
        "shape": st.lists(st.sampled_from([0, 1, 2, 3, 64, 10 ** 6, 2 ** 31, 2 ** 62]), max_size=4).map(tuple)})

    def npy(fields: dict, data: bytes) -> bytes:
        out = io.BytesIO()
        np.lib.format.write_array_header_1_0(out, fields)
        return out.getvalue() + data

    def archive(members: dict[str, bytes], compressed: bool) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
            for name, data in members.items():
                z.writestr(name, data)
        return out.getvalue()

    @given(st.binary(max_size=400))
    def arbitrary(raw):
        refuse_or_decode(load_npz, raw)
        refuse_or_decode(load_npz, archive({"x.npy": raw, "y.npy": raw[::-1]}, False))

    @given(header_fields, header_fields, st.binary(max_size=300), st.binary(max_size=40), st.booleans(),
           st.sampled_from([None, 1, 10, 2 ** 40]))
    def mutated(x_fields, y_fields, x_data, y_data, compressed, classes):
        data = archive({"x.npy": npy(x_fields, x_data), "y.npy": npy(y_fields, y_data)}, compressed)
        refuse_or_decode(lambda d: load_npz(d, classes=classes), data)

    return arbitrary, mutated


def fuzz_safetensors():
    from safetensors.torch import save

    from compression.models.safe_load import read_state_dict

    valid = save({"fc1.weight": torch.randn(4, 3), "fc1.bias": torch.zeros(4)})
    size = int.from_bytes(valid[:8], "little")
    header, body = json.loads(valid[8:8 + size]), valid[8 + size:]
    dtypes = st.sampled_from(["F32", "F16", "I64", "BOOL", "F64", "X9", 7])
    entries = st.fixed_dictionaries({"dtype": dtypes, "shape": FIELD_VALUES,
                                     "data_offsets": st.one_of(FIELD_VALUES, st.lists(st.integers(0, 80),
                                                                                      min_size=2, max_size=2))})

    def read(data: bytes):
        return read_state_dict(data, "w.safetensors")

    @given(st.binary(max_size=400))
    def arbitrary(raw):
        refuse_or_decode(read, raw)
        refuse_or_decode(read, struct.pack("<Q", len(raw)) + raw)

    @given(st.dictionaries(st.sampled_from(["fc1.weight", "fc1.bias", "x", "__metadata__"]), entries, max_size=3),
           FLIPS, st.integers(-8, 8))
    def mutated(changes, flips, cut):
        new_header = {**header, **changes}
        raw = json.dumps(new_header).encode()
        new_body = _flip(body, flips)
        new_body = new_body[:cut] if cut < 0 else new_body + b"\0" * cut
        refuse_or_decode(read, struct.pack("<Q", len(raw)) + raw + new_body)

    return arbitrary, mutated


def fuzz_pt():
    from compression.models.safe_load import read_state_dict

    buffer = io.BytesIO()
    torch.save({"fc1.weight": torch.randn(4, 3), "fc1.bias": torch.zeros(4)}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as z:
        members = {info.filename: z.read(info) for info in z.infolist()}

    def read(data: bytes):
        return read_state_dict(data, "w.pt")

    @given(st.binary(max_size=400))
    def arbitrary(raw):
        refuse_or_decode(read, raw)

    @given(st.sampled_from(sorted(members)), FLIPS, st.integers(-8, 8))
    def mutated(member, flips, cut):
        changed = _flip(members[member], flips)
        changed = changed[:cut] if cut < 0 else changed + b"\0" * cut
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:  # CRCs recomputed
            for name, data in members.items():
                z.writestr(name, changed if name == member else data)
        refuse_or_decode(read, out.getvalue())

    return arbitrary, mutated


def fuzz_onnx():
    from onnx import TensorProto, helper, numpy_helper

    from compression.models.onnx import load_onnx

    def model(dims: list, out_dims: list, weight_shape: tuple) -> bytes:
        weight = numpy_helper.from_array(np.zeros(weight_shape, np.float32), "W")
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)], [weight])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()

    valid = model(["N", 8], ["N", 4], (8, 4))
    dims = st.lists(st.sampled_from(["N", 1, 4, 8, 2 ** 20, 2 ** 40]), min_size=1, max_size=3)

    @given(st.binary(max_size=300))
    def arbitrary(raw):
        refuse_or_decode(load_onnx, raw)

    @given(dims, dims, st.sampled_from([(8, 4), (8, 0), (0, 4), (1, 1)]), FLIPS)
    def mutated(in_dims, out_dims, weight_shape, flips):
        refuse_or_decode(load_onnx, model(in_dims, out_dims, weight_shape))
        refuse_or_decode(load_onnx, _flip(valid, flips))

    return arbitrary, mutated


def _integer_slots(reader, limit_per_field: int = 8) -> list[tuple[int, int]]:
    """(byte position, width) of the integers of a GGUF's header: counts, lengths, value and item types, array
    lengths, tensor dimensions, types and offsets (the first few parts of each field, as the gguf package saw them)."""
    slots = [(8, 8), (16, 8)]  # the tensor count and the metadata count
    fields = list(reader.fields.values())[3:] + [tensor.field for tensor in reader.tensors]
    for field in fields:
        position = field.offset
        for part in field.parts[:limit_per_field]:
            if part.dtype.kind in "ui" and part.dtype.itemsize > 1:
                slots += [(position + i * part.dtype.itemsize, part.dtype.itemsize) for i in range(min(len(part), 4))]
            position += part.nbytes
    return slots


GGUF_INTEGERS = st.one_of(st.integers(0, 40), st.sampled_from([2 ** 16, 2 ** 20 + 1, 2 ** 24, 2 ** 31, 2 ** 32 - 1,
                                                                2 ** 40, 2 ** 63, 2 ** 64 - 1]))


def fuzz_gguf():
    """A valid tiny Llama written by GGUFWriter, its header integers set to hostile values and its bytes flipped, loaded
    whole (checks, then transformers dequantizing what they accept): refused in one line, or loaded."""
    import atexit
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import gguf
    from lm_hostile import write_gguf

    from compression.lm import load_gguf

    folder = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, folder, True)
    os.environ["COMPRESSION_LAB_CACHE"] = str(folder / "cache")  # one dequantized folder per accepted example
    path = write_gguf(folder / "valid.gguf")
    valid = path.read_bytes()
    slots = _integer_slots(gguf.GGUFReader(str(path)))
    load_gguf(path)  # the valid file loads (and transformers' imports are done before the examples)

    def check(data: bytes) -> None:
        path.write_bytes(data)
        refuse_or_decode(load_gguf, path)

    @given(st.binary(max_size=400))
    def arbitrary(raw):
        check(raw)
        check(valid[:24] + raw)

    @given(st.lists(st.tuples(st.integers(0, len(slots) - 1), GGUF_INTEGERS), max_size=3), FLIPS,
           st.one_of(st.just(0), st.integers(-64, 8)))
    def mutated(changes, flips, cut):
        data = bytearray(valid)
        for slot, value in changes:
            position, width = slots[slot]
            data[position:position + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
        data = _flip(bytes(data), flips)
        check(data[:cut] if cut < 0 else data + b"\0" * cut)

    return arbitrary, mutated


# A hostile value for a tokenizer.json node: the field values above, and the names of the tokenizers' components.
TOKENIZER_VALUES = st.one_of(FIELD_VALUES, st.sampled_from(
    ["BPE", "WordLevel", "WordPiece", "Unigram", "Sequence", "Split", "ByteLevel", "Metaspace", "Fuse", "<unk>"]),
    st.fixed_dictionaries({"type": st.sampled_from(["Split", "Replace", "Sequence", "BPE", "Unigram", "ByteLevel"]),
                           "pattern": st.one_of(st.just({"Regex": "("}), st.just({"String": ""}), FIELD_VALUES)}),
    st.dictionaries(st.text(max_size=3), st.integers(-2, 2 ** 40), max_size=4))


def _mutated_json(value: object, picks: list) -> object:
    """Set one child of a chosen dict or list node of a JSON value (nodes numbered in a fixed walk)."""
    value = json.loads(json.dumps(value))
    for node_index, key_index, new in picks:
        new = json.loads(json.dumps(new))  # a copy: a value drawn twice must not become its own child
        nodes, stack = [], [value]
        while stack:
            node = stack.pop()
            if isinstance(node, (dict, list)):
                nodes.append(node)
                stack.extend(node.values() if isinstance(node, dict) else node)
        node = nodes[node_index % len(nodes)]
        if isinstance(node, dict):
            keys = sorted(node) + ["x"]
            node[keys[key_index % len(keys)]] = new
        elif node:
            node[key_index % len(node)] = new
        else:
            node.append(new)
    return value


def fuzz_tokenizer():
    """A valid tiny Llama folder whose tokenizer.json is mutated, loaded whole: refused in one line, or loaded."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from lm_hostile import hf_folder

    from compression.lm import load_hf_folder

    root = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, root, True)
    folder = hf_folder(root / "model")
    valid = json.loads((folder / "tokenizer.json").read_text())
    load_hf_folder(folder)  # the valid folder loads

    def load(raw: bytes) -> None:
        (folder / "tokenizer.json").write_bytes(raw)
        refuse_or_decode(load_hf_folder, folder)

    @given(st.binary(max_size=200))
    def arbitrary(raw):
        load(raw)

    @given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 40), TOKENIZER_VALUES), min_size=1, max_size=3))
    def mutated(picks):
        load(json.dumps(_mutated_json(valid, picks)).encode())

    return arbitrary, mutated


def main(name: str) -> None:
    torch.set_num_threads(1)
    # the language-model loaders run transformers on what their checks accept: no per-example deadline there (the
    # child's own timeout still bounds the run), since a loaded machine can stretch one load past any fixed one
    deadline = None if name in LOADERS else 2000
    options = settings(max_examples=MAX_EXAMPLES[name], deadline=deadline, database=None, derandomize=True,
                       suppress_health_check=list(HealthCheck))
    for test in globals()[f"fuzz_{name}"]():
        options(test)()
    print(f"{name}: ok")


if __name__ == "__main__":
    main(sys.argv[1])
