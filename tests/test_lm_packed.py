"""A language model's packed file through `unpack`: hostile bytes are refused with InputError, never an allocation.

The format's own codec (every kind, every decoder check) is tested in test_formats_packed.py; this file feeds it
what compress_lm writes (float16 scales per group, sparse and N:M values, GPT-2's transposed weights) and the
metadata only a language model's file has.
"""

import functools
import json
import struct
import zlib

import hostile
import pytest
from conftest import drain
from hypothesis import given, settings
from hypothesis import strategies as st
from lm_helpers import tiny_gpt2, tiny_llama, token_ids

from compression.core.errors import InputError
from compression.pipeline import compress_lm, lm_config, pack, unpack

# Decodes each file named on its command line (PATH ELEMENT-BUDGET, 0 for the default);
# prints {file: [error type or "decoded", message]} as JSON.
CHILD = """
import json, sys
from compression.core.errors import InputError
from compression.pipeline import unpack
outcomes = {}
for path, budget in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        unpack(open(path, "rb").read(), int(budget) or None)
        outcomes[path] = ["decoded", ""]
    except InputError as exc:
        outcomes[path] = [type(exc).__name__, str(exc)]
print(json.dumps(outcomes))
"""


@functools.cache
def packed_files() -> tuple[bytes, ...]:
    llama, gpt2 = tiny_llama(), tiny_gpt2()
    return tuple(pack(drain(compress_lm(lm, config, token_ids(lm)))[1]) for lm, config in (
        (llama, lm_config("rtn", bits=3, group_size=32)), (llama, lm_config("wanda", 0.5)),
        (llama, lm_config("wanda", nm=(2, 4))), (gpt2, lm_config("gptq", bits=4, group_size=48))))


def split(data: bytes) -> tuple[dict, bytes]:
    """(the safetensors header, the data section) of a packed file."""
    size = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + size]), data[8 + size:]


def join(header: dict, body: bytes) -> bytes:
    """A packed file from a header and a data section (the CRC covers the data section, so it still holds)."""
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def with_entries(data: bytes, change) -> bytes:
    """The file with change(entries) applied to the entries its metadata declares."""
    header, body = split(data)
    entries = json.loads(header["__metadata__"]["entries"])
    change(entries)
    header["__metadata__"]["entries"] = json.dumps(entries)
    return join(header, body)


def test_the_files_decode():
    for data in packed_files():
        assert unpack(data)


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused(data):
    with pytest.raises(InputError):  # a header-looking start gets a valid length, to reach the JSON parser
        unpack(struct.pack("<Q", len(data)) + data if data[:1] == b"{" else data)


@settings(deadline=None, max_examples=80)
@given(st.data())
def test_valid_files_with_a_mutated_header_are_refused_or_decoded(data):
    original = packed_files()[data.draw(st.sampled_from(range(len(packed_files()))), label="file")]
    header, body = split(original)
    value = st.one_of(st.integers(-5, 10 ** 12), st.text(max_size=5), st.none(), st.booleans(),
                      st.lists(st.integers(-2, 10 ** 6), max_size=3))
    if data.draw(st.booleans(), label="an entry, not a stored tensor"):
        entries = json.loads(header["__metadata__"]["entries"])
        entry = data.draw(st.sampled_from(entries))
        entry[data.draw(st.sampled_from(sorted(entry)))] = data.draw(value)
        header["__metadata__"]["entries"] = json.dumps(entries)
    else:
        stored = header[data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))]
        stored[data.draw(st.sampled_from(sorted(stored)))] = data.draw(value)
    try:
        unpack(join(header, body))
    except InputError:
        pass


def test_truncated_files_are_refused():
    for data in packed_files():
        with pytest.raises(InputError):
            unpack(data[:-1])


def test_a_deeply_nested_header_is_refused_not_recursed_into():
    header = b"[" * 100_000 + b"]" * 100_000  # json.loads would raise RecursionError, which is no InputError
    with pytest.raises(InputError, match="nested too deeply"):
        unpack(struct.pack("<Q", len(header)) + header)


def _giant_entry(data: bytes) -> bytes:
    def change(entries):
        affine = next(entry for entry in entries if entry["kind"] == "affine")
        affine["shape"] = [100_000, 100_000]  # 10^10 codes, 40 GB as float32
    return with_entries(data, change)


def _giant_stored(data: bytes) -> bytes:
    header, body = split(data)
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [100_000, 100_000]
    return join(header, body)


# (what declares it, the element budget, what the refusal says): within a huge budget, the stored sizes refuse it
GIANT = {
    "entry": (_giant_entry, 0, "declares more than 33,554,432 tensor elements"),
    "entry-huge-budget": (_giant_entry, 1 << 40, "has shape [1536], not [3750000000]"),
    "stored-tensor": (_giant_stored, 0, "not the 20,000,000,000 its dtype and shape need"),
    "stored-tensor-huge-budget": (_giant_stored, 1 << 40, "not the 20,000,000,000 its dtype and shape need"),
}


@pytest.fixture(scope="module")
def giant_outcomes(tmp_path_factory) -> dict[str, list[str]]:
    """Each GIANT file decoded in one child under RLIMIT_AS 2 GiB (a 40 GB ask fails there, never passes by luck)."""
    folder = tmp_path_factory.mktemp("giant")
    args = []
    for case, (make, budget, _) in GIANT.items():
        (folder / case).write_bytes(make(packed_files()[0]))
        args += [str(folder / case), str(budget)]
    done = hostile.run_limited(["-c", CHILD, *args])
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {case: found[str(folder / case)] for case in GIANT}


@pytest.mark.parametrize("case", GIANT)
def test_a_file_declaring_a_giant_tensor_is_refused_in_a_memory_limited_process(giant_outcomes, case):
    kind, message = giant_outcomes[case]
    assert kind in ("InputError", "LimitExceeded") and GIANT[case][2] in message, (kind, message)


@pytest.mark.parametrize("transposed", [
    '["no.such.weight"]', "not json", "[" * 100_000 + "]" * 100_000, '{"a": 1}', "[1]", "null",
    '["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.weight"]',
], ids=["unknown-name", "not-json", "nested", "a-map", "not-a-name", "null", "twice"])
def test_a_hostile_transposed_list_is_refused(transposed):
    header, body = split(packed_files()[0])
    header["__metadata__"]["transposed"] = transposed
    with pytest.raises(InputError):
        unpack(join(header, body))


def test_the_checksum_covers_the_data_section():
    header, body = split(packed_files()[0])
    assert header["__metadata__"]["crc32"] == f"{zlib.crc32(body):08x}"
    flipped = bytearray(body)
    flipped[len(body) // 2] ^= 0xFF
    with pytest.raises(InputError, match="checksum"):
        unpack(join(header, bytes(flipped)))
