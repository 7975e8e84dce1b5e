"""The packed language-model file: exact round trips, and hostile bytes are refused with InputError."""

import functools
import json
import struct

import pytest
from conftest import drain
from hypothesis import given, settings
from hypothesis import strategies as st
from llm_helpers import tiny_llama, token_ids

from compression.core.errors import InputError
from compression.llm import PruneConfig, QuantizeConfig, compress, pack, unpack


@functools.cache
def packed_files() -> tuple[bytes, ...]:
    lm = tiny_llama()
    ids = token_ids(lm)
    return tuple(pack(drain(compress(lm, c, ids))[1]) for c in
                 (QuantizeConfig("rtn", 3, 32), PruneConfig("wanda", 0.5), PruneConfig("wanda", nm=(2, 4))))


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused(data):
    with pytest.raises(InputError):
        unpack(b"CLLM" + struct.pack("<II", 1, len(data)) + data if data[:1] == b"[" else data)


def _with_header(data: bytes, header) -> bytes:
    version, length = struct.unpack("<II", data[4:12])
    body = json.dumps(header).encode()
    return data[:4] + struct.pack("<II", version, len(body)) + body + data[12 + length:]


@settings(deadline=None, max_examples=60)
@given(st.data())
def test_valid_files_with_a_mutated_header_are_refused_or_decoded(data):
    original = data.draw(st.sampled_from(range(3)), label="file")
    original = packed_files()[original]
    header = json.loads(original[12:12 + struct.unpack("<I", original[8:12])[0]])
    entry = data.draw(st.sampled_from(header))
    field = data.draw(st.sampled_from(sorted(entry)))
    entry[field] = data.draw(st.one_of(st.integers(-5, 10 ** 12), st.text(max_size=5), st.none(),
                                       st.lists(st.integers(-2, 10 ** 6), max_size=3)))
    try:
        unpack(_with_header(original, header))
    except InputError:
        pass


def test_truncated_files_are_refused():
    for data in packed_files():
        with pytest.raises(InputError):
            unpack(data[:-1])


def test_a_deeply_nested_header_is_refused_not_recursed_into():
    header = b"[" * 100_000 + b"]" * 100_000  # json.loads would raise RecursionError, which is no InputError
    with pytest.raises(InputError, match="nested too deeply"):
        unpack(b"CLLM" + struct.pack("<II", 1, len(header)) + header)
