"""The one-shot methods every model shares, on random layers and the zoo MLP: grids against PyTorch's fake
quantization, the one N:M rule, Wanda, SparseGPT, GPTQ and AWQ against their simpler baselines, and the verbs."""

import pytest
import torch
import torch.nn.functional as F
from conftest import onnx_upload, state_checksum
from transformers.pytorch_utils import Conv1D

from compression.calibration import get_weight, hessian, relative_error
from compression.core.errors import InputError
from compression.models.loading import load_onnx_with_data
from compression.models.workbench import with_weights
from compression.pruning import PruneConfig, nm_keep, prune, prune_matrix, row_keep, sparsegpt_prune, wanda_prune
from compression.quantization import QuantConfig, load_packed, quantize
from compression.quantization.awq import candidate_scales, search_clip, search_scale
from compression.quantization.gptq import gptq_quantize
from compression.quantization.primitives import (QParams, choose_qparams, dequantize_codes, fake_quantize,
                                                 quant_range, quantize_codes)


def random_layer(seed: int, out: int = 48, inp: int = 128, tokens: int = 512):
    """A weight and correlated inputs with a few loud channels, like a real layer's."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g)
    mix = torch.randn(inp, inp, generator=g) / inp ** 0.5 + torch.eye(inp)
    x = torch.randn(tokens, inp, generator=g) @ mix
    x[:, :4] *= 8
    return w, x


def rtn(w, bits, symmetric=False, group_size=None, fp16_scales=False):
    """Round-to-nearest onto the grid GPTQ would choose: per group of columns, or per output row."""
    qparams = choose_qparams(w, bits, symmetric, None if group_size else 0, group_size=group_size,
                             fp16_scales=fp16_scales)
    return fake_quantize(w, qparams)


def on_grid(w: torch.Tensor, qparams: QParams) -> bool:
    """Every value of w is a grid point: its codes decode back to it exactly."""
    return torch.equal(dequantize_codes(quantize_codes(w, qparams), qparams), w)


# ---- grids: the one rounding rule against PyTorch ----


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "asymmetric"])
def test_per_group_fake_quantize_equals_pytorch_per_channel_on_the_group_view(bits, symmetric):
    torch.manual_seed(bits)
    w = torch.randn(12, 64) * torch.linspace(0.1, 3, 64)
    qp = choose_qparams(w, bits, symmetric, group_size=16)
    assert qp.scale.shape == (12, 4) and (qp.quant_min, qp.quant_max) == quant_range(bits, symmetric)
    reference = torch.fake_quantize_per_channel_affine(w.reshape(-1, 16), qp.scale.reshape(-1),
                                                       qp.zero_point.reshape(-1), 0, qp.quant_min, qp.quant_max)
    assert torch.equal(fake_quantize(w, qp), reference.reshape(12, 64))


@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "asymmetric"])
def test_a_shorter_last_group_matches_pytorch_on_the_zero_padded_view(symmetric):
    torch.manual_seed(7)
    w = torch.randn(10, 40)  # groups of 16: 16, 16 and a last group of 8
    qp = choose_qparams(w, 3, symmetric, group_size=16)
    assert qp.scale.shape == (10, 3)
    padded = F.pad(w, (0, 8)).reshape(-1, 16)
    reference = torch.fake_quantize_per_channel_affine(padded, qp.scale.reshape(-1), qp.zero_point.reshape(-1), 0,
                                                       qp.quant_min, qp.quant_max).reshape(10, 48)[:, :40]
    assert torch.equal(fake_quantize(w, qp), reference)
    last = choose_qparams(w[:, 32:], 3, symmetric, axis=0)  # the short group's grid is fitted to its 8 values
    assert torch.equal(qp.scale[:, 2], last.scale) and torch.equal(qp.zero_point[:, 2], last.zero_point)


def test_symmetric_grids_use_signed_codes_with_zero_point_zero():
    torch.manual_seed(8)
    w = torch.randn(6, 32)
    qp = choose_qparams(w, 4, True, axis=0)
    codes = quantize_codes(w, qp)
    assert (qp.quant_min, qp.quant_max) == (-8, 7) and not qp.zero_point.any()
    torch.testing.assert_close(qp.scale, w.abs().amax(1) / 7)  # Δ = max|x| / (2^(b-1) - 1)
    assert codes.min() >= -7 and (codes.abs().amax(1) == 7).all()  # the largest value is on the grid; -8 unused
    torch.testing.assert_close(fake_quantize(w, qp).abs().amax(1), w.abs().amax(1))


def test_rtn_codes_round_trip_through_a_grid_with_float16_scales():
    w, _ = random_layer(5)
    qp = choose_qparams(w, 3, False, group_size=32, fp16_scales=True)
    codes = quantize_codes(w, qp)
    w_hat = fake_quantize(w, qp)
    assert codes.min() >= 0 and codes.max() <= 7
    assert torch.equal(dequantize_codes(codes, qp), w_hat) and on_grid(w_hat, qp)
    assert torch.equal(qp.scale.half().float(), qp.scale)  # scales are exactly float16
    assert (qp.scale >= choose_qparams(w, 3, False, group_size=32).scale).all()  # rounded up: nothing clips


# ---- the one N:M rule ----


@pytest.mark.parametrize("n, m, tail", [(2, 4, 0), (2, 4, 1), (2, 4, 3), (3, 8, 5), (4, 8, 2), (1, 4, 1), (4, 4, 3)])
def test_nm_keep_keeps_n_per_full_group_and_min_n_r_in_a_tail_of_r(n, m, tail):
    torch.manual_seed(n * 100 + m * 10 + tail)
    scores = torch.rand(9, 5 * m + tail)
    keep = nm_keep(scores, n, m)
    assert keep.dtype == torch.bool and keep.shape == scores.shape
    full = keep[:, :5 * m].reshape(9, 5, m)
    assert (full.sum(-1) == n).all()
    assert (keep[:, 5 * m:].sum(-1) == min(n, tail)).all()
    groups = scores[:, :5 * m].reshape(9, 5, m)
    kept_min = torch.where(full, groups, torch.inf).amin(-1)
    dropped_max = torch.where(full, -torch.inf, groups).amax(-1)
    assert (kept_min >= dropped_max).all()  # the n highest scores of each group


def test_row_keep_prunes_the_lowest_scores_of_each_row():
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0], [0.5, 0.7, 0.1, 0.9]])
    assert row_keep(scores, 0.5).tolist() == [[True, False, True, False], [False, True, False, True]]
    assert row_keep(scores, 0.0).all()


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8), (1, 4)])
def test_nm_patterns_are_exact_for_every_method(n, m):
    w, x = random_layer(3)
    pruned = [prune_matrix(w, PruneConfig(nm=(n, m), scope="row"))[0], wanda_prune(w, x.norm(dim=0), 0.0, (n, m)),
              sparsegpt_prune(w, hessian(x), 0.0, (n, m))[0]]
    for p in pruned:
        assert ((p != 0).reshape(w.shape[0], -1, m).sum(-1) == n).all()


@pytest.mark.parametrize("n, m", [(3, 8), (2, 4)])
def test_every_method_applies_the_one_nm_rule_to_a_tail_group(n, m):
    w, x = random_layer(9, inp=302)  # 302 columns: blocks of 128 and a last group of 302 % m inputs
    tail = 302 % m
    pruned = [prune_matrix(w, PruneConfig(nm=(n, m), scope="row"))[0], wanda_prune(w, x.norm(dim=0), 0.0, (n, m)),
              sparsegpt_prune(w, hessian(x), 0.0, (n, m))[0]]
    for p in pruned:
        nonzero = p != 0
        assert (nonzero[:, :302 - tail].reshape(w.shape[0], -1, m).sum(-1) == n).all()
        assert (nonzero[:, 302 - tail:].sum(-1) == min(n, tail)).all()


def test_magnitude_per_layer_and_per_row_reach_the_sparsity_and_global_is_refused_block_by_block():
    w, _ = random_layer(4)
    for scope in ("row", "layer"):
        new, note = prune_matrix(w, PruneConfig(amount=0.25, scope=scope))
        assert note is None
        assert (new == 0).float().mean().item() == pytest.approx(0.25, abs=1 / w.numel())
    assert ((prune_matrix(w, PruneConfig(amount=0.25, scope="row"))[0] == 0).sum(1) == 32).all()
    with pytest.raises(InputError, match="per row or per layer"):
        prune_matrix(w, PruneConfig(amount=0.25))


def test_magnitude_per_layer_prunes_a_gpt2_conv1d_weight():
    torch.manual_seed(12)
    w = get_weight(Conv1D(8, 16))  # (out, in) = (8, 16), read from Conv1D's (in, out) storage
    new, _ = prune_matrix(w, PruneConfig(amount=0.5, scope="layer"))
    assert int((new == 0).sum()) == 64


# ---- Wanda and SparseGPT ----


def test_wanda_keeps_the_weights_of_a_loud_input_channel_that_magnitude_drops():
    torch.manual_seed(10)
    w = torch.randn(16, 32)
    w[:, 5] = 0.1 * torch.sign(torch.randn(16))  # small weights ...
    x = torch.randn(256, 32)
    x[:, 5] *= 1000  # ... on an input channel a thousand times louder than the rest
    magnitude = prune_matrix(w, PruneConfig(amount=0.5, scope="row"))[0]
    wanda = wanda_prune(w, x.norm(dim=0), 0.5)
    assert (magnitude[:, 5] == 0).all()
    assert torch.equal(wanda[:, 5], w[:, 5])
    assert ((wanda == 0).sum(1) == 16).all()
    assert relative_error(w, wanda, x) < relative_error(w, magnitude, x)


@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_wanda_with_equal_input_norms_is_per_row_magnitude(nm):
    w, _ = random_layer(2)
    config = PruneConfig(amount=None if nm else 0.5, nm=nm, scope="row")
    assert torch.equal(wanda_prune(w, torch.full((w.shape[1],), 3.0), 0.5, nm), prune_matrix(w, config)[0])


def test_sparsegpt_at_zero_sparsity_returns_the_layer_unchanged():
    w, x = random_layer(0)
    new, note = sparsegpt_prune(w, hessian(x), 0.0)
    assert note is None
    assert torch.equal(new, w)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nm", [None, (2, 4), (4, 8)])
def test_sparsegpt_output_error_is_below_magnitude_at_the_same_sparsity(seed, nm):
    w, x = random_layer(seed)
    sparse, _ = sparsegpt_prune(w, hessian(x), 0.5, nm)
    magnitude = prune_matrix(w, PruneConfig(amount=None if nm else 0.5, nm=nm, scope="row"))[0]
    assert (sparse == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    assert relative_error(w, sparse, x) < relative_error(w, magnitude, x)


# ---- GPTQ ----


def test_gptq_at_16_bits_returns_the_layer_unchanged():
    w, x = random_layer(1)
    new, _, _ = gptq_quantize(w, hessian(x), bits=16, granularity="per-group", group_size=32)
    torch.testing.assert_close(new, w, atol=1e-3, rtol=0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bits, symmetric, granularity, act_order", [
    (3, False, "per-group", False), (3, False, "per-group", True), (4, False, "per-channel", True),
    (4, True, "per-channel", False), (3, True, "per-group", True), (4, False, "per-tensor", False),
])
def test_gptq_error_is_at_most_rtn_and_every_weight_lies_on_its_grid(seed, bits, symmetric, granularity, act_order):
    w, x = random_layer(seed)
    group = 32 if granularity == "per-group" else None
    gptq, grid, note = gptq_quantize(w, hessian(x), bits, symmetric, granularity, 32, act_order, fp16_scales=True)
    assert note is None and (grid.quant_min, grid.quant_max) == quant_range(bits, symmetric)
    assert on_grid(gptq, grid)
    if granularity == "per-tensor":
        reference = fake_quantize(w, choose_qparams(w, bits, symmetric, fp16_scales=True))
    else:
        reference = rtn(w, bits, symmetric, group, fp16_scales=True)
    assert relative_error(w, gptq, x) < relative_error(w, reference, x)


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_groups_that_straddle_a_block_end_on_their_own_grid(act_order):
    torch.manual_seed(5)
    w, x = torch.randn(24, 192), torch.randn(400, 192)
    w_hat, grid, _ = gptq_quantize(w, hessian(x), 3, False, "per-group", 48, act_order, block_size=128)
    assert grid.scale.shape == (24, 4) and grid.group_size == 48  # group 96..143 straddles column 128
    assert on_grid(w_hat, grid)  # every weight sits on its group's 3-bit grid
    assert relative_error(w, w_hat, x) < relative_error(w, rtn(w, 3, False, 48), x)


def test_gptq_with_a_group_size_that_does_not_divide_ends_each_row_in_a_shorter_group():
    w, x = random_layer(6, inp=100)
    w_hat, grid, _ = gptq_quantize(w, hessian(x), 4, False, "per-group", 32, act_order=True)
    assert grid.scale.shape == (48, 4) and on_grid(w_hat, grid)
    assert relative_error(w, w_hat, x) < relative_error(w, rtn(w, 4, False, 32), x)


# ---- AWQ ----


def _rounder(bits: int, group_size: int):
    return lambda w: fake_quantize(w, choose_qparams(w, bits, False, group_size=group_size))


@pytest.mark.parametrize("tokens", [300, 40])  # more tokens than inputs (scored through XᵀX) and fewer (through X)
def test_awq_scale_search_picks_the_alpha_with_the_least_output_error(tokens):
    torch.manual_seed(0)
    x = torch.randn(tokens, 64) * torch.linspace(0.1, 8, 64)  # a few loud channels, as in real LLMs
    weights = [torch.randn(32, 64), torch.randn(16, 64)]
    rounder = _rounder(3, 16)
    s, alpha = search_scale(x, weights, rounder, grid=10)

    def error(a: float) -> float:  # brute force: the output error of every linear, token by token
        scale = candidate_scales(x.abs().mean(0), a)
        return sum((x @ w.t() - x @ (rounder(w * scale) / scale).t()).pow(2).sum().item() for w in weights)

    errors = {step / 10: error(step / 10) for step in range(10)}
    assert errors[alpha] == pytest.approx(min(errors.values()), rel=1e-4)
    assert torch.allclose(s, candidate_scales(x.abs().mean(0), alpha))
    assert min(errors.values()) < errors[0.0]  # the search matters here: α = 0 (no scaling) is not the best


def test_awq_clip_search_never_raises_a_groups_output_error():
    w, x = random_layer(11, inp=80)  # groups of 32: 32, 32 and a last group of 16
    rounder = _rounder(3, 32)
    clipped = search_clip(w, x.t() @ x, rounder, 32, grid=10)
    assert clipped.shape == w.shape and (clipped.abs() <= w.abs()).all()
    assert (clipped != w).any()
    for start, stop in ((0, 32), (32, 64), (64, 80)):  # each group's own partial output over the tokens
        part = slice(start, stop)
        with_clip = (x[:, part] @ (w - rounder(clipped))[:, part].t()).pow(2).sum(0)
        without = (x[:, part] @ (w - rounder(w))[:, part].t()).pow(2).sum(0)
        assert (with_clip <= without * (1 + 1e-4)).all()


# ---- the verbs on the zoo MLP ----


def test_sparsegpt_prune_of_the_mlp_keeps_its_accuracy_where_magnitude_loses_it(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    sparse = prune(model, PruneConfig(amount=0.8, method="sparsegpt"))
    # Magnitude at the same sparsity in every layer; global magnitude moves sparsity between layers.
    per_layer = prune(model, PruneConfig(amount=0.8, scope="layer"))
    global_ = prune(model, PruneConfig(amount=0.8))
    assert state_checksum(model.module) == before
    assert sparse.model.module is not model.module
    assert sparse.sparsity == pytest.approx(0.8, abs=0.005)
    assert sparse.accuracy >= 0.93
    assert sparse.accuracy >= per_layer.accuracy + 0.10
    assert sparse.accuracy > global_.accuracy


def test_wanda_prune_of_the_mlp_reaches_its_sparsity_per_row_and_leaves_the_model_alone(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    result = prune(model, PruneConfig(amount=0.5, method="wanda"))
    assert state_checksum(model.module) == before
    for name, mask in result.masks.items():
        assert ((mask == 0).sum(1) == round(mask.shape[1] * 0.5)).all(), name
    assert result.accuracy > 0.5


def test_calibrated_methods_need_a_pytorch_model_and_known_layers(zoo):
    model = zoo("mlp")
    with pytest.raises(InputError, match="cannot exclude"):
        prune(model, PruneConfig(amount=0.5, method="sparsegpt", exclude=("nope",)))
    onnx_file, npz_file = onnx_upload(model)
    graph = load_onnx_with_data(onnx_file, "m.onnx", npz_file, "d.npz")
    with pytest.raises(InputError, match="needs a PyTorch model"):
        prune(graph, PruneConfig(amount=0.5, method="sparsegpt"))
    with pytest.raises(InputError, match="needs a PyTorch model"):
        quantize(graph, QuantConfig(bits=4, method="gptq"))


def test_gptq_2_bit_of_the_mlp_is_at_least_as_accurate_as_rtn(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    rtn_result = quantize(model, QuantConfig(bits=2, scheme="asymmetric"))
    gptq_result = quantize(model, QuantConfig(bits=2, method="gptq", scheme="asymmetric"))
    assert state_checksum(model.module) == before
    assert gptq_result.accuracy >= rtn_result.accuracy
    assert len(gptq_result.steps) == 2 and all(0 <= e < 1 for s in gptq_result.steps for e in s.errors.values())
    for name, qtensor in gptq_result.quantized.qtensors.items():
        assert on_grid(gptq_result.weights[name], qtensor.qparams), name


def test_awq_quantize_leaves_the_model_alone_and_says_it_only_clipped(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    result = quantize(model, QuantConfig(bits=3, method="awq", scheme="asymmetric", awq_grid=5))
    assert state_checksum(model.module) == before
    assert result.accuracy > 0.5 and any("clipping only" in note for s in result.steps for note in s.notes)


def test_the_packed_file_of_a_gptq_result_decodes_to_weights_with_the_same_accuracy(zoo):
    model = zoo("mlp")
    result = quantize(model, QuantConfig(bits=3, method="gptq", scheme="asymmetric", granularity="per-group",
                                         group_size=24, fp16_scales=True))
    state = load_packed(result.packed)
    assert set(model.module.state_dict()) == set(state)
    for name, w in result.weights.items():
        assert torch.equal(state[name], w), name
    decoded = with_weights(model, {name: state[name] for name in result.weights})
    assert decoded.evaluate().accuracy == result.accuracy


@pytest.mark.parametrize("config", [QuantConfig(bits=4, method="gptq"), PruneConfig(amount=0.5, method="wanda")],
                         ids=["gptq", "wanda"])
def test_calibration_the_caller_gives_is_used(zoo, config):
    model = zoo("mlp")
    images = model.dataset.x_train[:64]
    verb = quantize if isinstance(config, QuantConfig) else prune
    a, b = verb(model, config, calibration=images), verb(model, config, calibration=images.flip(-1))
    weights = (lambda r: r.weights) if isinstance(config, QuantConfig) else (lambda r: r.model.weights())
    assert any(not torch.equal(weights(a)[k], weights(b)[k]) for k in weights(a))
    c = verb(model, config, calibration=images)
    assert all(torch.equal(weights(a)[k], weights(c)[k]) for k in weights(a))
