"""Calibration: weight layers as matrices, inputs captured layer by layer, the walk, and the Hessian machinery."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from compression.calibration import (BlockReport, WeightLayers, get_weight, hessian, inverse_factor, matrix_inputs,
                                     set_weight, walk)

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}  # float32 sums in another order (unfold + matmul against a conv kernel)


def as_matrix_output(module, x):
    """y = X Wᵀ + b through matrix_inputs and get_weight: (tokens, out)."""
    return matrix_inputs(module, x) @ get_weight(module).t() + module.bias


@pytest.mark.parametrize("conv", [
    nn.Conv2d(3, 5, 3),
    nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    nn.Conv2d(2, 4, 1),
], ids=["plain", "strided-padded-dilated", "pointwise"])
def test_conv2d_patches_times_the_weight_reproduce_the_convolution(conv):
    torch.manual_seed(0)
    x = torch.randn(2, conv.in_channels, 9, 8)
    reference = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)  # (B, out, H, W)
    y = as_matrix_output(conv, x)  # (B·H·W, out): one row per output position, row-major
    torch.testing.assert_close(y, reference.permute(0, 2, 3, 1).reshape(-1, conv.out_channels), **TOLERANCE)


@pytest.mark.parametrize("conv", [nn.Conv1d(3, 6, 3), nn.Conv1d(3, 6, 4, stride=2, padding=2, dilation=2)],
                         ids=["plain", "strided-padded-dilated"])
def test_conv1d_patches_times_the_weight_reproduce_the_convolution(conv):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 17)
    reference = F.conv1d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)  # (B, out, L)
    y = as_matrix_output(conv, x)
    torch.testing.assert_close(y, reference.permute(0, 2, 1).reshape(-1, conv.out_channels), **TOLERANCE)


def test_linear_inputs_are_the_tokens_flattened():
    torch.manual_seed(2)
    linear, x = nn.Linear(6, 4), torch.randn(2, 5, 6)
    assert matrix_inputs(linear, x).shape == (10, 6)
    torch.testing.assert_close(as_matrix_output(linear, x), linear(x).reshape(-1, 4), **TOLERANCE)


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Linear(6, 4), (4, 6)),
    (lambda: nn.Conv2d(3, 5, (3, 2)), (5, 3 * 3 * 2)),
    (lambda: Conv1D(4, 6), (4, 6)),  # transformers' GPT-2 layer: 6 inputs, 4 outputs, weight stored (6, 4)
], ids=["linear", "conv2d", "gpt2-conv1d"])
def test_get_and_set_weight_round_trip_in_the_module_layout(make, shape):
    torch.manual_seed(3)
    module = make()
    original = module.weight.detach().clone()
    w = get_weight(module)
    assert w.shape == shape and w.dtype == torch.float32
    x = torch.randn(7, shape[1]) if not isinstance(module, nn.Conv2d) else torch.randn(1, 3, 3, 2)
    torch.testing.assert_close(as_matrix_output(module, x), module(x).reshape(-1, shape[0]), **TOLERANCE)
    w[0, 0] = 123.0  # a copy: changing it leaves the module alone
    assert torch.equal(module.weight, original)
    set_weight(module, get_weight(module) * 2)
    assert module.weight.shape == original.shape and torch.equal(module.weight, original * 2)
    set_weight(module, get_weight(module) / 2)
    assert torch.equal(module.weight, original)


def two_layers(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def test_weight_layers_are_every_linear_and_conv_in_forward_order_less_the_excluded():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    assert [b.name for b in WeightLayers().blocks(model)] == ["0", "3"]
    assert [b.weight_names for b in WeightLayers().blocks(model)] == [{"0": "0.weight"}, {"3": "3.weight"}]
    assert [b.name for b in WeightLayers(exclude=("0",)).blocks(model)] == ["3"]


def test_a_later_layer_sees_inputs_from_the_earlier_layers_as_they_are_now():
    model = two_layers()
    x = torch.randn(5, 3, 4)
    first, second = WeightLayers().blocks(model)
    before = WeightLayers().block_inputs(model, second, x)["3"]
    with torch.no_grad():
        torch.testing.assert_close(before, torch.relu(model[1](x.flatten(1))))
        set_weight(model[1], get_weight(model[1]) * 3)  # what compressing the first layer would do
        model[1].bias.mul_(3)
    after = WeightLayers().block_inputs(model, second, x)["3"]
    torch.testing.assert_close(after, before * 3)
    assert WeightLayers().block_inputs(model, first, x)["1"].shape == (5, 12)


def test_walk_calibrates_each_layer_on_the_already_compressed_ones_and_yields_a_step_each():
    model = two_layers(1)
    x = torch.randn(6, 12)
    seen = {}

    def process(index, block, inputs):
        seen[block.name] = inputs[block.name].clone()
        if index == 0:  # "compress" the first layer to nothing: the second must see only ReLU(bias)
            set_weight(block.linears[block.name], torch.zeros(8, 12))
        return BlockReport({block.name: 0.25 * (index + 1)}, (f"note {index}",))

    steps = list(walk(model, WeightLayers(), x, process))
    assert [(s.index, s.blocks, s.name) for s in steps] == [(0, 2, "1"), (1, 2, "3")]
    assert [s.fraction for s in steps] == [0.5, 1.0] and steps[1].errors == {"3": 0.5}
    assert steps[0].notes == ("note 0",) and 0 <= steps[0].seconds <= steps[1].seconds
    torch.testing.assert_close(seen["1"], x)
    torch.testing.assert_close(seen["3"], torch.relu(model[1].bias).expand(6, 8))


def test_walk_without_inputs_gives_each_layer_none():
    model = two_layers(2)
    calls = []
    steps = list(walk(model, WeightLayers(), None, lambda i, b, inputs: calls.append(inputs) or BlockReport()))
    assert calls == [{}, {}] and [s.errors for s in steps] == [{}, {}]


def test_closing_the_walk_stops_after_the_current_layer():
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(5)])
    done = []
    run = walk(model, WeightLayers(), torch.randn(3, 4), lambda i, b, x: done.append(i) or BlockReport())
    assert next(run).index == 0 and next(run).index == 1
    run.close()
    assert done == [0, 1]
    with pytest.raises(StopIteration):
        next(run)


def test_a_layer_the_forward_pass_never_reaches_gets_no_inputs():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(4, 2), nn.Linear(4, 2)

        def forward(self, x):
            return self.used(x)

    model = Skips()
    unused = WeightLayers().blocks(model)[1]
    assert unused.name == "unused" and WeightLayers().block_inputs(model, unused, torch.randn(3, 4)) == {}


def test_hessian_is_two_xtx_over_n():
    torch.manual_seed(4)
    x = torch.randn(300, 16) * torch.linspace(0.1, 5, 16)
    expected = (2 * x.double().t() @ x.double() / 300).float()
    torch.testing.assert_close(hessian(x), expected, rtol=1e-5, atol=1e-5)
    assert hessian(x.half()).dtype == torch.float32


def test_inverse_factor_of_a_positive_definite_h_is_the_cholesky_factor_of_its_damped_inverse():
    torch.manual_seed(5)
    x = torch.randn(200, 12)
    h = hessian(x)
    factor = inverse_factor(h, 0.01)
    damped = h.double() + 0.01 * torch.diag(h).mean().double() * torch.eye(12, dtype=torch.float64)
    assert factor.note is None and factor.percdamp == 0.01 and not factor.dead.any()
    assert torch.equal(factor.u, factor.u.triu())
    torch.testing.assert_close((factor.u.t() @ factor.u).double(), torch.linalg.inv(damped), rtol=1e-4, atol=1e-5)


def test_a_failed_cholesky_raises_dampening_and_says_so():
    h = torch.ones(16, 16) - 0.05 * torch.eye(16)  # eigenvalues -0.05: not positive definite at λ = 0.01·0.95
    factor = inverse_factor(h, 0.01)
    assert factor.note and "raised to 0.1" in factor.note and factor.percdamp == pytest.approx(0.1)
    assert torch.isfinite(factor.u).all()
    damped = h.double() + 0.1 * 0.95 * torch.eye(16, dtype=torch.float64)
    torch.testing.assert_close((factor.u.t() @ factor.u).double(), torch.linalg.inv(damped), rtol=1e-3, atol=1e-3)


def test_a_singular_h_gets_more_dampening_until_it_factors():
    h = torch.ones(16, 16)  # rank 1; 1 + 1e-9 is 1 in float32, so the first tries stay exactly singular
    factor = inverse_factor(h, 1e-9)
    assert factor.note and "raised" in factor.note and factor.percdamp > 1e-9
    assert torch.isfinite(factor.u).all() and torch.equal(factor.u, factor.u.triu())


def test_inputs_that_never_fire_are_marked_dead_and_do_not_break_the_factor():
    torch.manual_seed(6)
    x = torch.randn(100, 8)
    x[:, 3] = 0
    factor = inverse_factor(hessian(x), 0.01)
    assert factor.dead.tolist() == [i == 3 for i in range(8)] and factor.note is None
    assert torch.isfinite(factor.u).all()
