"""Files other programs load: GGUF with llama.cpp's Q4_0/Q8_0 blocks holding the run's grids exactly (read back with
gguf.GGUFReader and loaded by transformers' GGUF reader), a Hugging Face folder plain transformers loads, the packed
file back onto its base model, and the CLI that writes them."""

import json

import gguf
import numpy as np
import pytest
import torch
from gguf.quants import dequantize
from lm_helpers import tiny_gpt2, tiny_llama, token_ids
from transformers import AutoModelForCausalLM

from compression.cli import main
from compression.core import InputError, run_to_end
from compression.formats.gguf_write import q4_0_blocks, q8_0_blocks
from compression.lm import save_hf_folder
from compression.pipeline import (compress_lm, export_gguf, export_hf_folder, from_packed, gguf_blocks, lm_config,
                                  pack)
from compression.pipeline.lm_export import _permute_rows
from compression.quantization import QuantConfig
from compression.quantization.tensors import quantize_tensor

SYM4 = lm_config("rtn", bits=4, group_size=32, scheme="symmetric")
ASYM4 = lm_config("rtn", bits=4, group_size=64)


@pytest.fixture(scope="module")
def llama():
    return tiny_llama()


def test_block_layouts_match_the_gguf_package():
    rng = np.random.default_rng(0)
    scales = rng.uniform(0.01, 0.1, (3, 2)).astype(np.float16)
    q8 = rng.integers(-128, 128, (3, 64)).astype(np.int8)
    expected = q8.astype(np.float32) * np.repeat(scales.astype(np.float32), 32, 1)
    assert np.array_equal(dequantize(q8_0_blocks(q8, scales), gguf.GGMLQuantizationType.Q8_0).reshape(3, 64),
                          expected)
    u4 = rng.integers(0, 16, (3, 64)).astype(np.uint8)
    expected = (u4.astype(np.float32) - 8) * np.repeat(scales.astype(np.float32), 32, 1)
    assert np.array_equal(dequantize(q4_0_blocks(u4, scales), gguf.GGMLQuantizationType.Q4_0).reshape(3, 64),
                          expected)


@pytest.mark.parametrize("config,kind", [
    (QuantConfig(bits=4, scheme="symmetric", granularity="per-group", group_size=32, fp16_scales=True), "Q4_0"),
    (QuantConfig(bits=3, scheme="symmetric", granularity="per-channel", fp16_scales=True), "Q4_0"),
    (QuantConfig(bits=4, scheme="asymmetric", granularity="per-group", group_size=64, fp16_scales=True), "Q8_0"),
    (QuantConfig(bits=8, scheme="symmetric", granularity="per-channel", fp16_scales=True), "Q8_0"),
])
def test_grid_goes_into_its_block_exactly(config, kind):
    qtensor = quantize_tensor(torch.randn(8, 128), config.bits, config)
    found, rows = gguf_blocks(qtensor)
    assert found == kind
    values = dequantize(rows, gguf.GGMLQuantizationType[kind]).reshape(8, 128)
    assert np.array_equal(values, qtensor.dequantize().numpy())


@pytest.mark.parametrize("config,reason", [
    (QuantConfig(bits=4, scheme="asymmetric", granularity="per-group", group_size=64), "not float16 values"),
    (QuantConfig(bits=4, scheme="symmetric", granularity="per-group", group_size=16, fp16_scales=True),
     "groups of 16"),
    (QuantConfig(bits=8, scheme="asymmetric", granularity="per-channel", fp16_scales=True), "wider than int8"),
])
def test_grid_no_block_holds_says_why(config, reason):
    torch.manual_seed(0)
    w = torch.randn(8, 128) + torch.linspace(0, 3, 128)  # off-centre rows: zero points far from the middle
    assert reason in gguf_blocks(quantize_tensor(w, config.bits, config))


@pytest.mark.parametrize("config,kind", [(SYM4, "Q4_0"), (ASYM4, "Q8_0")])
def test_gguf_round_trip(tmp_path, llama, config, kind):
    result = run_to_end(compress_lm(llama, config))
    exported = export_gguf(result.lm, result.run.qtensors, tmp_path / "m.gguf", float_type="F32")
    assert exported.counts() == {kind: 14, "F32": 7}
    reader = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    stored = {t.name: t for t in reader.tensors}
    assert reader.fields["general.architecture"].contents() == "llama"
    for layer in range(2):
        for ours, theirs, heads in (("self_attn.q_proj", "attn_q", 4), ("self_attn.k_proj", "attn_k", 2),
                                    ("mlp.up_proj", "ffn_up", None)):
            tensor = stored[f"blk.{layer}.{theirs}.weight"]
            assert tensor.tensor_type.name == kind
            expected = result.run.qtensors[f"model.layers.{layer}.{ours}.weight"].dequantize().numpy()
            expected = _permute_rows(expected, heads) if heads else expected
            assert np.array_equal(dequantize(tensor.data, tensor.tensor_type).reshape(expected.shape), expected)
    # transformers' own GGUF reader (dequantizes the blocks, undoes llama.cpp's q/k row order) gives the same logits
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", dtype=torch.float32).eval()
    ids = token_ids(llama, 2, 32)
    assert torch.allclose(loaded(input_ids=ids).logits, result.lm.model(input_ids=ids).logits, atol=1e-5)


def test_gguf_refuses_gpt2(tmp_path):
    lm = tiny_gpt2()
    with pytest.raises(InputError, match="Llama-family"):
        export_gguf(lm, {}, tmp_path / "m.gguf")


def test_hf_folder_loads_in_plain_transformers(tmp_path, llama):
    result = run_to_end(compress_lm(llama, ASYM4))
    exported = export_hf_folder(result.lm, tmp_path / "hf")
    assert "dequantized" in exported.notes[0]
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    ids = token_ids(llama, 2, 32)
    assert torch.equal(loaded(input_ids=ids).logits, result.lm.model(input_ids=ids).logits)


def test_packed_file_back_on_its_base_model(llama):
    result = run_to_end(compress_lm(llama, SYM4))
    lm, qtensors = from_packed(llama, pack(result))
    assert set(qtensors) == set(result.run.qtensors)
    for name, qtensor in qtensors.items():
        assert torch.equal(qtensor.dequantize(), result.run.qtensors[name].dequantize())
        assert torch.equal(lm.model.state_dict()[name], result.lm.model.state_dict()[name])


def test_export_cli_writes_both_formats(tmp_path, llama, capsys):
    save_hf_folder(llama, tmp_path / "base")
    packed = tmp_path / "run.packed.safetensors"
    packed.write_bytes(pack(run_to_end(compress_lm(llama, SYM4))))
    assert main(["export", "--lm", str(tmp_path / "base"), "--packed", str(packed), "--gguf-out",
                 str(tmp_path / "m.gguf"), "--hf-out", str(tmp_path / "hf"), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["gguf"]["stored_as"]["Q4_0"] == 14 and written["hf_folder"]["size_bytes"] > 0
    assert (tmp_path / "hf" / "config.json").is_file() and (tmp_path / "m.gguf").is_file()
    assert main(["export", "--lm", str(tmp_path / "base")]) == 2  # one-line refusal: no --packed
