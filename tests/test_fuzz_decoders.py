"""Hypothesis fuzzing of every decoder of untrusted bytes, each in a child limited to 2 GiB of address space."""

import pytest
from conftest import require
from hostile import run_limited

DECODERS = ["clab", "packed", "npz", "safetensors", "pt", "onnx", "gguf", "tokenizer"]


@pytest.mark.parametrize("decoder", DECODERS)
def test_decoder_ends_in_a_result_or_a_clean_refusal(decoder):
    try:
        import hypothesis  # noqa: F401  only the child uses it
    except ImportError:
        require(False, "hypothesis is not installed (pip install -e '.[dev]')")
    result = run_limited(["tests/fuzz_decoders.py", decoder], timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert f"{decoder}: ok" in result.stdout
