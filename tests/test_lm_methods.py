"""The shared one-shot methods on the language-model family: its layer map, calibration one decoder layer at a time,
rescalings that leave the float model unchanged, and GPTQ/AWQ against round-to-nearest on tiny random models.

The pure tensor math of each method is tested on random layers in test_oneshot_methods.py.
"""

import copy

import pytest
import torch
from conftest import drain
from lm_helpers import tiny_gpt2, tiny_llama, token_ids

from compression.calibration import BlockReport, get_weight, set_weight, walk
from compression.core.errors import InputError
from compression.lm import DecoderLayers, decoder_layers, family_of, layer_roles
from compression.lm.decoder import capture_layer_call
from compression.pipeline import compress_lm, lm_config
from compression.quantization import QuantConfig
from compression.quantization.oneshot import awq_scales, smooth_block


def loud_llama(seed: int = 3):
    """A tiny Llama with one loud channel at every norm's output, as in real LLMs."""
    lm = tiny_llama(seed)
    with torch.no_grad():
        for layer in lm.model.model.layers:
            layer.input_layernorm.weight[5] = 30.0
            layer.post_attention_layernorm.weight[7] = 30.0
    return lm


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_each_decoder_layer_is_a_block_named_as_the_state_dict_names_it(make):
    lm = make()
    blocks = DecoderLayers().blocks(lm.model)
    params = dict(lm.model.named_parameters())
    assert [b.name for b in blocks] == ["layer 0", "layer 1"]
    for block, layer in zip(blocks, decoder_layers(lm.model)):
        assert block.module is layer and list(block.linears) == list(layer_roles(lm.model))
        for role, module in block.linears.items():
            assert module.weight is params[block.weight_names[role]]
        for norm, roles in block.norm_groups:  # a norm feeds these linears: their input is its output
            assert any(norm is m for m in layer.modules()) and set(roles) <= set(block.linears)


def test_an_unsupported_architecture_is_refused_with_the_supported_ones():
    class Bert(torch.nn.Module):
        config = type("Config", (), {"model_type": "bert"})()

    with pytest.raises(InputError, match="unsupported architecture 'bert'; supported: gpt2, llama"):
        family_of(Bert())


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_capturing_the_first_layer_call_then_running_layers_reproduces_the_model(make):
    lm = make()
    ids = token_ids(lm, 2, 16)
    layers = decoder_layers(lm.model)
    call = capture_layer_call(lm.model, layers[0], ids)
    hidden = call.hidden
    assert hidden.shape == (2, 16, 64)
    for layer in layers:
        hidden = call.run(layer, hidden)
    with torch.no_grad():
        expected = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
        final = lm.model.model.norm if family_of(lm.model).name == "llama" else lm.model.transformer.ln_f
        torch.testing.assert_close(final(hidden), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_linears_fed_the_same_tensor_share_one_input_object_and_no_others_do(make):
    lm = make()
    layer_map = DecoderLayers()
    block = layer_map.blocks(lm.model)[0]
    seen = layer_map.block_inputs(lm.model, block, layer_map.start(lm.model, token_ids(lm)))
    groups = {}
    for role, x in seen.items():
        groups.setdefault(id(x), []).append(role)
    expected = [["q", "k", "v"], ["o"], ["gate", "up"], ["down"]] if "q" in seen else [["qkv"], ["o"], ["up"], ["down"]]
    assert sorted(groups.values()) == sorted(expected)  # Hessians are cached by this identity
    assert all(x.shape == (8 * 64, get_weight(block.linears[role]).shape[1]) for role, x in seen.items())


def test_a_later_decoder_layer_is_calibrated_on_the_compressed_earlier_ones():
    lm = tiny_llama()
    layer_map = DecoderLayers()
    first, second = layer_map.blocks(lm.model)
    state = layer_map.start(lm.model, token_ids(lm))
    before = layer_map.block_inputs(lm.model, second, layer_map.advance(lm.model, first, state))["q"].clone()
    set_weight(first.linears["down"], torch.zeros_like(get_weight(first.linears["down"])))  # "compress" layer 0
    after = layer_map.block_inputs(lm.model, second, layer_map.advance(lm.model, first, state))["q"]
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_the_walk_feeds_each_decoder_layer_what_the_compressed_layers_before_it_produce(make):
    lm = make()
    model = copy.deepcopy(lm.model)
    ids = token_ids(lm, 4, 32)
    seen = {}

    def process(index, block, inputs):
        seen[index] = {role: x.clone() for role, x in inputs.items()}
        for module in block.linears.values():  # stands for compressing the block: its outputs change
            set_weight(module, get_weight(module) * 0.5)
        return BlockReport()

    steps = list(walk(model, DecoderLayers(), ids, process))
    assert len(steps) == 2
    first = DecoderLayers().blocks(model)[1].linears[layer_roles(model)[0]]
    captured = {}
    handle = first.register_forward_pre_hook(lambda module, args: captured.setdefault("x", args[0]))
    with torch.no_grad():
        model(input_ids=ids)  # the model as compressed: layer 0 halved (and layer 1, after it was calibrated)
    handle.remove()
    torch.testing.assert_close(seen[1][layer_roles(model)[0]], captured["x"].reshape(-1, captured["x"].shape[-1]))


@pytest.mark.parametrize("build", [tiny_llama, lambda: tiny_llama(kv_heads=4), tiny_gpt2],
                         ids=["llama-gqa", "llama", "gpt2"])
@pytest.mark.parametrize("method", ["smoothquant", "awq"])
def test_rescalings_leave_the_float_output_unchanged(build, method):
    lm = build()
    with torch.no_grad():  # a loud channel, so that the scales are far from 1
        for layer in decoder_layers(lm.model):
            norm = layer.input_layernorm if family_of(lm.model).name == "llama" else layer.ln_1
            norm.weight[3] = 20.0
    ids = token_ids(lm)
    with torch.no_grad():
        before = lm.model(input_ids=ids).logits
    layer_map = DecoderLayers()
    state = layer_map.start(lm.model, ids)
    scales = []
    for block in layer_map.blocks(lm.model):
        inputs = layer_map.block_inputs(lm.model, block, state)
        if method == "smoothquant":
            scales += list(smooth_block(block, inputs, 0.8).values())
        else:
            config = QuantConfig(bits=3, scheme="asymmetric", granularity="per-group", group_size=32, method="awq",
                                 awq_grid=5)
            scales += [s for role, s in awq_scales(block, inputs, config)[0].items()]
        state = layer_map.advance(lm.model, block, state)
    assert max((s.max() / s.min()).item() for s in scales) > 2  # not a rescaling by ones
    with torch.no_grad():
        after = lm.model(input_ids=ids).logits
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_awq_folds_a_scale_through_every_op_the_layer_map_allows():
    lm = tiny_llama(kv_heads=4)  # v's outputs are o's inputs only without grouped-query attention
    layer_map = DecoderLayers()
    block = layer_map.blocks(lm.model)[0]
    inputs = layer_map.block_inputs(lm.model, block, layer_map.start(lm.model, token_ids(lm)))
    applied, notes = awq_scales(block, inputs, QuantConfig(bits=3, granularity="per-group", group_size=32,
                                                           method="awq", awq_grid=5))
    assert set(applied) == {"q", "k", "v", "gate", "up", "down", "o", "up:rows", "v:rows"} and notes == []
    gqa = tiny_llama(kv_heads=2)
    block = layer_map.blocks(gqa.model)[0]
    inputs = layer_map.block_inputs(gqa.model, block, layer_map.start(gqa.model, token_ids(gqa)))
    applied, _ = awq_scales(block, inputs, QuantConfig(bits=3, granularity="per-group", group_size=32, method="awq",
                                                       awq_grid=5))
    assert "o" not in applied and "v:rows" not in applied


@pytest.mark.parametrize("make", [loud_llama, tiny_gpt2])
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_calibrated_rounding_beats_round_to_nearest_on_the_calibration_batch(make, method):
    lm = make()
    ids = token_ids(lm)

    def mean_error(name):
        rows = drain(compress_lm(lm, lm_config(name, bits=3, group_size=32), ids))[1].layer_errors()
        return sum(r["relative_error"] for r in rows) / len(rows)

    assert mean_error(method) < mean_error("rtn")

