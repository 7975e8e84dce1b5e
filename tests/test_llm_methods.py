"""Properties of the one-shot methods that cannot lie, on random layers and tiny random models."""

import pytest
import torch
from llm_helpers import tiny_gpt2, tiny_llama, token_ids

from compression.core.errors import InputError
from compression.llm.calibrate import capture_layer_call, linear_inputs
from compression.llm.configs import QuantizeConfig
from compression.llm.gptq import gptq_quantize
from compression.llm.hessian import hessian, inverse_factor, relative_error
from compression.llm.layers import decoder_layers, family_of, layer_linears
from compression.llm.methods import apply_awq_scales, smooth_layer
from compression.llm.pruning import keep_nm, magnitude_prune, sparsegpt_prune, wanda_prune
from compression.llm.rounding import apply_grid, codes, rtn


def random_layer(seed: int, out: int = 48, inp: int = 128, tokens: int = 512):
    """A weight and correlated inputs with a few loud channels, like a real layer's."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g)
    mix = torch.randn(inp, inp, generator=g) / inp ** 0.5 + torch.eye(inp)
    x = torch.randn(tokens, inp, generator=g) @ mix
    x[:, :4] *= 8
    return w, x


def output_error(w, w_hat, x):
    return relative_error(w, w_hat, x)


def test_sparsegpt_at_zero_sparsity_returns_the_layer_unchanged():
    w, x = random_layer(0)
    new, note = sparsegpt_prune(w, hessian(x), 0.0)
    assert note is None
    assert torch.equal(new, w)


def test_gptq_at_16_bits_returns_the_layer_unchanged():
    w, x = random_layer(1)
    new, _, _ = gptq_quantize(w, hessian(x), bits=16, group_size=32)
    torch.testing.assert_close(new, w, atol=1e-3, rtol=0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bits, group_size", [(3, 32), (4, 0)])
def test_gptq_error_on_its_calibration_batch_is_at_most_rtn(seed, bits, group_size):
    w, x = random_layer(seed)
    gptq, _, _ = gptq_quantize(w, hessian(x), bits, group_size)
    assert output_error(w, gptq, x) <= output_error(w, rtn(w, bits, group_size)[0], x)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nm", [None, (2, 4), (4, 8)])
def test_sparsegpt_error_is_at_most_magnitude(seed, nm):
    w, x = random_layer(seed)
    sparse, _ = sparsegpt_prune(w, hessian(x), 0.5, nm)
    assert output_error(w, sparse, x) <= output_error(w, magnitude_prune(w, 0.5, "row", nm), x)


@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_wanda_with_equal_input_norms_is_per_row_magnitude(nm):
    w, _ = random_layer(2)
    assert torch.equal(wanda_prune(w, torch.full((w.shape[1],), 3.0), 0.5, nm), magnitude_prune(w, 0.5, "row", nm))


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8), (1, 4)])
def test_nm_patterns_are_exact_for_every_method(n, m):
    w, x = random_layer(3)
    pruned = [magnitude_prune(w, 0.0, nm=(n, m)), wanda_prune(w, x.norm(dim=0), 0.0, (n, m)),
              sparsegpt_prune(w, hessian(x), 0.0, (n, m))[0]]
    for p in pruned:
        assert ((p != 0).reshape(w.shape[0], -1, m).sum(-1) == n).all()


def test_keep_nm_refuses_a_size_that_m_does_not_divide():
    with pytest.raises(InputError, match="multiple of 8"):
        keep_nm(torch.rand(4, 12), 4, 8)


def test_magnitude_per_matrix_and_per_row_reach_the_sparsity():
    w, _ = random_layer(4)
    for scope in ("row", "matrix"):
        assert (magnitude_prune(w, 0.25, scope) == 0).float().mean().item() == pytest.approx(0.25, abs=1 / w.numel())
    assert ((magnitude_prune(w, 0.25, "row") == 0).sum(1) == 32).all()


def test_a_failed_cholesky_raises_dampening_and_says_so():
    h = torch.ones(16, 16) - 0.05 * torch.eye(16)  # eigenvalues -0.05: not positive definite at λ = 0.01·0.95
    factor = inverse_factor(h, 0.01)
    assert factor.note and "raised" in factor.note
    assert torch.isfinite(factor.u).all()


def test_rtn_codes_round_trip_through_the_grid():
    w, _ = random_layer(5)
    w_hat, grid = rtn(w, 3, 32)
    assert codes(w_hat, grid).max() <= 7
    assert torch.equal(apply_grid(w_hat, grid), w_hat)
    assert torch.equal(grid.scale.half().float(), grid.scale)  # scales are exactly float16


def test_group_size_must_divide_the_columns():
    with pytest.raises(InputError, match="divide"):
        rtn(torch.rand(4, 100), 4, 64)


def _layer_inputs(lm, ids):
    family, layers = family_of(lm.model), decoder_layers(lm.model)
    call = capture_layer_call(lm.model, ids)
    return family, layers, call


@pytest.mark.parametrize("build", [tiny_llama, lambda: tiny_llama(kv_heads=4), tiny_gpt2])
@pytest.mark.parametrize("method", ["smoothquant", "awq"])
def test_rescalings_leave_the_float_output_unchanged(build, method):
    lm = build()
    ids = token_ids(lm)
    before = lm.model(input_ids=ids).logits
    family, layers, call = _layer_inputs(lm, ids)
    hidden = call.hidden
    with torch.no_grad():
        for layer in layers:
            inputs = linear_inputs(layer, layer_linears(family, layer), call, hidden)
            # exaggerate one channel so the scales are far from 1
            if method == "smoothquant":
                smooth_layer(family, layer, {k: v * (1 + 9 * (torch.arange(v.shape[1]) == 3)) for k, v in inputs.items()},
                             0.8)
            else:
                apply_awq_scales(family, layer, inputs, QuantizeConfig("awq", 3, 32, awq_grid=5))
            hidden = call.run(layer, hidden)
        after = lm.model(input_ids=ids).logits
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tokens", [300, 40])  # more tokens than inputs (scored through XᵀX) and fewer (through X)
def test_awq_scale_search_picks_the_alpha_with_the_least_output_error(tokens):
    from compression.llm.awq import candidate_scales, search_scale

    torch.manual_seed(0)
    x = torch.randn(tokens, 64) * torch.linspace(0.1, 8, 64)  # a few loud channels, as in real LLMs
    weights = [torch.randn(32, 64), torch.randn(16, 64)]
    s, alpha = search_scale(x, weights, bits=3, group_size=16, grid=10)

    def error(a: float) -> float:
        scale = candidate_scales(x.abs().mean(0), a)
        return sum((x @ w.t() - x @ (rtn(w * scale, 3, 16)[0] / scale).t()).pow(2).sum().item() for w in weights)

    errors = {step / 10: error(step / 10) for step in range(10)}
    assert errors[alpha] == pytest.approx(min(errors.values()), rel=1e-4)
    assert torch.allclose(s, candidate_scales(x.abs().mean(0), alpha))


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_linears_fed_the_same_tensor_share_one_input_object_and_no_others_do(make):
    lm = make()
    layer = decoder_layers(lm.model)[0]
    call = capture_layer_call(lm.model, token_ids(lm))
    seen = linear_inputs(layer, layer_linears(family_of(lm.model), layer), call, call.hidden)
    groups = {}
    for role, x in seen.items():
        groups.setdefault(id(x), []).append(role)
    expected = [["q", "k", "v"], ["o"], ["gate", "up"], ["down"]] if "q" in seen else [["qkv"], ["o"], ["up"], ["down"]]
    assert sorted(groups.values()) == sorted(expected)  # Hessians are cached by this identity


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_groups_that_straddle_a_block_end_on_their_own_grid(act_order):
    torch.manual_seed(5)
    w, x = torch.randn(24, 192), torch.randn(400, 192)
    w_hat, grid, _ = gptq_quantize(w, hessian(x), 3, 48, act_order, block_size=128)  # group 96..143 straddles 128
    assert grid.scale.shape == (24, 4)
    assert torch.equal(apply_grid(w_hat, grid), w_hat)  # every weight sits on its group's 3-bit grid
    assert output_error(w, w_hat, x) <= output_error(w, rtn(w, 3, 48)[0], x)
