"""The compress verb on tiny random models: progress, cancellation, a new model, packed files, saved folders."""

import pytest
import torch
from conftest import drain, state_checksum
from llm_helpers import tiny_gpt2, tiny_llama, token_ids

from compression.core.errors import InputError
from compression.llm import (
    PruneConfig,
    QuantizeConfig,
    SmoothQuantConfig,
    channel_max,
    compress,
    config_from_dict,
    fp16_size_bytes,
    generate,
    load_hf_folder,
    pack,
    packed_size_bytes,
    perplexity,
    save_hf_folder,
    unpack,
)
from compression.llm.layers import family_of

CONFIGS = [
    PruneConfig("magnitude", 0.5), PruneConfig("wanda", 0.5), PruneConfig("sparsegpt", 0.5),
    PruneConfig("wanda", nm=(2, 4)), PruneConfig("sparsegpt", nm=(4, 8)), PruneConfig("magnitude", 0.3, scope="matrix"),
    QuantizeConfig("rtn", 4, 32), QuantizeConfig("gptq", 3, 32, act_order=True), QuantizeConfig("gptq", 4, 0),
    QuantizeConfig("awq", 3, 32, awq_grid=4), SmoothQuantConfig(0.8, True, 6, 6), SmoothQuantConfig(smooth=False),
]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def lm(request):
    return tiny_llama() if request.param == "llama" else tiny_gpt2()


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.label)
def test_compress_yields_each_layer_and_leaves_the_input_alone(lm, config):
    before = state_checksum(lm.model)
    steps, result = drain(compress(lm, config, token_ids(lm)))
    assert state_checksum(lm.model) == before
    assert [s.layer for s in steps] == [0, 1] and steps[-1].fraction == 1.0
    family = family_of(lm.model)
    fed = {r for _, roles in family.norm_groups for r in roles}  # W·A· acts on the norm-fed linears only
    assert set(steps[0].errors) == (fed if isinstance(config, SmoothQuantConfig) else set(family.role_paths()))
    assert all(0 <= e < 1 for s in steps for e in s.errors.values())
    assert result.lm.model is not lm.model and result.seconds > 0
    assert config_from_dict(result.to_dict()["config"]) == config


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.label)
def test_the_packed_file_is_what_its_size_says_and_decodes_to_the_model(lm, config):
    _, result = drain(compress(lm, config, token_ids(lm)))
    data = pack(result)
    assert len(data) == packed_size_bytes(result) < fp16_size_bytes(lm)
    state = result.lm.model.state_dict()
    for name, tensor in unpack(data).items():
        torch.testing.assert_close(tensor, state[name], atol=2e-3 * state[name].abs().max().item() + 1e-6, rtol=1e-3)


def test_quantized_linears_decode_bit_exactly(lm):
    _, result = drain(compress(lm, QuantizeConfig("gptq", 4, 32), token_ids(lm)))
    state = result.lm.model.state_dict()
    decoded = unpack(pack(result))
    linear = [n for n in decoded if n.endswith(("q_proj.weight", "c_attn.weight"))]
    assert linear and all(torch.equal(decoded[n], state[n]) for n in linear)


def test_rtn_and_magnitude_run_without_calibration(lm):
    steps, result = drain(compress(lm, QuantizeConfig("rtn", 4, 32)))
    assert len(steps) == 2 and steps[0].errors == {}
    assert result.sparsity() < 0.5


@pytest.mark.parametrize("config", [PruneConfig("wanda"), QuantizeConfig("gptq"), SmoothQuantConfig()])
def test_methods_that_need_calibration_say_so(lm, config):
    with pytest.raises(InputError, match="calibration"):
        next(compress(lm, config))


def test_closing_the_generator_cancels_after_a_layer(lm):
    run = compress(lm, PruneConfig("sparsegpt", 0.5), token_ids(lm))
    first = next(run)
    run.close()
    assert first.layer == 0
    with pytest.raises(StopIteration):
        next(run)


def test_a_group_size_that_does_not_divide_is_refused_before_any_work(lm):
    with pytest.raises(InputError, match="divide"):
        next(compress(lm, QuantizeConfig("rtn", 4, 48)))


@pytest.mark.parametrize("config", [PruneConfig("sparsegpt", nm=(2, 4)), QuantizeConfig("gptq", 4, 32)],
                         ids=lambda c: c.label)
def test_a_compressed_model_saved_as_a_folder_reloads_with_the_same_logits(lm, config, tmp_path):
    _, result = drain(compress(lm, config, token_ids(lm)))
    save_hf_folder(result.lm, tmp_path)
    again = load_hf_folder(tmp_path)
    ids = token_ids(lm, 2, 32, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(again.model(input_ids=ids).logits, result.lm.model(input_ids=ids).logits)


def test_smoothquant_beats_naive_w6a6_when_a_channel_is_loud():
    lm = tiny_llama(3)
    with torch.no_grad():  # a loud channel at every norm's output, as in real LLMs
        for layer in lm.model.model.layers:
            layer.input_layernorm.weight[5] = 30.0
            layer.post_attention_layernorm.weight[7] = 30.0
    ids = token_ids(lm, 8, 64)
    naive = drain(compress(lm, SmoothQuantConfig(smooth=False, weight_bits=6, act_bits=6, act_granularity="per-tensor"), ids))[1]
    smooth = drain(compress(lm, SmoothQuantConfig(0.8, True, 6, 6, "per-tensor"), ids))[1]
    mean = lambda r: sum(e["relative_error"] for e in r.layer_errors()) / len(r.layer_errors())
    assert mean(smooth) < mean(naive)


def test_perplexity_counts_the_predicted_tokens(lm):
    result = perplexity(lm.model, token_ids(lm, 3, 20))
    assert result.tokens == 3 * 19 and result.perplexity > 1


def test_greedy_generation_is_repeatable_and_new_text_only(lm):
    first = generate(lm, "In the beginning", 12)
    assert first == generate(lm, "In the beginning", 12) and len(first) <= 12


def test_channel_max_finds_a_loud_input_channel():
    lm = tiny_llama(4)
    with torch.no_grad():
        lm.model.model.layers[1].input_layernorm.weight[9] = 50.0
    peaks = channel_max(lm, token_ids(lm), layer=1, role="q")
    assert peaks.shape == (64,) and int(peaks.argmax()) == 9
    with pytest.raises(InputError, match="layer must be"):
        channel_max(lm, token_ids(lm), layer=5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
@pytest.mark.parametrize("config", [PruneConfig("sparsegpt", nm=(2, 4)), QuantizeConfig("gptq", 4, 32, act_order=True),
                                    QuantizeConfig("awq", 3, 32, awq_grid=4), SmoothQuantConfig(0.8)],
                         ids=lambda c: c.label)
def test_methods_run_on_a_gpu_and_agree_with_the_cpu(config):
    lm = tiny_llama()
    ids = token_ids(lm)
    cpu = drain(compress(lm, config, ids))[1]
    gpu = drain(compress(lm, config, ids, device="cuda"))[1]
    assert gpu.device == "cuda" and len(pack(gpu)) == len(pack(cpu))
    eval_ids = token_ids(lm, 2, 32, seed=9)
    assert perplexity(gpu.lm.model, eval_ids).perplexity == pytest.approx(
        perplexity(cpu.lm.model, eval_ids).perplexity, rel=0.05)
