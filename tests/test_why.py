"""Why each method works, as the engine computes it: GPTQ's error push along a row, SparseGPT's updates of the
survivors, the weights Wanda keeps that magnitude drops, SmoothQuant's migration and the activation grid, the
loudest input channels, and perplexity's noise. Each test fails when the function it checks is taken away."""

import math

import pytest
import torch
from conftest import state_checksum
from lm_helpers import tiny_llama, token_ids

from compression.calibration import (WeightLayers, get_weight, hessian, input_norms, input_ranges, layer_inputs,
                                     relative_error, row_output_errors)
from compression.core import InputError, run_to_end
from compression.lm import DecoderLayers, perplexity, perplexity_steps
from compression.pipeline import (LiveRTN, compress_lm, explain_pruning, explain_quantization, explain_smoothing,
                                  find_outliers, lm_config, one_layer)
from compression.pruning import PruneConfig
from compression.pruning.sparsegpt import sparsegpt_prune, survivor_updates
from compression.pruning.wanda import contrast_with_magnitude
from compression.quantization import QuantConfig
from compression.quantization.gptq import error_push, gptq_quantize
from compression.quantization.primitives import round_to_grid
from compression.quantization.smoothquant import smoothing_effect


def correlated_inputs(tokens: int = 512, columns: int = 32, seed: int = 0) -> torch.Tensor:
    """Inputs whose channels are correlated, as a layer's inputs are (the case GPTQ and SparseGPT exploit)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(columns, columns, generator=g) / math.sqrt(columns) + torch.eye(columns)
    return torch.randn(tokens, columns, generator=g) @ mix


@pytest.fixture
def layer():
    g = torch.Generator().manual_seed(1)
    return torch.randn(24, 32, generator=g), correlated_inputs()


def test_error_push_replays_what_gptq_rounded(layer):
    w, x = layer
    h = hessian(x)
    w_hat, grid, _ = gptq_quantize(w, h, 3, granularity="per-channel", act_order=True)
    push = error_push(w[5], w_hat[5], h, act_order=True)
    first = push.order[0]
    assert push.pushed[first] == 0  # the first column GPTQ rounds has nothing pushed onto it yet
    assert push.pushed.abs().max() > 0  # every later one moved with the errors before it
    rounded = round_to_grid(push.before_rounding, grid.scale[5], grid.zero_point[5].float(), grid.quant_min,
                            grid.quant_max)
    assert torch.allclose(rounded, w_hat[5], atol=1e-6)  # each weight, as it was when its turn came, rounds to ŵ
    assert list(push.order) == list(torch.argsort(torch.diag(h), descending=True))  # act-order


def test_gptq_trades_weight_error_for_output_error(layer):
    w, x = layer
    why = explain_quantization(one_of(w, x), QuantConfig(bits=3, granularity="per-channel", method="gptq"))
    assert why.row_error["GPTQ"] < why.row_error["round-to-nearest"]
    assert why.layer_error["GPTQ"] < why.layer_error["round-to-nearest"]
    assert why.weight_error["GPTQ"] > why.weight_error["round-to-nearest"]  # the weights themselves move further
    assert len(why.columns) == len(why.pushed) == len(why.gptq) == len(why.rtn) == 32 and why.rows == 24


def one_of(w: torch.Tensor, x: torch.Tensor):
    """A OneLayer for a bare weight and its inputs (a one-layer model walked by WeightLayers)."""
    module = torch.nn.Sequential(torch.nn.Linear(w.shape[1], w.shape[0], bias=False))
    with torch.no_grad():
        module[0].weight.copy_(w)
    return one_layer(module, WeightLayers(), x, 0, "0")


def test_sparsegpt_updates_only_the_survivors_and_the_updates_lower_the_error(layer):
    w, x = layer
    h = hessian(x)
    pruned, _ = sparsegpt_prune(w, h, 0.5)
    update = survivor_updates(w, pruned)
    assert (update[pruned == 0] == 0).all() and torch.allclose(update + w * (pruned != 0), pruned, atol=1e-6)
    why = explain_pruning(one_of(w, x), PruneConfig(amount=0.5, method="sparsegpt"))
    assert why.row_error["SparseGPT"] < why.row_error["SparseGPT's mask, no update"]
    assert why.layer_error["SparseGPT"] < why.layer_error["magnitude"]
    assert all(v != 0 for u, v in zip(why.update, why.sparsegpt) if u != 0)  # updates go to survivors only


def test_wanda_keeps_the_weights_of_a_loud_channel_that_magnitude_drops(layer):
    w, x = layer
    x = x.clone()
    x[:, 7] *= 40  # one loud input channel
    norms = x.pow(2).sum(0).sqrt()
    contrast = contrast_with_magnitude(w, norms, 0.5)
    assert int(contrast.wanda_only.argmax()) == 7
    assert contrast.wanda[:, 7].sum() > contrast.magnitude[:, 7].sum()
    assert contrast.wanda_only.sum() == contrast.magnitude_only.sum()  # per row both keep the same number
    nm = contrast_with_magnitude(w, norms, 0.5, (2, 4))
    assert (nm.wanda.view(24, 8, 4).sum(-1) == 2).all()


def test_smoothing_moves_the_range_into_the_weights_and_refines_the_grid(layer):
    w, x = layer
    x = x.clone()
    x[:, 3] *= 60
    effect = smoothing_effect(x, w.abs().amax(0), 0.5, 6, "per-tensor")
    assert effect.outlier == 3
    assert effect.step_without_outlier < effect.step / 10  # the outlier alone sets the step for everyone
    assert effect.step_smoothed < effect.step
    product = effect.act_max * effect.weight_max
    assert torch.allclose(effect.act_max_smoothed * effect.weight_max_smoothed, product, rtol=1e-5)  # unchanged
    why = explain_smoothing(one_of(w, x), lm_config("smoothquant", alpha=0.5, wa_bits=6,
                                                     act_granularity="per-tensor"))
    naive, smooth = why.error.values()
    assert smooth < naive and why.outlier == 3 and why.outlier_ratio > 10


def test_row_output_errors_are_each_rows_relative_error(layer):
    w, x = layer
    w_hat = torch.round(w * 4) / 4
    errors = row_output_errors(w, w_hat, hessian(x))
    for row in (0, 7, 23):
        assert errors[row].item() == pytest.approx(relative_error(w[row:row + 1], w_hat[row:row + 1], x), rel=1e-4)


def loud_llama():
    lm = tiny_llama(4)
    with torch.no_grad():
        lm.model.model.layers[1].input_layernorm.weight[9] = 50.0
    return lm


def test_the_loudest_channel_is_found_in_every_layer_and_role():
    lm = loud_llama()
    ids = token_ids(lm)
    found = find_outliers(lm.model, DecoderLayers(), ids)
    assert (found[0].layer, found[0].channel) == (1, 9) and found[0].role in ("q", "k", "v")
    assert found[0].ratio > 10 > found[-1].ratio
    assert len(found) == 2 * 7  # two layers × q, k, v, o, gate, up, down
    ranges = input_ranges(lm.model, DecoderLayers(), ids)
    block, inputs = layer_inputs(lm.model, DecoderLayers(), ids, 1)
    assert torch.equal(ranges[(1, "q")], inputs["q"].abs().amax(0))  # the walk and the one-layer capture agree
    norms = input_norms(lm.model, DecoderLayers(), ids)
    assert torch.allclose(norms[block.weight_names["q"]], inputs["q"].pow(2).sum(0).sqrt())
    with pytest.raises(InputError, match="block must be"):
        layer_inputs(lm.model, DecoderLayers(), ids, 5)
    with pytest.raises(InputError, match="no weight layer"):
        one_layer(lm.model, DecoderLayers(), ids, 1, "nope")


def test_the_why_views_share_one_layer_and_its_tokens_on_a_language_model():
    lm = loud_llama()
    before = state_checksum(lm.model)
    data = one_layer(lm.model, DecoderLayers(), token_ids(lm), 1, "q")
    assert data.tokens == 8 * 64 and data.name == "layer 1 · q" and len(data.fed_together) == 3  # q, k, v
    assert torch.equal(data.w, get_weight(lm.model.model.layers[1].self_attn.q_proj).float())
    quant = explain_quantization(data, lm_config("gptq", bits=3))
    prune = explain_pruning(data, lm_config("sparsegpt", nm=(2, 4)))
    smooth = explain_smoothing(data, lm_config("smoothquant", alpha=0.5, wa_bits=6))
    assert quant.tokens == prune.tokens == smooth.tokens == 512 and prune.pattern == "2:4"
    assert smooth.applies and smooth.outlier == 9
    assert prune.wanda_only[9] == max(prune.wanda_only)  # the loud channel is where Wanda keeps most
    assert state_checksum(lm.model) == before  # explaining changes nothing


def test_the_classifier_pages_get_the_same_views(zoo):
    from compression.calibration import calibration_images

    mlp = zoo("mlp")
    images = calibration_images(mlp.dataset, 128)
    data = one_layer(mlp.module, WeightLayers(), images, 0, "fc1")
    assert data.tokens == 128 and data.w.shape == (100, 64)
    quant = explain_quantization(data, QuantConfig(bits=3, method="gptq"))
    assert quant.layer_error["GPTQ"] < quant.layer_error["round-to-nearest"]
    prune = explain_pruning(data, PruneConfig(amount=0.7, method="sparsegpt"))
    assert prune.layer_error["SparseGPT"] < prune.layer_error["magnitude"]


def test_perplexity_says_how_noisy_it_is_and_reports_progress():
    lm = tiny_llama(2)
    ids = token_ids(lm, samples=6, seq_len=32)
    steps = []
    gen = perplexity_steps(lm.model, ids, batch_size=4)
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert [(s.done, s.total) for s in steps] == [(4, 6), (6, 6)]
    assert result.windows == 6 and result.tokens == 6 * 31 and result.nll_se > 0
    low, high = result.interval()
    assert low < result.perplexity < high
    assert perplexity(lm.model, ids).perplexity == pytest.approx(result.perplexity, rel=1e-6)
    assert perplexity(lm.model, ids[:1]).interval() is None  # one window: no spread to measure


def test_live_rtn_rounds_exactly_as_a_run_does_and_leaves_the_model_alone():
    lm = tiny_llama(3)
    before = state_checksum(lm.model)
    ids = token_ids(lm, samples=2, seq_len=32)
    live = LiveRTN(lm)
    for bits, group in ((3, 64), (4, 0), (3, 64)):
        config = lm_config("rtn", bits=bits, group_size=group)
        run = run_to_end(compress_lm(lm, config))
        assert live.perplexity(config, ids).perplexity == pytest.approx(perplexity(run.lm.model, ids).perplexity,
                                                                        rel=1e-6)
    assert state_checksum(lm.model) == before
    with pytest.raises(ValueError, match="rounds to nearest"):
        live.perplexity(lm_config("gptq"), ids)
